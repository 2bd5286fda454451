"""Agent-only throughput of random search and aging evolution on learn-to-count.

Measures trials per second of the agents' own ``propose`` + ``observe`` (the objective's cost and
the building of result records are excluded), at batch size B = 1 (one proposal per call) and with
batched calls, for n = 10, 20 and 100. Then measures the whole search loop (``seqopt.Search`` with
the inline executor and the JSON Lines trial store writing) so that its overhead is visible.

Run: python benchmarks/agent_throughput.py [--trials 50000]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np

from seqopt import Budget, Evaluation, Search, TrialResult
from seqopt.agents import AgingEvolution, RandomSearch
from seqopt.envs import LearnToCount, learn_to_count_reward


def agent_rate(agent, n: int, trials: int, batch: int) -> float:
    """Return propose + observe calls' trials per second, timing only the agent's own calls."""
    agent_seconds = 0.0
    trial_id = 0
    while trial_id < trials:
        started = time.perf_counter()
        proposals = agent.propose(batch)
        agent_seconds += time.perf_counter() - started

        rewards = learn_to_count_reward(np.array([p.indices for p in proposals]) + 1, n)
        results = [
            TrialResult(trial_id + i, proposal, Evaluation(reward=float(reward)))
            for i, (proposal, reward) in enumerate(zip(proposals, rewards))
        ]
        trial_id += len(results)

        started = time.perf_counter()
        agent.observe(results)
        agent_seconds += time.perf_counter() - started
    return trials / agent_seconds


def search_rate(agent_name: str, n: int, trials: int) -> float:
    objective = LearnToCount(n)
    agent = RandomSearch(objective.space, seed=0) if agent_name == "random" else \
        AgingEvolution(objective.space, population_size=500, sample_size=50, seed=0)
    with tempfile.TemporaryDirectory() as run_dir:
        summary = Search(objective, agent, budget=Budget(trials=trials), seed=0, run_dir=run_dir).run()
    return summary.trials_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50_000, help="trials per agent-only measurement")
    parser.add_argument("--search-trials", type=int, default=20_000, help="trials per whole-loop measurement")
    args = parser.parse_args()

    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print("agent-only trials/s (propose + observe), learn-to-count, P = 500, S = 50, p = 0.3")
    print(f"{'agent':<18}{'n':>5}{'B=1':>12}{'B=100':>12}{'B=1000':>12}")
    for n in (10, 20, 100):
        space = LearnToCount(n).space
        for name in ("random", "aging_evolution"):
            rates = []
            for batch in (1, 100, 1000):
                trials = args.trials // 5 if batch == 1 else args.trials
                agent = RandomSearch(space, seed=0) if name == "random" else \
                    AgingEvolution(space, population_size=500, sample_size=50, mutation_probability=0.3, seed=0)
                rates.append(agent_rate(agent, n, trials, batch))
            print(f"{name:<18}{n:>5}" + "".join(f"{rate:>12,.0f}" for rate in rates))

    print("\nwhole search loop (inline executor, trial store written, one log line per trial), n = 20")
    for name in ("random", "aging_evolution"):
        print(f"{name:<18}{search_rate(name, 20, args.search_trials):>12,.0f} trials/s")


if __name__ == "__main__":
    main()
