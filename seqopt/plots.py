"""Search curves and their plots: reward moving average and best reward against trials.

These are the two views of Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture
Search" (arXiv:1811.09828), Figure 2: the moving average of the reward over a window of 50
consecutive trials, and the best reward so far, each averaged over replicas with a shaded band.

The plain functions (``read_rewards``, ``moving_average``, ``best_so_far``, ``band``,
``plot_bands``, ``plot_runs``) work on trial stores or on arrays, for reports and benchmarks; the
``seqopt-plot`` command wraps ``plot_runs``.
"""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqopt.store import iter_records

logger = logging.getLogger(__name__)

INTERVALS = ("2sem", "ci70", "minmax")
"""Band choices: mean +- 2 standard errors of the mean, a 70 % t confidence interval of the mean
(the paper's Figure 2), or the minimum and maximum over replicas."""


def read_rewards(run_dir: str | Path) -> np.ndarray:
    """Return the rewards of a run's trial store in trial-id order, NaN for failed trials."""
    records = sorted(iter_records(run_dir), key=lambda record: int(record["trial"]))
    return np.array([math.nan if r.get("reward") is None or r.get("status") == "failed" else float(r["reward"])
                     for r in records], dtype=np.float64)


def moving_average(rewards: np.ndarray, window: int = 50) -> np.ndarray:
    """Mean of the usable rewards among the last ``window`` trials at every trial (NaN where there are none).

    The first ``window - 1`` entries average the trials so far. Failed trials (NaN) are skipped.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}.")
    rewards = np.asarray(rewards, dtype=np.float64)
    usable = np.isfinite(rewards)
    sums = np.concatenate([[0.0], np.cumsum(np.where(usable, rewards, 0.0))])
    counts = np.concatenate([[0], np.cumsum(usable)])
    end = np.arange(1, len(rewards) + 1)
    start = np.maximum(end - window, 0)
    window_counts = counts[end] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window_counts > 0, (sums[end] - sums[start]) / window_counts, np.nan)


def best_so_far(rewards: np.ndarray) -> np.ndarray:
    """Highest usable reward up to every trial (NaN until the first usable one)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    best = np.fmax.accumulate(np.where(np.isfinite(rewards), rewards, -np.inf)) if len(rewards) else rewards
    return np.where(np.isfinite(best), best, np.nan)


@dataclass
class Band:
    """Mean curve of several replicas with a lower and upper edge, one value per trial."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    num_replicas: int
    interval: str


def band(curves: np.ndarray | Sequence[np.ndarray], interval: str = "2sem") -> Band:
    """Average replica curves (rows) trial by trial, with the band that ``interval`` names.

    Replicas of different lengths are cut to the shortest one.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {list(INTERVALS)}, got {interval!r}.")
    rows = [np.asarray(curve, dtype=np.float64) for curve in curves]
    if not rows:
        raise ValueError("band() needs at least one curve.")
    length = min(len(row) for row in rows)
    if any(len(row) != length for row in rows):
        logger.warning("Replicas have %s trials; cutting all to the shortest, %d.",
                       sorted({len(row) for row in rows}), length)
    stacked = np.stack([row[:length] for row in rows])
    count = len(stacked)
    with warnings.catch_warnings():
        # A trial where every replica failed gives an all-NaN column and a NaN mean, on purpose.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(stacked, axis=0)
        if interval == "minmax":
            low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
        elif count < 2:
            low, high = mean.copy(), mean.copy()
        else:
            sem = np.nanstd(stacked, axis=0, ddof=1) / math.sqrt(count)
            if interval == "2sem":
                half_width = 2.0 * sem
            else:
                from scipy import stats

                half_width = float(stats.t.ppf(0.85, count - 1)) * sem
            low, high = mean - half_width, mean + half_width
    return Band(mean=mean, low=low, high=high, num_replicas=count, interval=interval)


_INTERVAL_LABELS = {"2sem": "mean ± 2 s.e.m.", "ci70": "mean, 70 % confidence interval", "minmax": "mean, min to max"}


def plot_bands(
    curves_by_label: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    path: str | Path,
    ylabel: str,
    title: str | None = None,
    interval: str = "2sem",
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Draw one mean line with a shaded band per label against trials, and save it as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7.0, 4.5))
    for label, curves in curves_by_label.items():
        summary = band(curves, interval)
        trials = np.arange(1, len(summary.mean) + 1)
        replicas = f"{summary.num_replicas} replica{'s' if summary.num_replicas != 1 else ''}"
        line = axes.plot(trials, summary.mean, label=f"{label}, {replicas}", linewidth=1.4)[0]
        axes.fill_between(trials, summary.low, summary.high, color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("trials")
    axes.set_ylabel(ylabel)
    if ylim is not None:
        axes.set_ylim(*ylim)
    axes.set_title(title or f"{ylabel}: {_INTERVAL_LABELS[interval]} over replicas", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def run_label(run_dir: str | Path) -> str:
    """Name a run by the agent config that Hydra recorded for it, else by its folder's name."""
    run_dir = Path(run_dir)
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if hydra_file.exists():
        from omegaconf import OmegaConf

        choices = OmegaConf.load(hydra_file).hydra.runtime.get("choices", {})
        if choices.get("agent"):
            return str(choices["agent"])
    return run_dir.name


def plot_runs(
    run_dirs: Sequence[str | Path],
    out_prefix: str | Path,
    labels: Sequence[str] | None = None,
    window: int = 50,
    interval: str = "2sem",
) -> list[Path]:
    """Plot the runs' two views, grouping replicas by label; returns the paths of the two PNGs.

    Writes ``<out_prefix>_moving_average.png`` and ``<out_prefix>_best_reward.png``. A label
    defaults to ``run_label``.
    """
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"Got {len(labels)} labels for {len(run_dirs)} run folders; give one label per run or none.")
    groups: dict[str, list[np.ndarray]] = {}
    for index, run_dir in enumerate(run_dirs):
        label = labels[index] if labels is not None else run_label(run_dir)
        groups.setdefault(label, []).append(read_rewards(run_dir))
    if any(len(rewards) == 0 for runs in groups.values() for rewards in runs):
        raise ValueError("A run folder has an empty trial store; remove it from the list.")

    prefix = Path(out_prefix)
    averages = {label: [moving_average(r, window) for r in runs] for label, runs in groups.items()}
    bests = {label: [best_so_far(r) for r in runs] for label, runs in groups.items()}
    return [
        plot_bands(averages, f"{prefix}_moving_average.png", f"reward moving average (window {window})",
                   interval=interval),
        plot_bands(bests, f"{prefix}_best_reward.png", "best reward", interval=interval),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``seqopt-plot``."""
    parser = argparse.ArgumentParser(
        prog="seqopt-plot",
        description="Plot reward moving average and best reward against trials for runs, replicas grouped by label.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders that hold a trials.jsonl")
    parser.add_argument("--out", required=True, metavar="FILE_PREFIX",
                        help="prefix of the PNG files: PREFIX_moving_average.png and PREFIX_best_reward.png")
    parser.add_argument("--labels", nargs="+", metavar="LABEL",
                        help="one label per RUN_DIR; runs with the same label are replicas (default: the agent "
                             "config recorded by Hydra, else the folder name)")
    parser.add_argument("--window", type=int, default=50, help="trials in the moving average (default 50)")
    parser.add_argument("--interval", choices=INTERVALS, default="2sem",
                        help="band: 2sem (mean +- 2 s.e.m., default), ci70 (70 %% t interval) or minmax")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        if not Path(run_dir).exists():
            parser.error(f"run folder not found: {run_dir}")
    try:
        paths = plot_runs(args.run_dirs, args.out, labels=args.labels, window=args.window, interval=args.interval)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
