"""The NAS-Bench-101 table in numpy arrays, loaded from the official TFRecord file.

Parsing the official 500 MB file in pure Python takes an estimated minute (about 50 us per
record, measured on a synthetic file). So the arrays are saved once to a ``.npz`` file in the data
cache folder, and reloaded from there while the source file keeps its size and modification time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqopt.data import data_dir
from seqopt.envs.nasbench101.cell import INPUT_LABEL, NUM_VERTICES, OPERATIONS, OUTPUT_LABEL
from seqopt.envs.nasbench101.records import RecordFormatError, decode_row, iter_tfrecords

logger = logging.getLogger(__name__)

_LABELS = {"input": INPUT_LABEL, "output": OUTPUT_LABEL, **{op: i for i, op in enumerate(OPERATIONS)}}
_PADDING_LABEL = -3  # label of the unused vertex slots of cells with fewer than 7 vertices
_CACHE_VERSION = 1


@dataclass
class NASBench101Table:
    """Every cell of the file for one epoch budget; row i of each array belongs to ``hashes[i]``.

    Repeats are columns; a cell with fewer repeats than the widest has NaN in the unused columns.
    Accuracies are fractions in [0, 1] and times are seconds, as the file stores them.
    """

    epochs: int
    hashes: np.ndarray  # (N,) module hashes
    num_vertices: np.ndarray  # (N,) vertices of the pruned cell
    adjacency: np.ndarray  # (N, 7, 7) pruned adjacency, zero-padded
    labels: np.ndarray  # (N, 7) hash labels of the operations (-1 input, -2 output, -3 padding)
    trainable_parameters: np.ndarray  # (N,)
    num_repeats: np.ndarray  # (N,)
    training_time: np.ndarray  # (N, R) seconds of training up to the end of the schedule
    train_accuracy: np.ndarray  # (N, R)
    validation_accuracy: np.ndarray  # (N, R)
    test_accuracy: np.ndarray  # (N, R)
    row_of: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.row_of = {str(h): i for i, h in enumerate(self.hashes.tolist())}

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def mean_test_accuracy(self) -> np.ndarray:
        return np.nanmean(self.test_accuracy, axis=1)

    @property
    def mean_validation_accuracy(self) -> np.ndarray:
        return np.nanmean(self.validation_accuracy, axis=1)

    def operations(self, row: int) -> list[str]:
        """Return the operation names of the cell in ``row``, ``input`` first."""
        names = {label: name for name, label in _LABELS.items()}
        return [names[int(label)] for label in self.labels[row, : self.num_vertices[row]]]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in (
            "hashes", "num_vertices", "adjacency", "labels", "trainable_parameters", "num_repeats",
            "training_time", "train_accuracy", "validation_accuracy", "test_accuracy")}


def read_table(path: str | Path, epochs: int = 108, check_crc: bool = False) -> NASBench101Table:
    """Parse a NAS-Bench-101 TFRecord file, keeping the records of one epoch budget.

    Raises:
        RecordFormatError: on a malformed record, or when no record has ``epochs``.
    """
    started = time.monotonic()
    rows: dict[str, int] = {}
    vertices: list[int] = []
    adjacency: list[np.ndarray] = []
    labels: list[list[int]] = []
    parameters: list[int] = []
    runs: list[list[tuple[float, float, float, float]]] = []
    epochs_seen: set[int] = set()
    for payload in iter_tfrecords(path, check_crc=check_crc):
        row = decode_row(payload)
        epochs_seen.add(row.epochs)
        if row.epochs != epochs:
            continue
        if not row.metrics.evaluation_data:
            raise RecordFormatError(f"{path}: record of cell {row.module_hash} has no evaluation data.")
        index = rows.get(row.module_hash)
        if index is None:
            size = row.adjacency.shape[0]
            if size > NUM_VERTICES or len(row.operations) != size:
                raise RecordFormatError(f"{path}: cell {row.module_hash} has a {size}x{size} matrix and "
                                        f"{len(row.operations)} operations; at most {NUM_VERTICES} vertices fit.")
            index = rows[row.module_hash] = len(vertices)
            vertices.append(size)
            padded = np.zeros((NUM_VERTICES, NUM_VERTICES), dtype=np.uint8)
            padded[:size, :size] = row.adjacency
            adjacency.append(padded)
            try:
                labels.append([_LABELS[op] for op in row.operations] + [_PADDING_LABEL] * (NUM_VERTICES - size))
            except KeyError as error:
                raise RecordFormatError(f"{path}: cell {row.module_hash} has unknown operation {error}.") from None
            parameters.append(row.metrics.trainable_parameters)
            runs.append([])
        # The last evaluation is the one at the end of training (the official API reads index 2 of 3).
        final = row.metrics.evaluation_data[-1]
        runs[index].append((final.training_time, final.train_accuracy, final.validation_accuracy,
                            final.test_accuracy))
    if not rows:
        raise RecordFormatError(f"{path} contains no record with {epochs} epochs; epoch budgets found: "
                                f"{sorted(epochs_seen)}.")

    width = max(len(r) for r in runs)
    results = np.full((len(runs), width, 4), np.nan)
    for index, cell_runs in enumerate(runs):
        results[index, : len(cell_runs)] = cell_runs
    table = NASBench101Table(
        epochs=epochs,
        hashes=np.array(list(rows), dtype=np.str_),
        num_vertices=np.array(vertices, dtype=np.int8),
        adjacency=np.stack(adjacency),
        labels=np.array(labels, dtype=np.int8),
        trainable_parameters=np.array(parameters, dtype=np.int64),
        num_repeats=np.array([len(r) for r in runs], dtype=np.int8),
        training_time=results[..., 0],
        train_accuracy=results[..., 1],
        validation_accuracy=results[..., 2],
        test_accuracy=results[..., 3],
    )
    logger.info("Read %d cells (%d epochs) from %s in %.1f s", len(table), epochs, path, time.monotonic() - started)
    return table


def _cache_path(path: Path, epochs: int) -> Path:
    return data_dir() / "nas-bench-101" / f"{path.name}.{epochs}-epochs.npz"


def load_table(path: str | Path, epochs: int = 108, cache: bool = True) -> NASBench101Table:
    """Return the table of ``path``, from the ``.npz`` cache when it matches the file, else parsed anew.

    The cache is keyed by the source's absolute path, size and modification time.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = np.array([str(path), str(stat.st_size), str(stat.st_mtime_ns), str(_CACHE_VERSION)])
    cached = _cache_path(path, epochs)
    if cache and cached.is_file():
        with np.load(cached, allow_pickle=False) as saved:
            if np.array_equal(saved["source"], key):
                arrays = {name: saved[name] for name in saved.files if name != "source"}
                return NASBench101Table(epochs=epochs, **arrays)
        logger.info("Cache %s belongs to another version of %s; parsing the file again.", cached, path)
    table = read_table(path, epochs)
    if cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(".tmp.npz")
        contents: dict[str, Any] = {"source": key, **table.arrays()}
        np.savez(temporary, **contents)
        temporary.replace(cached)
    return table
