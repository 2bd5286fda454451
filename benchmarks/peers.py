"""seqopt's agents against SB3 and against peer optimizers, with equal trial budgets.

Agents: Evo-NAS (PQT) and aging evolution (seqopt presets), SB3 PPO and sb3-contrib MaskablePPO
(``seqopt.agents.sb3``), Optuna's TPE sampler and Nevergrad's NGOpt and DiscreteOnePlusOne. The
peers are wrapped here as seqopt agents that call their ask-and-tell APIs, so every agent runs in
the same ``seqopt.Search`` loop with the same trial budget and the same objective seeds.

Tasks: learn-to-count (n = 10 and n = 20) and NAS-Bench-201 on CIFAR-10 (reward: 12-epoch
validation accuracy; needs the tables through SEQOPT_DATA_MIRROR).

Reported per task and agent: the mean and standard deviation over replicas of the best reward
after the budget, the best reward versus trials (plots in docs/img/peers_*.png), and the agent's
own wall time per trial (``propose`` + ``observe``, objective excluded).

Nevergrad's ``ng.p.Choice`` draws its value from softmax weights unless ``deterministic=True``,
which makes its discrete optimizers no better than random search here, so the parametrization
is ``Choice(range(k), repetitions=n, deterministic=True)``.

Run: nice -n 10 python benchmarks/peers.py [--replicas 10] [--trials 5000] [--nasbench-trials 1000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqopt import Budget, Search
from seqopt.agents.base import Agent
from seqopt.objective import Objective
from seqopt.seeding import AGENT_STREAM, child_seed
from seqopt.spaces import ChoiceSpace
from seqopt.trial import Proposal, TrialResult

ROOT = Path(__file__).resolve().parents[1]


class OptunaTPE(Agent):
    """Optuna's TPE sampler through ``study.ask()`` / ``study.tell()``; each choice is categorical."""

    def __init__(self, space: ChoiceSpace, seed: Any = None, **sampler_kwargs: Any) -> None:
        super().__init__(space, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=int(self.rng.integers(2**31 - 1)), **sampler_kwargs)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._trials: dict[int, Any] = {}  # id of the Proposal -> Optuna trial
        self._fail_state = optuna.trial.TrialState.FAIL

    def propose(self, count: int = 1) -> list[Proposal]:
        proposals = []
        for _ in range(self._check_count(count)):
            trial = self.study.ask()
            indices = tuple(
                int(trial.suggest_categorical(name, list(range(int(k)))))
                for name, k in zip(self.space.names, self.space.cardinalities)
            )
            proposal = Proposal(indices=indices, origin="tpe")
            self._trials[id(proposal)] = trial
            proposals.append(proposal)
        self.num_proposed += len(proposals)
        return proposals

    def observe(self, results: Sequence[TrialResult]) -> None:
        super().observe(results)
        for result in results:
            trial = self._trials.pop(id(result.proposal))
            if result.usable:
                self.study.tell(trial, result.reward)
            else:
                self.study.tell(trial, state=self._fail_state)


class NevergradOptimizer(Agent):
    """A Nevergrad optimizer (minimizing the negated reward) through ``ask()`` / ``tell()``."""

    def __init__(self, space: ChoiceSpace, seed: Any = None, optimizer: str = "NGOpt", budget: int = 1000) -> None:
        super().__init__(space, seed)
        import nevergrad as ng

        cardinalities = [int(k) for k in space.cardinalities]
        if len(set(cardinalities)) == 1:
            parametrization = ng.p.Choice(range(cardinalities[0]), repetitions=len(cardinalities), deterministic=True)
        else:
            parametrization = ng.p.Tuple(*(ng.p.Choice(range(k), deterministic=True) for k in cardinalities))
        parametrization.random_state = np.random.RandomState(int(self.rng.integers(2**31 - 1)))
        self.optimizer = ng.optimizers.registry[optimizer](parametrization=parametrization, budget=budget)
        self._candidates: dict[int, Any] = {}

    def propose(self, count: int = 1) -> list[Proposal]:
        proposals = []
        for _ in range(self._check_count(count)):
            candidate = self.optimizer.ask()
            proposal = Proposal(indices=tuple(int(i) for i in candidate.value), origin="nevergrad")
            self._candidates[id(proposal)] = candidate
            proposals.append(proposal)
        self.num_proposed += len(proposals)
        return proposals

    def observe(self, results: Sequence[TrialResult]) -> None:
        super().observe(results)
        for result in results:
            candidate = self._candidates.pop(id(result.proposal))
            self.optimizer.tell(candidate, -result.reward if result.usable else math.inf)


def _seqopt_preset(name: str, *overrides: str) -> Callable[[ChoiceSpace, Any, int], Agent]:
    """Build an agent from its Hydra preset in conf/agent, as ``seqopt agent=<name> [overrides]`` does."""

    def build(space: ChoiceSpace, seed: Any, budget: int) -> Agent:
        from hydra import compose, initialize_config_module
        from hydra.utils import instantiate

        with initialize_config_module(config_module="seqopt.conf", version_base=None):
            cfg = compose("config", overrides=[f"agent={name}", *overrides])
        agent: Agent = instantiate(cfg.agent, space=space, seed=seed)
        return agent

    return build


AGENTS: dict[str, Callable[[ChoiceSpace, Any, int], Agent]] = {
    "Evo-NAS (PQT)": _seqopt_preset("evo_nas_pqt"),
    "Evo-NAS (PQT, tuned)": _seqopt_preset("evo_nas_pqt_tuned"),
    "aging evolution": _seqopt_preset("aging_evolution"),
    "SB3 PPO": _seqopt_preset("sb3_ppo"),
    "SB3 MaskablePPO": _seqopt_preset("sb3_maskable_ppo"),
    "Optuna TPE": lambda space, seed, budget: OptunaTPE(space, seed),
    "Nevergrad NGOpt": lambda space, seed, budget: NevergradOptimizer(space, seed, "NGOpt", budget),
    "Nevergrad DiscreteOnePlusOne": lambda space, seed, budget: NevergradOptimizer(
        space, seed, "DiscreteOnePlusOne", budget),
}
# The NAS-Bench preset of Evo-NAS (the paper's Table 6) replaces the learn-to-count one there.
# The tuned Evo-NAS there is the Table 6 preset with repeated proposals redrawn, as in
# conf/experiment/nasbench201.yaml.
NASBENCH_PRESETS = {"Evo-NAS (PQT)": _seqopt_preset("evo_nas_pqt_nasbench"),
                    "Evo-NAS (PQT, tuned)": _seqopt_preset("evo_nas_pqt_nasbench", "agent.max_redraws=20")}


def make_objective(task: str) -> Objective:
    if task.startswith("learn_to_count_"):
        from seqopt.envs import LearnToCount

        return LearnToCount(int(task.rsplit("_", 1)[1]))
    if task == "nasbench201":
        from seqopt.envs.nasbench201 import NASBench201

        return NASBench201(protocol="12-epoch")
    raise ValueError(f"Unknown task {task!r}; use learn_to_count_<n> or nasbench201.")


@dataclass
class Job:
    task: str
    agent: str
    replica: int
    trials: int


def run_job(job: Job) -> dict[str, Any]:
    """Run one replica in a worker process; return its best-so-far curve and timings."""
    import torch

    torch.set_num_threads(1)  # one worker per core
    logging.getLogger("seqopt").setLevel(logging.WARNING)
    objective = make_objective(job.task)
    presets = NASBENCH_PRESETS if job.task == "nasbench201" else {}
    build = presets.get(job.agent, AGENTS[job.agent])
    agent = build(objective.space, child_seed(job.replica, AGENT_STREAM), job.trials)

    # Time the agent's own calls by wrapping them on the instance.
    agent_seconds = [0.0]
    propose, observe = agent.propose, agent.observe

    def timed_propose(count: int = 1) -> list[Proposal]:
        started = time.perf_counter()
        try:
            return propose(count)
        finally:
            agent_seconds[0] += time.perf_counter() - started

    def timed_observe(results: Sequence[TrialResult]) -> None:
        started = time.perf_counter()
        try:
            observe(results)
        finally:
            agent_seconds[0] += time.perf_counter() - started

    agent.propose = timed_propose  # type: ignore[method-assign]
    agent.observe = timed_observe  # type: ignore[method-assign]

    search = Search(objective, agent, budget=Budget(trials=job.trials), seed=job.replica)
    started = time.perf_counter()
    search.run()
    wall = time.perf_counter() - started
    close = getattr(agent, "close", None)
    if close is not None:
        close()
    rewards = np.array([r.reward if r.usable else -np.inf for r in search.history])
    extra: dict[str, Any] = {}
    if job.task == "nasbench201":
        best = int(np.argmax(rewards))
        extra["best_test_accuracy"] = search.history[best].evaluation.metrics.get("test_accuracy")
    return {"task": job.task, "agent": job.agent, "replica": job.replica,
            "best_so_far": np.maximum.accumulate(rewards).tolist(),
            "agent_seconds_per_trial": agent_seconds[0] / len(rewards), "wall_seconds": wall, **extra}


def summarize(results: list[dict[str, Any]], tasks: list[str], agents: list[str]) -> str:
    lines = ["| task | agent | replicas | best reward (mean +- std) | reached 1.0 | agent ms/trial |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for task in tasks:
        for agent in agents:
            rows = [r for r in results if r["task"] == task and r["agent"] == agent]
            if not rows:
                continue
            finals = np.array([r["best_so_far"][-1] for r in rows])
            solved = sum(final >= 1.0 - 1e-12 for final in finals) if task.startswith("learn") else "-"
            milliseconds = 1000 * np.mean([r["agent_seconds_per_trial"] for r in rows])
            lines.append(f"| {task} | {agent} | {len(rows)} | {finals.mean():.4f} +- {finals.std():.4f} | "
                         f"{solved} | {milliseconds:.2f} |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], task: str, agents: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for agent in agents:
        rows = [r["best_so_far"] for r in results if r["task"] == task and r["agent"] == agent]
        if not rows:
            continue
        curves = np.array(rows)
        mean = curves.mean(axis=0)
        trials = np.arange(1, len(mean) + 1)
        axes.plot(trials, mean, label=agent)
        axes.fill_between(trials, np.percentile(curves, 15, axis=0), np.percentile(curves, 85, axis=0), alpha=0.15)
    axes.set_xlabel("trials")
    axes.set_ylabel("best reward so far")
    axes.set_title(f"{task}: mean over {len(rows)} replicas, band = 15th to 85th percentile")
    axes.set_xscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=10, help="replicas per task and agent")
    parser.add_argument("--trials", type=int, default=5000, help="trial budget on learn-to-count")
    parser.add_argument("--nasbench-trials", type=int, default=1000, help="trial budget on NAS-Bench-201")
    parser.add_argument("--tasks", nargs="*", default=["learn_to_count_10", "learn_to_count_20", "nasbench201"],
                        help="learn_to_count_<n> and nasbench201 (default: learn_to_count_10 learn_to_count_20 "
                        "nasbench201)")
    parser.add_argument("--agents", nargs="*", default=list(AGENTS), help=f"agent names, from {list(AGENTS)}")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder of the plots")
    parser.add_argument("--results", type=Path, default=None, help="write every curve to this JSON file")
    parser.add_argument("--merge", type=Path, nargs="+", default=[],
                        help="--results files of earlier runs: their curves join this run's in the table, the plots "
                        "and --results (to add agents or tasks to a finished comparison; --replicas 0 only merges)")
    args = parser.parse_args()

    unknown = sorted(set(args.agents) - set(AGENTS))
    if unknown:
        parser.error(f"unknown agents {unknown}; choose from {list(AGENTS)}")
    for task in args.tasks:
        if task == "nasbench201":
            continue  # its tables load in the workers
        try:
            make_objective(task)  # learn-to-count builds in microseconds
        except ValueError as error:
            parser.error(f"invalid task {task!r} ({error}); use learn_to_count_<n> with n >= 2, or nasbench201")
    if "nasbench201" in args.tasks and not os.environ.get("SEQOPT_DATA_MIRROR"):
        print("NOTE: SEQOPT_DATA_MIRROR is not set; NAS-Bench-201 uses the data registry's cache.")
    jobs = [
        Job(task, agent, replica, args.nasbench_trials if task == "nasbench201" else args.trials)
        for task in args.tasks for agent in args.agents for replica in range(args.replicas)
    ]
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(jobs)} runs on {args.jobs} worker processes")

    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        results = []
        for future in as_completed(futures):
            results.append(future.result())
            print(f"[{time.perf_counter() - started:6.0f} s] {len(results)}/{len(jobs)} runs done", flush=True)
        results.sort(key=lambda r: (r["task"], r["agent"], r["replica"]))
    print(f"All runs took {time.perf_counter() - started:.0f} s.\n")
    for path in args.merge:
        # A (task, agent) pair of this run replaces the same pair of an earlier file.
        earlier = json.loads(path.read_text(encoding="utf-8"))
        ran = {(r["task"], r["agent"]) for r in results}
        results = [r for r in earlier if (r["task"], r["agent"]) not in ran] + results
    if args.merge:
        results.sort(key=lambda r: (r["task"], r["agent"], r["replica"]))
        args.agents = [a for a in AGENTS if any(r["agent"] == a for r in results)]
        args.tasks = [t for t in dict.fromkeys([*args.tasks, *(r["task"] for r in results)])
                      if any(r["task"] == t for r in results)]
        print(f"Merged with {', '.join(map(str, args.merge))}: tasks {args.tasks}, agents {args.agents}")

    print(summarize(results, args.tasks, args.agents))
    for task in args.tasks:
        rows = [r for r in results if r["task"] == task and "best_test_accuracy" in r]
        for agent in args.agents:
            tests = [r["best_test_accuracy"] for r in rows if r["agent"] == agent]
            if tests:
                print(f"{task} {agent}: 200-epoch test accuracy of the best-reward cell "
                      f"{100 * np.mean(tests):.2f} +- {100 * np.std(tests):.2f} %")
        path = args.out / f"peers_{task}.png"
        args.out.mkdir(parents=True, exist_ok=True)
        plot(results, task, args.agents, path)
        print(f"Plot: {path}")
    if args.results is not None:
        args.results.write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main()
