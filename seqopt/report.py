"""The ``seqopt-report`` command: aggregate many run folders into replica-band plots and a ranked table.

Each run folder contains ``trials.jsonl`` and the ``.hydra/config.yaml`` that Hydra saved for it.
Runs whose configs differ only in the seed (and in settings that do not change what is searched,
such as the progress bar or the checkpoint cadence) are replicas of one setting; a setting is
named by the config keys that vary between settings. Settings are ranked by the final reward
moving average (window 50 by default), averaged over their replicas, which is how the
hyperparameter scans of Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture
Search" (arXiv:1811.09828), Appendix B, pick the best values.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqopt.plots import INTERVALS, best_so_far, moving_average, plot_runs, read_rewards
from seqopt.store import TRIALS_FILENAME, iter_records

logger = logging.getLogger(__name__)

#: Config keys that never tell settings apart: the seed (the replica axis) and run management.
IGNORED_KEYS = ("seed", "progress", "log_trials", "resume", "checkpoint", "hydra")


@dataclass
class Run:
    """One run folder: its flattened config and the figures read from its trial store."""

    path: Path
    config: dict[str, Any]
    num_trials: int
    num_failed: int
    final_moving_average: float
    best_reward: float


@dataclass
class Setting:
    """The replicas of one setting and their figures averaged over seeds."""

    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def seeds(self) -> list[Any]:
        return [run.config.get("seed") for run in self.runs]

    def mean_and_std(self, name: str) -> tuple[float, float]:
        values = np.array([getattr(run, name) for run in self.runs], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return math.nan, math.nan
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def find_runs(folders: Iterable[str | Path]) -> list[Path]:
    """Return every run folder (a folder with a trial store) at or below ``folders``, sorted.

    Raises:
        FileNotFoundError: when a folder does not exist or no trial store is found at all.
    """
    runs: set[Path] = set()
    for folder in map(Path, folders):
        if not folder.exists():
            raise FileNotFoundError(f"Folder not found: {folder}.")
        if (folder / TRIALS_FILENAME).exists():
            runs.add(folder)
        else:
            runs.update(store.parent for store in folder.rglob(TRIALS_FILENAME))
    if not runs:
        raise FileNotFoundError(
            f"No {TRIALS_FILENAME} found in {[str(f) for f in folders]}; give run folders or the sweep "
            "folders above them."
        )
    return sorted(runs, key=_natural_key)


def _natural_key(path: Path) -> list[Any]:
    # Hydra numbers sweep jobs 0, 1, ..., 10: sort 2 before 10.
    return [int(part) if part.isdigit() else part for part in path.parts]


def flatten(config: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def read_run(path: Path, window: int) -> Run | None:
    """Read one run folder; return None (with a warning) when its store is empty."""
    config_file = path / ".hydra" / "config.yaml"
    config: dict[str, Any] = {}
    if config_file.exists():
        from omegaconf import OmegaConf

        container = OmegaConf.to_container(OmegaConf.load(config_file), resolve=False)
        config = flatten(container) if isinstance(container, dict) else {}
    else:
        logger.warning("%s has no .hydra/config.yaml; it is grouped with the other runs without one.", path)
    rewards = read_rewards(path)
    if len(rewards) == 0:
        logger.warning("Skipping %s: its trial store is empty.", path)
        return None
    num_failed = sum(record.get("status") == "failed" for record in iter_records(path))
    averages = moving_average(rewards, window)
    best = best_so_far(rewards)
    return Run(path=path, config=config, num_trials=len(rewards), num_failed=num_failed,
               final_moving_average=float(averages[-1]), best_reward=float(best[-1]))


def varying_keys(runs: Sequence[Run], ignored: Sequence[str] = IGNORED_KEYS) -> list[str]:
    """Return the config keys whose values differ between runs, leaving out ``ignored`` keys and prefixes."""
    keys = sorted({key for run in runs for key in run.config})

    def is_ignored(key: str) -> bool:
        return any(key == name or key.startswith(f"{name}.") for name in ignored)

    return [key for key in keys if not is_ignored(key)
            and len({repr(run.config.get(key, "<unset>")) for run in runs}) > 1]


def group_runs(runs: Sequence[Run], ignored: Sequence[str] = IGNORED_KEYS) -> list[Setting]:
    """Group replicas by the values of the varying keys, ranked by mean final moving average (best first)."""
    keys = varying_keys(runs, ignored)
    settings: dict[str, Setting] = {}
    for run in runs:
        label = ", ".join(f"{key}={run.config.get(key)}" for key in keys) or "all runs"
        settings.setdefault(label, Setting(label)).runs.append(run)
    for setting in settings.values():
        seeds = setting.seeds
        if len(set(map(repr, seeds))) < len(seeds):
            logger.warning("Setting %r has repeated seeds %s; its replicas are not independent.", setting.label, seeds)

    def rank(setting: Setting) -> float:
        mean = setting.mean_and_std("final_moving_average")[0]
        return -mean if math.isfinite(mean) else math.inf

    return sorted(settings.values(), key=rank)


def format_table(settings: Sequence[Setting], window: int) -> list[list[str]]:
    """Rows of the ranked table, header first."""
    rows = [["rank", "setting", "replicas", "trials", f"final moving average (window {window}), mean ± std",
             "best reward, mean ± std", "failed trials"]]
    for position, setting in enumerate(settings, start=1):
        average, average_std = setting.mean_and_std("final_moving_average")
        best, best_std = setting.mean_and_std("best_reward")
        trials = sorted({run.num_trials for run in setting.runs})
        rows.append([
            str(position),
            setting.label,
            str(len(setting.runs)),
            str(trials[0]) if len(trials) == 1 else f"{trials[0]}-{trials[-1]}",
            f"{average:.6g} ± {average_std:.2g}",
            f"{best:.6g} ± {best_std:.2g}",
            str(sum(run.num_failed for run in setting.runs)),
        ])
    return rows


def to_markdown(rows: Sequence[Sequence[str]]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def write_report(settings: Sequence[Setting], out: Path, window: int, interval: str) -> list[Path]:
    """Write the table (Markdown and CSV) and the two replica-band plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = format_table(settings, window)
    markdown = out / "report.md"
    markdown.write_text(to_markdown(rows) + "\n", encoding="utf-8")
    table = out / "report.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "setting", "replicas", "trials", "final_moving_average_mean",
                         "final_moving_average_std", "best_reward_mean", "best_reward_std", "failed_trials", "runs"])
        for position, setting in enumerate(settings, start=1):
            writer.writerow([position, setting.label, len(setting.runs), min(r.num_trials for r in setting.runs),
                             *setting.mean_and_std("final_moving_average"), *setting.mean_and_std("best_reward"),
                             sum(r.num_failed for r in setting.runs), " ".join(str(r.path) for r in setting.runs)])

    run_dirs = [run.path for setting in settings for run in setting.runs]
    labels = [setting.label for setting in settings for _ in setting.runs]
    plots = plot_runs(run_dirs, out / "curves", labels=labels, window=window, interval=interval)
    return [markdown, table, *plots]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``seqopt-report``."""
    parser = argparse.ArgumentParser(
        prog="seqopt-report",
        description="Aggregate run folders (for example the folders of a Hydra multirun) into a table of settings "
                    "ranked by final reward moving average, averaged over seeds, and replica-band plots.",
    )
    parser.add_argument("folders", nargs="+", metavar="DIR",
                        help="run folders, or folders searched recursively for run folders (trials.jsonl)")
    parser.add_argument("--out", default="report", metavar="DIR",
                        help="folder for report.md, report.csv and the plots (default: ./report)")
    parser.add_argument("--window", type=int, default=50, help="trials in the reward moving average (default 50)")
    parser.add_argument("--interval", choices=INTERVALS, default="2sem",
                        help="plot band: 2sem (mean +- 2 s.e.m., default), ci70 or minmax")
    parser.add_argument("--ignore", nargs="*", default=[], metavar="KEY",
                        help="more config keys (or key prefixes) that do not tell settings apart")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")

    try:
        paths = find_runs(args.folders)
    except FileNotFoundError as error:
        parser.error(str(error))
    runs = [run for run in (read_run(path, args.window) for path in paths) if run is not None]
    if not runs:
        parser.error("every run folder found has an empty trial store")
    settings = group_runs(runs, (*IGNORED_KEYS, *args.ignore))

    written = write_report(settings, Path(args.out), args.window, args.interval)
    print(f"{len(runs)} runs, {len(settings)} settings, ranked by final reward moving average "
          f"(window {args.window}), averaged over seeds:\n")
    print(to_markdown(format_table(settings, args.window)))
    print()
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
