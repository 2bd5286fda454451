"""NAS-Bench-101 as a seqopt objective, with the official budget accounting.

Ying et al. 2019, "NAS-Bench-101: Towards Reproducible Neural Architecture Search"
(arXiv:1902.09635). The agents searched on it follow "Evolutionary-Neural Hybrid Agents for
Architecture Search" (Maziarz et al., arXiv:1811.09828). That paper's NAS-Bench figure plots test
regret against the simulated training time spent.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from seqopt.data import locate
from seqopt.envs.nasbench101.cell import (
    EDGE_SLOTS,
    NUM_EDGE_BITS,
    NUM_OPERATION_CHOICES,
    OPERATIONS,
    cell_from_indices,
    graph_hash,
    invalid_reason,
)
from seqopt.envs.nasbench101.table import NASBench101Table, load_table
from seqopt.objective import Evaluation, Status
from seqopt.spaces import Choice, ChoiceSpace

DATASET = "nas-bench-101"
DATA_FILE = "nasbench_only108.tfrecord"
MODES = ("sample", "mean")
INVALID_POLICIES = ("penalty", "resample")


class CellSummary(NamedTuple):
    """What the objective needs of a cell: its table key, or why it is invalid, and its size."""

    module_hash: str | None
    reason: str | None  # None for a valid cell
    num_edges: int
    num_vertices: int


@functools.lru_cache(maxsize=1 << 16)
def summarize_encoding(sequence: tuple[int, ...]) -> CellSummary:
    """Prune, check and hash the cell of a 26-choice encoding (cached: searches revisit cells)."""
    pruned, reason = invalid_reason(cell_from_indices(sequence))
    if reason is not None or pruned is None:
        return CellSummary(None, reason, 0, 0)
    return CellSummary(graph_hash(pruned.matrix, pruned.labels), None, pruned.num_edges, len(pruned.operations))


@functools.lru_cache(maxsize=2)
def _shared_table(path: Path, epochs: int, cache: bool, modified_ns: int) -> NASBench101Table:
    """Load a table once per process; ``modified_ns`` makes a changed file load anew."""
    return load_table(path, epochs=epochs, cache=cache)


def nasbench101_space() -> ChoiceSpace:
    """Return the 26-choice space: ``edge_<i>_<j>`` bits for i < j, then ``op_1`` to ``op_5``."""
    edges = [Choice(f"edge_{source}_{target}", (0, 1)) for source, target in EDGE_SLOTS]
    operations = [Choice(f"op_{vertex}", OPERATIONS) for vertex in range(1, NUM_OPERATION_CHOICES + 1)]
    return ChoiceSpace(edges + operations)


class NASBench101:
    """NAS-Bench-101 (108-epoch training on CIFAR-10) as a seqopt objective.

    Gymnasium id ``seqopt/NASBench101-v0``. A sequence contains 21 adjacency bits and 5 operations
    (see ``nasbench101_space``). The cell is pruned, checked (input connected to output, at most 9
    edges) and looked up by its graph hash.

    * reward: validation accuracy (a fraction);
    * cost_seconds: the training time of the run the reward came from; an invalid cell costs 0,
      as in the official API, where an invalid spec raises before any budget is charged;
    * metrics: ``hash``, ``repeat`` (the run used, -1 for the mean), ``test_accuracy`` (of that
      run), ``mean_test_accuracy`` (over the repeats, the figure the NAS-Bench-101 paper scores an
      incumbent with), ``test_regret`` (the table's best mean test accuracy, 0.943176 on the
      official file, minus ``mean_test_accuracy``), ``valid_regret``, ``trainable_parameters``,
      ``num_edges`` and ``num_vertices`` of the pruned cell.

    Args:
        path: the TFRecord file; None finds ``nasbench_only108.tfrecord`` through the data registry
            (the folder ``nas-bench-101`` of ``SEQOPT_DATA_MIRROR`` or of the cache that
            ``seqopt-data download nas-bench-101`` fills). An explicit path is not checksummed.
        mode: ``"sample"`` draws one of the training repeats per query with the trial's
            generator, as the official ``query()`` does; ``"mean"`` returns the mean over repeats
            and charges the mean training time.
        invalid_policy: ``"penalty"``: an invalid cell gets ``invalid_reward`` with status
            ``invalid``. ``"resample"``: the adjacency bits are redrawn uniformly with the trial's
            generator, at most ``max_resamples`` times, and the first valid cell is evaluated in
            place of the proposal (metrics ``evaluated_indices`` and ``resamples`` record it); when
            no draw is valid the penalty applies.
        invalid_reward: reward of an invalid cell.
        max_resamples: bound on the redraws of the ``"resample"`` policy.
        epochs: epoch budget of the records to load (108 is the only one in the 108-epoch file).
        cache: keep the parsed table as a ``.npz`` file in the data cache folder.
    """

    def __init__(
        self,
        path: str | None = None,
        mode: str = "sample",
        invalid_policy: str = "penalty",
        invalid_reward: float = 0.0,
        max_resamples: int = 100,
        epochs: int = 108,
        cache: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}.")
        if invalid_policy not in INVALID_POLICIES:
            raise ValueError(f"invalid_policy must be one of {list(INVALID_POLICIES)}, got {invalid_policy!r}.")
        if isinstance(max_resamples, bool) or not isinstance(max_resamples, int) or max_resamples < 0:
            raise ValueError(f"max_resamples must be an int >= 0, got {max_resamples!r}.")
        if not math.isfinite(invalid_reward):
            raise ValueError(f"invalid_reward must be a finite number, got {invalid_reward!r}.")
        self.path = Path(path).expanduser() if path is not None else locate(DATASET, DATA_FILE)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"NAS-Bench-101 file {self.path} not found. Download {DATA_FILE} with `seqopt-data download "
                f"{DATASET}` (or pass path=None to look in SEQOPT_DATA_MIRROR and the cache)."
            )
        self.mode = mode
        self.invalid_policy = invalid_policy
        self.invalid_reward = float(invalid_reward)
        self.max_resamples = max_resamples
        self.epochs = epochs
        self.cache = cache
        self.table: NASBench101Table = _shared_table(self.path, epochs, cache, self.path.stat().st_mtime_ns)
        self.space = nasbench101_space()
        self.best_mean_test_accuracy = float(np.nanmax(self.table.mean_test_accuracy))
        self.best_mean_validation_accuracy = float(np.nanmax(self.table.mean_validation_accuracy))

    def __getstate__(self) -> dict[str, Any]:
        # Workers reload the table from the path (the .npz cache makes that fast) instead of
        # receiving hundreds of megabytes with every pickled copy.
        state = self.__dict__.copy()
        del state["table"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.table = _shared_table(self.path, self.epochs, self.cache, self.path.stat().st_mtime_ns)

    def __repr__(self) -> str:
        return f"NASBench101(path={str(self.path)!r}, mode={self.mode!r}, invalid_policy={self.invalid_policy!r})"

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        sequence = self.space.validate(indices)
        summary = summarize_encoding(sequence)
        metrics: dict[str, Any] = {}
        if summary.reason is not None and self.invalid_policy == "resample":
            sequence, summary, resamples = self._resample(sequence, self._need_rng(rng, "resample"))
            metrics["resamples"] = resamples
            metrics["evaluated_indices"] = list(sequence)
        if summary.reason is not None:
            metrics["invalid_reason"] = summary.reason
            return Evaluation(reward=self.invalid_reward, metrics=metrics, cost_seconds=0.0, status=Status.INVALID)
        return self._look_up(summary, rng, metrics)

    def _resample(self, sequence: tuple[int, ...], rng: np.random.Generator
                  ) -> tuple[tuple[int, ...], CellSummary, int]:
        """Redraw the adjacency bits, keeping the operations, until the cell is valid or the bound is hit."""
        reason = "no redraw allowed (max_resamples=0)"
        for attempt in range(1, self.max_resamples + 1):
            bits = rng.integers(0, 2, size=NUM_EDGE_BITS).tolist()
            candidate = (*bits, *sequence[NUM_EDGE_BITS:])
            summary = summarize_encoding(candidate)
            if summary.reason is None:
                return candidate, summary, attempt
            reason = summary.reason
        failure = CellSummary(None, f"no valid cell in {self.max_resamples} redraws; last: {reason}", 0, 0)
        return sequence, failure, self.max_resamples

    def _look_up(self, summary: CellSummary, rng: np.random.Generator | None, metrics: dict[str, Any]) -> Evaluation:
        table = self.table
        row = table.row_of.get(summary.module_hash or "")
        if row is None:
            return Evaluation.failed(
                f"Cell hash {summary.module_hash} is valid but not in {self.path}; the file is incomplete "
                f"(it contains {len(table)} cells, the official 108-epoch file 423,624).",
                metrics={**metrics, "hash": summary.module_hash},
            )
        repeats = int(table.num_repeats[row])
        if self.mode == "sample":
            repeat = int(self._need_rng(rng, "sample").integers(repeats))
            reward = float(table.validation_accuracy[row, repeat])
            cost = float(table.training_time[row, repeat])
            test = float(table.test_accuracy[row, repeat])
        else:
            repeat = -1
            reward = float(np.nanmean(table.validation_accuracy[row]))
            cost = float(np.nanmean(table.training_time[row]))
            test = float(np.nanmean(table.test_accuracy[row]))
        mean_test = float(np.nanmean(table.test_accuracy[row]))
        metrics.update({
            "hash": summary.module_hash,
            "repeat": repeat,
            "test_accuracy": test,
            "mean_test_accuracy": mean_test,
            "test_regret": self.best_mean_test_accuracy - mean_test,
            "valid_regret": self.best_mean_validation_accuracy - float(np.nanmean(table.validation_accuracy[row])),
            "trainable_parameters": int(table.trainable_parameters[row]),
            "num_edges": summary.num_edges,
            "num_vertices": summary.num_vertices,
        })
        return Evaluation(reward=reward, metrics=metrics, cost_seconds=cost)

    @staticmethod
    def _need_rng(rng: np.random.Generator | None, purpose: str) -> np.random.Generator:
        if rng is None:
            raise ValueError(f"NASBench101 needs the trial's rng to {purpose}; got rng=None.")
        return rng
