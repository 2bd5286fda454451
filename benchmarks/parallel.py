"""Parallel execution: throughput, per-trial overhead, memory over long searches, checkpoint cost.

Sections (all by default):

- throughput: trials that sleep 0.5 s, W = 1, 4, 16, 32 in flight, on the process and Ray
  executors. Workers are started and warmed up before the clock starts. The clock stops when the
  last trial finishes, and start-up and shutdown times are printed separately. Parallel
  efficiency = (trials x 0.5 s / W) / (seconds from the search's start to its last trial's end).
- overhead: instant trials (learn-to-count, n = 10, random search) through the whole search loop
  with the trial store, per executor: wall seconds per trial.
- memory: resident memory of the search process after 1,000 and after 100,000 instant trials
  (inline executor, aging evolution with P = 500, S = 50, default checkpoint cadence).
- checkpoint: time spent writing checkpoints (the store's fsync included) as a fraction of search
  time, at the default cadence (every 5,000 trials or 300 s), for aging evolution and Evo-NAS.

Run: nice -n 10 python benchmarks/parallel.py [--section throughput|overhead|memory|checkpoint]
Targets: efficiency >= 90 % at W = 32; memory growth < 50 MB over 100,000 trials; checkpoint cost < 5 %.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from seqopt import Budget, Search
from seqopt.agents import AgingEvolution, RandomSearch
from seqopt.envs import LearnToCount
from seqopt.executors import Executor, InlineExecutor, ProcessExecutor, RayExecutor
from seqopt.executors.testing import FaultyObjective
from seqopt.seeding import AGENT_STREAM, child_seed
from seqopt.store import read_records

SLEEP_SECONDS = 0.5
WORKER_COUNTS = tuple(int(w) for w in os.environ.get("SEQOPT_BENCH_WORKERS", "1,4,16,32").split(","))
ROUNDS = 8  # trials per worker in each throughput measurement


def resident_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def run(objective, agent, executor: Executor, trials: int, **options) -> tuple[Search, float, float]:
    """Run one search; return it, its wall seconds, and the seconds until its last trial finished.

    The second figure leaves out the executor's shutdown (workers exiting), which the first includes.
    """
    with tempfile.TemporaryDirectory() as run_dir:
        search = Search(objective, agent, budget=Budget(trials=trials), seed=0, run_dir=run_dir, executor=executor,
                        **options)
        started = time.time()
        summary = search.run()
        records = read_records(run_dir)
    if summary.num_failed:
        failed = next(r for r in records if r["status"] == "failed")
        raise RuntimeError(f"{summary.num_failed} of {trials} benchmark trials failed, e.g. {failed['error']}")
    makespan = max(record["timing"]["finished"] for record in records) - started
    return search, summary.wall_seconds, makespan


def throughput() -> None:
    import ray

    objective = FaultyObjective(n=8, delay_seconds=SLEEP_SECONDS)
    print(f"\n## Throughput, trials sleeping {SLEEP_SECONDS} s ({ROUNDS} trials per worker)\n")
    print("| executor | W | trials | start-up s | until last trial s | shutdown s | trials/s | efficiency |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("process", "ray"):
        for workers in WORKER_COUNTS:
            trials = ROUNDS * workers
            started = time.perf_counter()
            if name == "process":
                executor: Executor = ProcessExecutor(workers=workers)
                executor.start(objective)
                executor.wait_until_ready()
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                executor = RayExecutor(max_in_flight=workers, num_cpus_per_trial=1)
                # Warm-up: Ray starts worker processes a few at a time (about as many at once as the
                # node has CPUs) and keeps them. W concurrent 2 s trials make it start W of them;
                # repeat until W trials run at once.
                warm_up = FaultyObjective(n=8, delay_seconds=2.0)
                for attempt in range(15):
                    _, _, makespan = run(warm_up, RandomSearch(warm_up.space, seed=attempt + 1), executor,
                                         trials=workers)
                    if makespan < 1.5 * warm_up.delay_seconds:
                        break
            startup = time.perf_counter() - started

            _, wall, makespan = run(objective, RandomSearch(objective.space, seed=0), executor, trials=trials)
            if name == "ray":
                ray.shutdown()
            ideal = trials * SLEEP_SECONDS / workers
            print(f"| {name} | {workers} | {trials} | {startup:.1f} | {makespan:.2f} | {wall - makespan:.2f} "
                  f"| {trials / makespan:.1f} | {100 * ideal / makespan:.1f} % |", flush=True)


def overhead() -> None:
    import ray

    objective = LearnToCount(10)
    print("\n## Per-trial overhead, instant trials (learn-to-count n = 10, random search, trial store on)\n")
    print("| executor | W | trials | wall s | microseconds per trial |")
    print("| --- | ---: | ---: | ---: | ---: |")
    cases: list[tuple[str, int, int]] = [("inline", 1, 20_000), ("process", 1, 2_000), ("process", 2, 2_000),
                                         ("ray", 1, 1_000), ("ray", 2, 1_000)]
    for name, workers, trials in cases:
        if name == "inline":
            executor: Executor = InlineExecutor()
        elif name == "process":
            executor = ProcessExecutor(workers=workers)
            executor.start(objective)
            executor.wait_until_ready()
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            executor = RayExecutor(max_in_flight=workers)
            run(objective, RandomSearch(objective.space, seed=1), executor, trials=4 * workers)
        _, wall, _ = run(objective, RandomSearch(objective.space, seed=0), executor, trials=trials)
        if name == "ray":
            ray.shutdown()
        print(f"| {name} | {workers} | {trials} | {wall:.2f} | {1e6 * wall / trials:.0f} |", flush=True)


class _MemoryProbe(AgingEvolution):
    """Aging evolution that records this process's resident memory at chosen trial counts."""

    def __init__(self, *args, marks: tuple[int, ...], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marks = set(marks)
        self.resident: dict[int, float] = {}

    def observe(self, results) -> None:
        super().observe(results)
        if self.num_observed in self.marks:
            self.resident[self.num_observed] = resident_mb()


def memory(trials: int = 100_000) -> None:
    objective = LearnToCount(10)
    agent = _MemoryProbe(objective.space, population_size=500, sample_size=50, seed=child_seed(0, AGENT_STREAM),
                         marks=(1_000, 10_000, 50_000, trials))
    search, wall, _ = run(objective, agent, InlineExecutor(), trials=trials)
    print(f"\n## Resident memory, {trials:,} instant trials (inline, aging evolution P = 500, S = 50)\n")
    print("| trials | resident MB |")
    print("| ---: | ---: |")
    for mark, value in sorted(agent.resident.items()):
        print(f"| {mark:,} | {value:.1f} |")
    growth = agent.resident[trials] - agent.resident[1_000]
    print(f"\nGrowth from 1,000 to {trials:,} trials: {growth:.1f} MB; {trials / wall:,.0f} trials/s; "
          f"{search.num_checkpoints} checkpoints took {100 * search.checkpoint_seconds / wall:.2f} % of {wall:.1f} s.")


def checkpoint_cost() -> None:
    from hydra import compose, initialize_config_module

    from seqopt.cli import build_agent, build_objective

    print("\n## Checkpoint cost at the default cadence (every 5,000 trials or 300 s), instant trials\n")
    print("| agent | trials | checkpoints | checkpoint s | search s | fraction | checkpoint size KB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for agent_name, trials in (("aging_evolution", 50_000), ("evo_nas_pqt", 5_000)):
        with initialize_config_module(config_module="seqopt.conf", version_base=None):
            cfg = compose("config", overrides=[f"agent={agent_name}", "env.n=10"])
        objective = build_objective(cfg)
        agent = build_agent(cfg, objective)
        with tempfile.TemporaryDirectory() as run_dir:
            search = Search(objective, agent, budget=Budget(trials=trials), seed=0, run_dir=run_dir)
            summary = search.run()
            size_kb = (Path(run_dir) / "checkpoint.zip").stat().st_size / 1e3
        print(f"| {agent_name} | {trials:,} | {search.num_checkpoints} | {search.checkpoint_seconds:.3f} "
              f"| {summary.wall_seconds:.1f} | {100 * search.checkpoint_seconds / summary.wall_seconds:.2f} % "
              f"| {size_kb:.0f} |", flush=True)


SECTIONS = {"throughput": throughput, "overhead": overhead, "memory": memory, "checkpoint": checkpoint_cost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=[*SECTIONS, "all"], default="all", help="which measurement to run")
    args = parser.parse_args()
    print(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    for name, section in SECTIONS.items():
        if args.section in (name, "all"):
            section()


if __name__ == "__main__":
    main()
