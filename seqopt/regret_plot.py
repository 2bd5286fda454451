"""Test regret of the incumbent against simulated time, averaged over replicas with a band.

This is the figure of the NAS-Bench experiments of "Evolutionary-Neural Hybrid Agents for
Architecture Search" (Maziarz et al., arXiv:1811.09828, Figure 3). After each trial, the incumbent
is the trial with the best reward (validation accuracy) so far. The curve shows that incumbent's
test regret against the simulated training time spent, on a log time axis. It is the mean over
replicas, with a shaded band (a 70% confidence interval of the mean in the paper).

Curves come from trial stores (the ``trials.jsonl`` of a run folder) or from in-memory histories
(lists of ``TrialResult``). Run as ``python -m seqopt.regret_plot --output FILE NAME=RUN_DIR...``.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from seqopt.store import read_records
from seqopt.trial import TrialResult

BANDS = ("ci70", "sem2", "std")


@dataclass(frozen=True)
class RegretCurve:
    """The incumbent's regret after each trial of one replica.

    Attributes:
        times: simulated seconds spent when each trial finished (non-decreasing).
        regrets: regret of the incumbent after that trial; NaN until a trial with a usable
            reward and a regret metric has finished.
    """

    times: np.ndarray
    regrets: np.ndarray

    def at(self, grid: np.ndarray) -> np.ndarray:
        """Return the incumbent's regret at each time of ``grid`` (NaN before the first trial finished)."""
        positions = np.searchsorted(self.times, grid, side="right") - 1
        values = np.full(len(grid), np.nan)
        seen = positions >= 0
        values[seen] = self.regrets[positions[seen]]
        return values


def incumbent_curve(costs: Sequence[float], rewards: Sequence[float], regrets: Sequence[float]) -> RegretCurve:
    """Build a curve from per-trial costs, rewards and regrets in completion order.

    Trials with a NaN reward (failed) or a NaN regret never become the incumbent. A tie keeps the
    earlier trial, because a search reports the first best it found.
    """
    times = np.cumsum(np.asarray(costs, dtype=np.float64))
    curve = np.full(len(times), np.nan)
    best_reward = -math.inf
    best_regret = math.nan
    for i, (reward, regret) in enumerate(zip(rewards, regrets)):
        if math.isfinite(reward) and math.isfinite(regret) and reward > best_reward:
            best_reward, best_regret = reward, regret
        curve[i] = best_regret
    return RegretCurve(times, curve)


def _metric(metrics: Mapping[str, Any] | None, key: str) -> float:
    value = (metrics or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def curve_from_results(results: Sequence[TrialResult], metric: str = "test_regret") -> RegretCurve:
    """Build a curve from an in-memory history (``Search.history``), in completion order."""
    return incumbent_curve(
        [r.evaluation.cost_seconds for r in results],
        [r.evaluation.reward if r.usable else math.nan for r in results],
        [_metric(r.evaluation.metrics, metric) for r in results],
    )


def curve_from_records(records: Sequence[Mapping[str, Any]], metric: str = "test_regret") -> RegretCurve:
    """Build a curve from trial store records; ``total_cost_seconds`` is used where present."""
    rewards = [math.nan if r.get("reward") is None or r.get("status") == "failed" else float(r["reward"])
               for r in records]
    curve = incumbent_curve([float(r.get("cost_seconds") or 0.0) for r in records], rewards,
                            [_metric(r.get("metrics"), metric) for r in records])
    if records and all("total_cost_seconds" in r for r in records):
        return RegretCurve(np.array([float(r["total_cost_seconds"]) for r in records]), curve.regrets)
    return curve


def curve_from_store(path: str | os.PathLike[str], metric: str = "test_regret") -> RegretCurve:
    """Build a curve from a run folder or its ``trials.jsonl``."""
    return curve_from_records(read_records(path), metric)


def band(values: np.ndarray, kind: str = "ci70") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the mean over replicas (axis 0) and the lower and upper edges of the band.

    ``kind`` is ``"ci70"`` (a 70% normal confidence interval of the mean), ``"sem2"`` (plus and
    minus two standard errors of the mean) or ``"std"`` (plus and minus one standard deviation).
    Replicas with NaN at a time (no trial finished yet) are left out at that time.
    """
    if kind not in BANDS:
        raise ValueError(f"band kind must be one of {list(BANDS)}, got {kind!r}.")
    count = np.sum(np.isfinite(values), axis=0)
    with warnings.catch_warnings():
        # Times before any replica finished a trial have no values; they stay NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        std = np.where(count > 1, np.nanstd(values, axis=0, ddof=1), 0.0)
    if kind == "std":
        width = std
    else:
        z = NormalDist().inv_cdf(0.85) if kind == "ci70" else 2.0
        width = z * std / np.sqrt(np.maximum(count, 1))
    return mean, mean - width, mean + width


def plot_regret(
    groups: Mapping[str, Sequence[RegretCurve]],
    path: str | os.PathLike[str],
    budget: float | None = None,
    kind: str = "ci70",
    title: str | None = None,
    num_points: int = 200,
) -> Path:
    """Plot one mean curve with its band per group (agent) and save the figure to ``path``.

    Args:
        groups: group name -> one curve per replica.
        path: image file to write (the suffix picks the format).
        budget: end of the time axis; default the longest replica's time.
        kind: band kind, see ``band``.
        title: figure title.
        num_points: points of the log-spaced time grid.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = [c for group in groups.values() for c in group if len(c.times)]
    if not curves:
        raise ValueError("plot_regret needs at least one curve with a finished trial.")
    end = budget if budget is not None else max(float(c.times[-1]) for c in curves)
    # Start where every replica has finished its first trial, so each point averages all replicas.
    start = max(float(c.times[0]) for c in curves)
    if start >= end:
        start = min(float(c.times[0]) for c in curves)
    grid = np.geomspace(max(start, 1e-9), max(end, start * 1.0001, 1e-9), num_points)

    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    all_positive = True
    for name, group in groups.items():
        values = np.array([curve.at(grid) for curve in group])
        mean, low, high = band(values, kind)
        all_positive = all_positive and bool(np.all(mean[np.isfinite(mean)] > 0))
        line = axes.plot(grid, mean, label=f"{name} ({len(group)} replicas)")[0]
        axes.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xscale("log")
    if all_positive:
        axes.set_yscale("log")
    axes.set_xlabel("Simulated training time (seconds)")
    axes.set_ylabel("Test regret of the incumbent")
    band_text = {"ci70": "70% confidence interval of the mean", "sem2": "mean ± 2 s.e.m.", "std": "mean ± 1 std"}[kind]
    axes.set_title(title or f"Test regret against simulated time (band: {band_text})", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plot test regret against simulated time from trial stores.")
    parser.add_argument("groups", nargs="+", metavar="NAME=GLOB",
                        help="a curve name and a glob of run folders (or trials.jsonl files), one replica each")
    parser.add_argument("--output", required=True, help="image file to write")
    parser.add_argument("--metric", default="test_regret", help="metric key of the regret (default test_regret)")
    parser.add_argument("--budget", type=float, default=None, help="end of the time axis in simulated seconds")
    parser.add_argument("--band", choices=BANDS, default="ci70", help="band around the mean")
    arguments = parser.parse_args(argv)
    groups: dict[str, list[RegretCurve]] = {}
    for spec in arguments.groups:
        name, separator, pattern = spec.partition("=")
        if not separator:
            parser.error(f"group {spec!r} must be NAME=GLOB, e.g. evo_nas='multirun/*/*'.")
        paths = sorted(glob.glob(pattern))
        if not paths:
            parser.error(f"group {name!r}: no run folder matches {pattern!r}.")
        groups[name] = [curve_from_store(p, arguments.metric) for p in paths]
    print(plot_regret(groups, arguments.output, budget=arguments.budget, kind=arguments.band))


if __name__ == "__main__":
    main()
