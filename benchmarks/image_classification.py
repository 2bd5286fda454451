"""Image classification search: Random, Evolutionary and Evo-NAS agents on a Fashion-MNIST proxy.

Reproduces, at a scale a shared 2-core machine affords, the comparison of "Evolutionary-Neural
Hybrid Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828), Section 6.4 and
Figure 5: the same MnasNet factorized hierarchical space without squeeze-and-excitation, each
trial trained briefly on a proxy task, reward = validation accuracy. The paper trained 6,000
models per agent on ImageNet for 5 epochs each, 60 at a time on TPUs. Here each search is composed
from the ``image_small_<agent>`` experiment configs and runs for ``--wall-seconds``: 16x16
Fashion-MNIST, 2,000 training images, one epoch, 2 worker processes with 1 thread each.

The script prints a table (trials, failures, best reward, test accuracy of the best model by
validation accuracy, moving average of the last trials, seconds per trial) and writes the two
plots of the paper's Figure 5 (reward moving average and best reward against trials) to
``--plots``.

With ``--speed`` it instead times single trials of the env configs with 2 CPU threads, inline.

Run: nice -n 10 python benchmarks/image_classification.py [--wall-seconds 450] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

AGENTS = {"random": "Random", "evolution": "Evolutionary", "evo_nas": "Evo-NAS"}
REPOSITORY = Path(__file__).resolve().parents[1]


def compose_config(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        return compose("config", overrides=overrides)


def read_trials(run_dir: Path) -> list[dict[str, Any]]:
    with open(run_dir / "trials.jsonl", encoding="utf-8") as f:
        return sorted((json.loads(line) for line in f if line.strip()), key=lambda record: record["trial"])


def run_one_search(agent: str, seed: int, wall_seconds: float, run_dir: Path) -> dict[str, Any]:
    """Run one ``image_small_<agent>`` search and return its figures."""
    from seqopt.cli import run_search

    cfg = compose_config([f"experiment=image_small_{agent}", f"seed={seed}", f"budget.wall_seconds={wall_seconds}",
                          "progress=false"])
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    summary = run_search(cfg, run_dir)
    wall = time.monotonic() - started

    trials = read_trials(run_dir)
    usable = [t for t in trials if t["status"] != "failed" and t["reward"] is not None]
    rewards = np.array([t["reward"] for t in usable])
    best = max(usable, key=lambda t: t["reward"]) if usable else None
    train_seconds = [t["metrics"]["train_seconds"] for t in usable]
    return {
        "agent": AGENTS[agent],
        "trials": len(trials),
        "failed": len(trials) - len(usable),
        "unique": summary.num_unique,
        "best_reward": float(rewards.max()) if usable else None,
        "best_trial": best["trial"] if best else None,
        "best_test_accuracy": best["metrics"]["test_accuracy"] if best else None,
        "best_values": best.get("values") if best else None,
        "mean_reward": float(rewards.mean()) if usable else None,
        "last_20_mean_reward": float(rewards[-20:].mean()) if usable else None,
        "wall_seconds": wall,
        "wall_seconds_per_trial": wall / max(len(trials), 1),
        "median_train_seconds": float(np.median(train_seconds)) if train_seconds else None,
        "run_dir": str(run_dir),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| agent | trials | failed | best reward (val. acc.) | test acc. of best | mean reward | mean of last 20 "
        "| wall s / trial | median train s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        def number(key: str, digits: int = 4, row: dict[str, Any] = row) -> str:
            value = row[key]
            return "n/a" if value is None else f"{value:.{digits}f}"

        lines.append(
            f"| {row['agent']} | {row['trials']} | {row['failed']} | {number('best_reward')} "
            f"(trial {row['best_trial']}) | {number('best_test_accuracy')} | {number('mean_reward')} "
            f"| {number('last_20_mean_reward')} | {number('wall_seconds_per_trial', 1)} "
            f"| {number('median_train_seconds', 1)} |"
        )
    return "\n".join(lines)


def time_env_configs(repeats: int) -> None:
    """Time ``repeats`` trials of each env config, inline with 2 CPU threads, one process."""
    from hydra.utils import instantiate

    for env in ("image_fashion_mnist_small", "image_fashion_mnist", "image_cifar10"):
        cfg = compose_config([f"env={env}", "hardware.threads=2"])
        objective = instantiate(cfg.env)
        started = time.perf_counter()
        objective.prepare_data()
        print(f"{env}: data prepared in {time.perf_counter() - started:.1f} s")
        architectures = np.random.Generator(np.random.PCG64(0))
        for repeat in range(repeats):
            indices = tuple(int(i) for i in objective.space.sample(architectures))
            started = time.perf_counter()
            evaluation = objective.evaluate(indices, np.random.Generator(np.random.PCG64(repeat)))
            wall = time.perf_counter() - started
            metrics = evaluation.metrics
            print(f"{env} trial {repeat}: {evaluation.status.value}, {wall:.1f} s in all, "
                  f"train {metrics.get('train_seconds', float('nan')):.1f} s "
                  f"(CPU {metrics.get('train_cpu_seconds', float('nan')):.1f} s), "
                  f"build {metrics.get('build_seconds', float('nan')):.1f} s, "
                  f"{metrics.get('parameters')} parameters, {metrics.get('layers')} layers, "
                  f"validation accuracy {evaluation.reward:.4f}, test accuracy {metrics.get('test_accuracy')}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wall-seconds", type=float, default=450.0,
                        help="wall-clock seconds of each agent's search (default 450)")
    parser.add_argument("--agents", nargs="+", choices=sorted(AGENTS), default=list(AGENTS),
                        help="agents to run, in order (default: random evolution evo_nas)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every search (default 0)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="folder for the trial stores (default runs/image_benchmark/<date-time>)")
    parser.add_argument("--plots", type=Path, default=REPOSITORY / "docs" / "img" / "image_fashion_mnist",
                        help="prefix of the two PNG files (default docs/img/image_fashion_mnist)")
    parser.add_argument("--window", type=int, default=10, help="trials in the reward moving average (default 10)")
    parser.add_argument("--speed", action="store_true", help="time single trials of the env configs instead")
    parser.add_argument("--repeats", type=int, default=3, help="trials per env config with --speed (default 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if "SEQOPT_DATA_MIRROR" not in os.environ:
        print("SEQOPT_DATA_MIRROR is not set; the data registry looks in its cache folder only.")

    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.speed:
        time_env_configs(args.repeats)
        return

    runs = args.runs or REPOSITORY / "runs" / "image_benchmark" / f"{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}"
    rows = []
    for agent in args.agents:
        row = run_one_search(agent, args.seed, args.wall_seconds, runs / agent)
        rows.append(row)
        print(f"{row['agent']}: {row['trials']} trials, best reward {row['best_reward']} at trial {row['best_trial']}, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"  best model: {row['best_values']}", flush=True)

    from seqopt.plots import plot_runs

    paths = plot_runs([row["run_dir"] for row in rows], args.plots, labels=[row["agent"] for row in rows],
                      window=args.window)
    print(format_table(rows))
    with open(runs / "summary.json", "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    print("Plots:", ", ".join(str(p) for p in paths))
    print(f"Trial stores and summary.json in {runs}")


if __name__ == "__main__":
    main()
