"""The Evo-NAS hybrid policy against SB3 PPO and DQN on Gymnasium tasks, at equal environment steps.

Tasks (through ``gymnasium.make``): FrozenLake 8x8 without slipping, CliffWalking with a 100-step
limit, Taxi, and the slippery FrozenLake 4x4 (stochastic). Each agent trains for the same number
of environment steps; SB3 uses its default hyperparameters (stable-baselines3 2.x) and the hybrid
agent its ``HybridRLConfig`` defaults (PQT, p = 0.1, P = 20, S = 5).

Reported per task and agent, over replicas:
- the mean return of the last 10 % of training episodes (for the hybrid agent, these include its
  reused parent actions, the way it acts while it learns);
- the mean return of 20 evaluation episodes of the final policy acting greedily (SB3:
  ``predict(deterministic=True)``; hybrid: the policy's most probable action, without a parent);
- environment steps per second of training.
Plots of the training return versus environment steps go to docs/img/hybrid_<task>.png.

Run: nice -n 10 python benchmarks/hybrid_rl.py [--replicas 3] [--steps 30000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVALUATION_EPISODES = 20
EVALUATION_SEED = 10_000

# Task name -> (Gymnasium id, gymnasium.make keyword arguments, time limit or None for the default).
TASKS: dict[str, tuple[str, dict[str, Any], int | None]] = {
    "frozen_lake_8x8": ("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False}, None),
    "cliff_walking": ("CliffWalking-v1", {}, 100),
    "taxi": ("Taxi-v4", {}, None),
    "frozen_lake_4x4_slippery": ("FrozenLake-v1", {"map_name": "4x4", "is_slippery": True}, None),
}
AGENTS = ("hybrid (PQT)", "SB3 PPO", "SB3 DQN")


@dataclass
class Job:
    task: str
    agent: str
    replica: int
    steps: int


def _make(task: str) -> Any:
    from seqopt.agents.hybrid_rl import make_env

    env_id, kwargs, limit = TASKS[task]
    return make_env(env_id, max_episode_steps=limit, **kwargs)


def _run_hybrid(job: Job) -> dict[str, Any]:
    from seqopt.agents.hybrid_rl import greedy_return, run_hybrid

    env_id, kwargs, limit = TASKS[job.task]
    run = run_hybrid(env_id, max_steps=job.steps, seed=job.replica, max_episode_steps=limit, env_kwargs=kwargs)
    env = _make(job.task)
    evaluation = [greedy_return(run.agent, env, EVALUATION_SEED + i) for i in range(EVALUATION_EPISODES)]
    return {"returns": run.returns.tolist(), "lengths": run.lengths.tolist(), "seconds": run.seconds,
            "evaluation": evaluation}


def _run_sb3(job: Job) -> dict[str, Any]:
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.monitor import Monitor

    algorithm = {"SB3 PPO": PPO, "SB3 DQN": DQN}[job.agent]
    env = Monitor(_make(job.task))
    model = algorithm("MlpPolicy", env, seed=job.replica, device="cpu")
    started = time.perf_counter()
    model.learn(total_timesteps=job.steps)
    seconds = time.perf_counter() - started

    evaluation = []
    eval_env = _make(job.task)
    for episode in range(EVALUATION_EPISODES):
        observation, _ = eval_env.reset(seed=EVALUATION_SEED + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, _ = eval_env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        evaluation.append(total)
    return {"returns": list(env.get_episode_rewards()), "lengths": list(env.get_episode_lengths()),
            "seconds": seconds, "evaluation": evaluation}


def run_job(job: Job) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one worker per core
    result = _run_hybrid(job) if job.agent.startswith("hybrid") else _run_sb3(job)
    return {"task": job.task, "agent": job.agent, "replica": job.replica, "steps": job.steps, **result}


def summarize(results: list[dict[str, Any]]) -> str:
    lines = ["| task | agent | replicas | training return, last 10 % of episodes | greedy evaluation return | "
             "steps/s |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for task in TASKS:
        for agent in AGENTS:
            rows = [r for r in results if r["task"] == task and r["agent"] == agent]
            if not rows:
                continue
            last = [np.mean(r["returns"][-max(1, len(r["returns"]) // 10):]) for r in rows]
            evaluation = [np.mean(r["evaluation"]) for r in rows]
            rate = np.mean([sum(r["lengths"]) / r["seconds"] for r in rows])
            lines.append(f"| {task} | {agent} | {len(rows)} | {np.mean(last):.3f} +- {np.std(last):.3f} | "
                         f"{np.mean(evaluation):.3f} +- {np.std(evaluation):.3f} | {rate:,.0f} |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for agent in AGENTS:
        rows = [r for r in results if r["task"] == task and r["agent"] == agent]
        if not rows:
            continue
        grid = np.linspace(0, rows[0]["steps"], 200)
        curves = []
        for row in rows:
            returns = np.asarray(row["returns"], dtype=np.float64)
            window = max(1, min(100, len(returns) // 10))
            smoothed = np.convolve(returns, np.ones(window) / window, mode="valid")
            ends = np.cumsum(row["lengths"])[window - 1:]
            curves.append(np.interp(grid, ends, smoothed, left=np.nan))
        with warnings.catch_warnings():  # grid points before the first full window are NaN in every curve
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.array(curves), axis=0)
        axes.plot(grid, mean, label=agent)
    axes.set_xlabel("environment steps")
    axes.set_ylabel("training return (moving average)")
    axes.set_title(f"{task}: mean over {len(rows)} replicas")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3, help="replicas per task and agent")
    parser.add_argument("--steps", type=int, default=30_000, help="environment steps per run")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help=f"task names: {list(TASKS)}")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder of the plots")
    parser.add_argument("--results", type=Path, default=None, help="write every run to this JSON file")
    args = parser.parse_args()

    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown tasks {unknown}; choose from {list(TASKS)}")
    jobs = [Job(task, agent, replica, args.steps) for task in args.tasks for agent in AGENTS
            for replica in range(args.replicas)]
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(jobs)} runs of {args.steps} steps on {args.jobs} worker processes")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        results = []
        for future in as_completed(futures):
            results.append(future.result())
            print(f"[{time.perf_counter() - started:6.0f} s] {len(results)}/{len(jobs)} runs done", flush=True)
        results.sort(key=lambda r: (r["task"], r["agent"], r["replica"]))
    print(f"All runs took {time.perf_counter() - started:.0f} s.\n")
    print(summarize(results))
    args.out.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        path = args.out / f"hybrid_{task}.png"
        plot(results, task, path)
        print(f"Plot: {path}")
    if args.results is not None:
        args.results.write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main()
