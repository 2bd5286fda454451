"""Text classification search: Neural, Evolutionary and Evo-NAS agents against a TF-IDF baseline.

Reproduces, at a scale a 2-core machine affords, the comparison of "Evolutionary-Neural Hybrid
Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828), Section 6.3, Tables 2 and 3.
Each search is composed from the ``text_small_<agent>`` experiment configs: 2 worker processes
with 1 thread each, every trial trained for ``--sample-scale`` of the paper's training samples,
for ``--wall-seconds``. The paper ran 30 workers with 2 CPUs each for 2 hours. For each
dataset and agent the script prints the test ROC-AUC of the best trial by validation ROC-AUC
(mean +- 2 s.e.m. over replicas), the trials completed, the TF-IDF + logistic regression baseline
and the paper's figures.

With ``--speed`` it instead times one trial of the median configuration (the middle value of every
choice) on SMS Spam with 2 CPU threads.

Run: nice -n 10 python benchmarks/text_classification.py [--replicas 2] [--wall-seconds 60]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from seqopt.envs.text_classification import TextClassification, tfidf_baseline

AGENTS = {"neural": "Neural", "evolution": "Evolutionary", "evo_nas": "Evo-NAS"}
# The paper's Table 2 (best test ROC-AUC %, mean +- 2 s.e.m. over 10 runs) and Table 3 (trials in
# 2 hours with 30 workers), in the order Neural, Evolutionary, Evo-NAS.
PAPER_ROC_AUC = {
    "20newsgroups": ("95.45 +- 0.17", "95.31 +- 0.39", "95.67 +- 0.19"),
    "brown": ("66.29 +- 1.44", "66.79 +- 1.31", "66.82 +- 1.25"),
    "consumer_complaints": ("55.08 +- 0.97", "54.43 +- 1.41", "56.63 +- 0.71"),
    "mcdonalds": ("71.14 +- 1.19", "71.00 +- 1.43", "71.90 +- 1.03"),
    "news_aggregator": ("99.03 +- 0.04", "99.01 +- 0.04", "99.03 +- 0.04"),
    "reuters": ("92.36 +- 0.36", "92.68 +- 0.36", "92.89 +- 0.21"),
    "sms_spam": ("99.76 +- 0.10", "99.75 +- 0.08", "99.82 +- 0.05"),
}
PAPER_TRIALS = {
    "20newsgroups": ("136 +- 6", "175 +- 11", "174 +- 10"),
    "brown": ("109 +- 4", "119 +- 6", "116 +- 8"),
    "consumer_complaints": ("122 +- 5", "150 +- 9", "142 +- 12"),
    "mcdonalds": ("213 +- 21", "258 +- 27", "359 +- 65"),
    "news_aggregator": ("304 +- 33", "342 +- 32", "291 +- 26"),
    "reuters": ("160 +- 8", "194 +- 13", "201 +- 19"),
    "sms_spam": ("390 +- 58", "410 +- 41", "617 +- 150"),
}
# Training documents kept per dataset; None keeps the whole training split.
MAX_TRAIN = {"news_aggregator": 4000}


def mean_and_two_sem(values: list[float]) -> str:
    """Format values as "mean +- 2 s.e.m." (s.e.m. with the n - 1 standard deviation)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return f"{array.mean():.2f}" if len(array) else "n/a"
    return f"{array.mean():.2f} +- {2 * array.std(ddof=1) / np.sqrt(len(array)):.2f}"


def best_by_validation(trials_file: Path) -> tuple[dict[str, Any] | None, int, int]:
    """Return the ok trial with the highest validation ROC-AUC, the trial count and the failed count."""
    best: dict[str, Any] | None = None
    count = failed = 0
    with open(trials_file, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "trial" not in record:
                continue
            count += 1
            if record["status"] != "ok":
                failed += 1
            elif best is None or record["reward"] > best["reward"]:
                best = record
    return best, count, failed


def run_one_search(agent: str, dataset: str, seed: int, wall_seconds: float, sample_scale: float) -> dict[str, Any]:
    """Compose the ``text_small_<agent>`` experiment and run it; return its figures."""
    from hydra import compose, initialize_config_module

    from seqopt.cli import run_search

    overrides = [f"experiment=text_small_{agent}", f"env.dataset={dataset}", f"env.sample_scale={sample_scale}",
                 f"budget.wall_seconds={wall_seconds}", f"seed={seed}", "progress=false"]
    if MAX_TRAIN.get(dataset) is not None:
        overrides.append(f"env.max_train_examples={MAX_TRAIN[dataset]}")
    with initialize_config_module("seqopt.conf", version_base=None):
        cfg = compose("config", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        summary = run_search(cfg, run_dir)
        best, count, failed = best_by_validation(Path(run_dir) / "trials.jsonl")
    return {
        "agent": agent, "dataset": dataset, "seed": seed, "trials": count, "failed": failed,
        "best_validation_roc_auc": best["reward"] if best else None,
        "best_test_roc_auc": best["metrics"]["test_roc_auc"] if best else None,
        "best_values": best.get("values") if best else None, "wall_seconds": summary.wall_seconds,
    }


def time_median_configuration(repeats: int) -> None:
    """Print seconds per trial of the median configuration on SMS Spam with 2 CPU threads."""
    objective = TextClassification("sms_spam", sample_scale=1.0, hardware={"name": "cpu", "threads": 2})
    indices = tuple(int(k) // 2 for k in objective.space.cardinalities)
    print("Median configuration:", objective.space.decode_dict(indices))
    for sample_scale in (0.01, 1.0):
        objective.sample_scale = sample_scale
        seconds = []
        for repeat in range(repeats + 1):
            started = time.perf_counter()
            evaluation = objective.evaluate(indices, np.random.default_rng(repeat))
            seconds.append(time.perf_counter() - started)
            print(f"  sample_scale {sample_scale}: trial {repeat} {seconds[-1]:.2f} s, "
                  f"status {evaluation.status.value}, validation ROC-AUC {evaluation.reward:.4f}, "
                  f"steps {evaluation.metrics.get('steps')}", flush=True)
        # The first trial of a process also loads the data and GloVe; report it apart.
        print(f"sample_scale {sample_scale}: first trial {seconds[0]:.2f} s, later trials median "
              f"{np.median(seconds[1:]):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["sms_spam", "mcdonalds", "news_aggregator"])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--replicas", type=int, default=2, help="searches per dataset and agent (seeds 0, 1, ...)")
    parser.add_argument("--wall-seconds", type=float, default=60.0, help="wall-clock budget of one search, seconds")
    parser.add_argument("--sample-scale", type=float, default=0.01,
                        help="fraction of the paper's training samples each trial trains on")
    parser.add_argument("--speed", action="store_true", help="only time the median configuration on SMS Spam")
    parser.add_argument("--repeats", type=int, default=3, help="timed trials per scale with --speed")
    parser.add_argument("--output", type=Path, default=None, help="write every search's figures to this JSON file")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="print the table (and --plot) from a file written by --output instead of searching")
    parser.add_argument("--plot", type=Path, default=None, help="draw the best test ROC-AUC per agent to this PNG")
    args = parser.parse_args()
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        results = saved["results"]
        datasets = saved.get("datasets") or list(dict.fromkeys(r["dataset"] for r in results))
        agents = saved.get("agents") or list(dict.fromkeys(r["agent"] for r in results))
        report(results, saved["baselines"], datasets, agents, args.plot)
        return
    logging.basicConfig(level=logging.WARNING)
    print(f"{datetime.date.today()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")

    if args.speed:
        time_median_configuration(args.repeats)
        return

    print(f"Scale: {args.replicas} replicas x {args.wall_seconds:.0f} s per search, 2 workers x 1 thread, "
          f"sample_scale {args.sample_scale} (the paper: 10 replicas x 7200 s, 30 workers x 2 CPUs, scale 1.0)")
    results: list[dict[str, Any]] = []
    baselines = {}
    for dataset in args.datasets:
        data = TextClassification(dataset, max_train_examples=MAX_TRAIN.get(dataset)).load()
        baselines[dataset] = tfidf_baseline(data)
        print(f"{dataset}: TF-IDF baseline test ROC-AUC {100 * baselines[dataset].test_roc_auc:.2f} "
              f"(C={baselines[dataset].best_c})", flush=True)
        for agent in args.agents:
            for seed in range(args.replicas):
                try:
                    result = run_one_search(agent, dataset, seed, args.wall_seconds, args.sample_scale)
                except Exception:
                    # A search that cannot even start (for example a config that does not compose) is
                    # retried once, so one transient error does not end a half-hour run.
                    logging.exception("Search %s seed %d on %s failed to run; retrying once", agent, seed, dataset)
                    time.sleep(20)
                    result = run_one_search(agent, dataset, seed, args.wall_seconds, args.sample_scale)
                results.append(result)
                print(f"  {agent} seed {seed}: {result['trials']} trials ({result['failed']} failed), best "
                      f"validation {result['best_validation_roc_auc']}, its test {result['best_test_roc_auc']}",
                      flush=True)

    report(results, {k: vars(v) for k, v in baselines.items()}, args.datasets, args.agents, args.plot)
    if args.output is not None:
        args.output.write_text(json.dumps({"datasets": args.datasets, "agents": args.agents, "results": results,
                                           "baselines": {k: vars(v) for k, v in baselines.items()}}, indent=2),
                               encoding="utf-8")


def report(results: list[dict[str, Any]], baselines: dict[str, dict[str, Any]], datasets: list[str],
           agents: list[str], plot: Path | None) -> None:
    """Print the results table and, if ``plot`` is given, draw the best test ROC-AUC per agent."""
    print("\n| dataset | agent | best test ROC-AUC % (here) | trials (here) | paper ROC-AUC % | paper trials | "
          "TF-IDF baseline % |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for dataset in datasets:
        for agent in agents:
            runs = [r for r in results if r["dataset"] == dataset and r["agent"] == agent]
            aucs = [100 * r["best_test_roc_auc"] for r in runs if r["best_test_roc_auc"] is not None]
            column = list(AGENTS).index(agent)
            print(f"| {dataset} | {AGENTS[agent]} | {mean_and_two_sem(aucs)} | "
                  f"{mean_and_two_sem([r['trials'] for r in runs])} | {PAPER_ROC_AUC[dataset][column]} | "
                  f"{PAPER_TRIALS[dataset][column]} | {100 * baselines[dataset]['test_roc_auc']:.2f} |")
    if plot is None:
        return

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.5), squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        for position, agent in enumerate(agents):
            aucs = [100 * r["best_test_roc_auc"] for r in results
                    if r["dataset"] == dataset and r["agent"] == agent and r["best_test_roc_auc"] is not None]
            axis.scatter([position] * len(aucs), aucs, color=f"C{position}", label=AGENTS[agent])
        axis.axhline(100 * baselines[dataset]["test_roc_auc"], color="gray", linestyle="--", label="TF-IDF + LR")
        axis.set_xticks(range(len(agents)), [AGENTS[a] for a in agents])
        axis.set_title(dataset)
        axis.set_ylabel("best test ROC-AUC % (by validation)")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(plot, dpi=100)
    print(f"Figure written to {plot}")

if __name__ == "__main__":
    main()
