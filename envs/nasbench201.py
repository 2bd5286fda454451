"""NAS-Bench-201 as a tabular objective: architecture search in simulated time on real results.

Dong and Yang 2020, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search" (arXiv:2001.00326). A cell has 4 nodes and 6 edges, and each edge carries one of 5
operations, so the space contains 5**6 = 15,625 architectures, each trained on CIFAR-10. Searches in
this space are compared with the agents of "Evolutionary-Neural Hybrid Agents for Architecture
Search" (Maziarz et al., arXiv:1811.09828).

Two search protocols:

* ``"12-epoch"``: the NAS-Bench-201 paper's protocol for its non-weight-sharing baselines. The
  reward is the validation accuracy after the 12-epoch schedule (cifar10-valid split: 25k train,
  25k validation images); a trial costs 12 epochs of training plus one validation pass; the final
  figure is the 200-epoch CIFAR-10 test accuracy of the architecture with the best reward.
* ``"200-epoch"``: the reward is the 200-epoch validation accuracy and a trial costs the 200-epoch
  training time plus one validation pass.

Where this differs from the paper: the tables at hand hold each architecture's mean over its
training seeds, so a query returns that mean and not one randomly drawn seed's result, which
makes the reward less noisy than in the paper. The 12-epoch cost is estimated as 12 times the
per-epoch training time measured in the 200-epoch runs, because the tables do not carry the
timing of the 12-epoch runs.

Accuracies, rewards and regrets are fractions in [0, 1] (the tables print percent).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from seqopt.data import locate, sha256_of
from seqopt.data.files import ChecksumError
from seqopt.data.registry import get_dataset
from seqopt.objective import Evaluation
from seqopt.spaces import Choice, ChoiceSpace

DATASET = "nas-bench-201"
LANDSCAPE_FILE = "nas_landscapes_cifar10_avg.csv"  # 200-epoch cifar10-valid: accuracies and timings
TEST200_FILE = "nats_bench_landscape_test200.csv"  # 200-epoch test accuracy after training on train+valid
TWELVE_EPOCH_FILE = "mini_nasbench201_12epoch.csv"  # 12-epoch accuracies

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (source node, target node) of each edge, in the order of NAS-Bench-201's architecture strings.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_ARCHITECTURES = len(OPERATIONS) ** len(EDGES)
PROTOCOLS = ("12-epoch", "200-epoch")
TWELVE_EPOCHS = 12

# Position weights that turn an index sequence into a base-5 code, first edge most significant.
_CODE_WEIGHTS = len(OPERATIONS) ** np.arange(len(EDGES) - 1, -1, -1, dtype=np.int64)


def arch_string(operations: Sequence[str]) -> str:
    """Format 6 operation names (in ``EDGES`` order) as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    if len(operations) != len(EDGES):
        raise ValueError(f"A NAS-Bench-201 cell has {len(EDGES)} edges, got {len(operations)} operations.")
    nodes = []
    for target in range(1, 4):
        inputs = [f"{operations[i]}~{source}" for i, (source, node) in enumerate(EDGES) if node == target]
        nodes.append("|" + "|".join(inputs) + "|")
    return "+".join(nodes)


def parse_arch_string(text: str) -> tuple[int, ...]:
    """Return the operation indices (in ``EDGES`` order) of a NAS-Bench-201 architecture string.

    Raises:
        ValueError: naming the part of ``text`` that is not ``op~source`` with a known op.
    """
    operations: dict[tuple[int, int], int] = {}
    nodes = text.split("+")
    if len(nodes) != 3:
        raise ValueError(f"Architecture string {text!r} must have 3 nodes separated by '+', got {len(nodes)}.")
    for target, node in enumerate(nodes, start=1):
        for part in node.strip("|").split("|"):
            name, _, source = part.partition("~")
            if name not in OPERATIONS or not source.isdigit():
                raise ValueError(f"Architecture string {text!r}: {part!r} is not 'op~source' with op in {OPERATIONS}.")
            operations[(int(source), target)] = OPERATIONS.index(name)
    if sorted(operations) != sorted(EDGES):
        raise ValueError(f"Architecture string {text!r} has edges {sorted(operations)}, expected {sorted(EDGES)}.")
    return tuple(operations[edge] for edge in EDGES)


def encode_codes(indices: np.ndarray) -> np.ndarray:
    """Turn index sequences of shape (..., 6) into base-5 codes in [0, 15625)."""
    return np.asarray(indices, dtype=np.int64) @ _CODE_WEIGHTS


class NASBench201Table(NamedTuple):
    """The three CSV tables joined row by row (row i = NAS-Bench-201 index i), accuracies as fractions."""

    arch: tuple[str, ...]  # architecture string of each row
    row_of_code: np.ndarray  # (15625,) row of each base-5 code of an index sequence
    valid_12: np.ndarray  # 12-epoch cifar10-valid validation accuracy; NaN when the 12-epoch file is not loaded
    valid_200: np.ndarray  # 200-epoch cifar10-valid validation accuracy
    test_200: np.ndarray  # 200-epoch CIFAR-10 test accuracy after training on train+valid
    train_epoch_seconds: np.ndarray  # training seconds per epoch (200-epoch runs)
    train_200_seconds: np.ndarray  # training seconds of the 200-epoch schedule
    valid_seconds: np.ndarray  # seconds of one validation pass


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], name: str, path: Path) -> np.ndarray:
    try:
        return np.array([float(row[name]) for row in rows], dtype=np.float64)
    except KeyError:
        raise ValueError(f"{path} has no column {name!r}; columns: {list(rows[0]) if rows else []}.") from None


@functools.lru_cache(maxsize=4)
def load_table(landscape_path: Path, test200_path: Path, twelve_epoch_path: Path | None) -> NASBench201Table:
    """Read and join the tables; the rows of all files must list the same architectures in order.

    Raises:
        ValueError: when a file has the wrong number of rows, a missing column, or rows whose
            architecture strings differ from the first file's.
    """
    landscape = _read_csv(landscape_path)
    arch = tuple(row["arch_str"] for row in landscape)
    if len(arch) != NUM_ARCHITECTURES:
        raise ValueError(f"{landscape_path} has {len(arch)} rows, expected {NUM_ARCHITECTURES}.")

    test200 = _read_csv(test200_path)
    if tuple(row["ArchitectureString"] for row in test200) != arch:
        raise ValueError(f"{test200_path} does not list the architectures of {landscape_path} in the same order.")
    valid_12 = np.full(NUM_ARCHITECTURES, np.nan)
    if twelve_epoch_path is not None:
        twelve = _read_csv(twelve_epoch_path)
        if tuple(row["cellstr"] for row in twelve) != arch:
            raise ValueError(
                f"{twelve_epoch_path} does not list the architectures of {landscape_path} in the same order."
            )
        valid_12 = _column(twelve, "cifar10-val", twelve_epoch_path) / 100.0

    row_of_code = np.full(NUM_ARCHITECTURES, -1, dtype=np.int64)
    codes = encode_codes(np.array([parse_arch_string(a) for a in arch]))
    row_of_code[codes] = np.arange(NUM_ARCHITECTURES)
    if (row_of_code < 0).any():
        raise ValueError(f"{landscape_path} repeats architectures; each of the {NUM_ARCHITECTURES} must appear once.")

    return NASBench201Table(
        arch=arch,
        row_of_code=row_of_code,
        valid_12=valid_12,
        valid_200=_column(landscape, "valid-accuracy", landscape_path) / 100.0,
        test_200=_column(test200, "CIFAR10TestAccuracy200Epochs", test200_path) / 100.0,
        train_epoch_seconds=_column(landscape, "train-per-time", landscape_path),
        train_200_seconds=_column(landscape, "train-all-time", landscape_path),
        valid_seconds=_column(landscape, "valid-per-time", landscape_path),
    )


def _table_path(folder: str | None, filename: str) -> Path:
    """Return a verified table file from ``folder``, or from the data registry when ``folder`` is None."""
    if folder is None:
        return locate(DATASET, filename)
    path = Path(folder).expanduser() / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"NAS-Bench-201 table {path} not found. Pass data_dir=None to use the data registry "
            f"(`seqopt-data download {DATASET}`), or a folder that holds {filename}."
        )
    expected = get_dataset(DATASET).file(filename).sha256
    if sha256_of(path) != expected:
        raise ChecksumError(f"NAS-Bench-201 table {path} has sha256 {sha256_of(path)}, expected {expected}.")
    return path


class Lookup(NamedTuple):
    """Table values of a batch of architectures, one entry per queried sequence."""

    rows: np.ndarray
    reward: np.ndarray
    cost_seconds: np.ndarray
    valid_accuracy: np.ndarray
    test_accuracy: np.ndarray
    test_regret: np.ndarray


class NASBench201:
    """NAS-Bench-201 on CIFAR-10 as a seqopt objective (Gymnasium id ``seqopt/NASBench201-v0``).

    The space has one choice per edge, named ``edge_<source>_to_<target>``, with the values of
    ``OPERATIONS``. Each evaluation reports:

    * reward: validation accuracy after 12 or 200 epochs, depending on ``protocol``;
    * cost_seconds: simulated seconds the paper's accounting charges for that training;
    * metrics: ``arch`` (NAS-Bench-201 string), ``index`` (NAS-Bench-201 index),
      ``valid_accuracy`` (200-epoch validation accuracy), ``test_accuracy`` (200-epoch CIFAR-10
      test accuracy after training on train+valid) and ``test_regret`` (the table's best test
      accuracy, 0.943733, minus ``test_accuracy``).

    Args:
        protocol: ``"12-epoch"`` (the NAS-Bench-201 paper's search protocol) or ``"200-epoch"``.
        data_dir: a folder holding the three CSV tables; None finds them through the data registry
            (``SEQOPT_DATA_MIRROR`` or the cache that ``seqopt-data download nas-bench-201`` fills).
    """

    def __init__(self, protocol: str = "12-epoch", data_dir: str | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}.")
        self.protocol = protocol
        self.data_dir = data_dir
        twelve = _table_path(data_dir, TWELVE_EPOCH_FILE) if protocol == "12-epoch" else None
        self.table = load_table(_table_path(data_dir, LANDSCAPE_FILE), _table_path(data_dir, TEST200_FILE), twelve)
        self.space = ChoiceSpace([Choice(f"edge_{source}_to_{target}", OPERATIONS) for source, target in EDGES])

        table = self.table
        if protocol == "12-epoch":
            self.rewards = table.valid_12
            self.costs = TWELVE_EPOCHS * table.train_epoch_seconds + table.valid_seconds
        else:
            self.rewards = table.valid_200
            self.costs = table.train_200_seconds + table.valid_seconds
        self.best_test_accuracy = float(table.test_200.max())
        self.best_valid_accuracy = float(table.valid_200.max())
        self.test_regrets = self.best_test_accuracy - table.test_200

    def __repr__(self) -> str:
        return f"NASBench201(protocol={self.protocol!r})"

    def rows(self, indices: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Return the table rows (NAS-Bench-201 indices) of index sequences of shape (..., 6)."""
        indices = np.asarray(indices, dtype=np.int64)
        out_of_range = indices.min(initial=0) < 0 or indices.max(initial=0) >= len(OPERATIONS)
        if indices.shape[-1:] != (len(EDGES),) or out_of_range:
            raise ValueError(
                f"indices must have shape (..., {len(EDGES)}) with values in 0..{len(OPERATIONS) - 1}, "
                f"got shape {indices.shape}."
            )
        return self.table.row_of_code[encode_codes(indices)]

    def lookup(self, indices: np.ndarray | Sequence[Sequence[int]]) -> Lookup:
        """Look up a batch of architectures at once, vectorised over the leading dimensions."""
        rows = self.rows(indices)
        return Lookup(rows, self.rewards[rows], self.costs[rows], self.table.valid_200[rows],
                      self.table.test_200[rows], self.test_regrets[rows])

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        """Look up one architecture; deterministic, because the tables hold seed means."""
        row = int(self.table.row_of_code[encode_codes(np.array(self.space.validate(indices)))])
        metrics: dict[str, Any] = {
            "arch": self.table.arch[row],
            "index": row,
            "valid_accuracy": float(self.table.valid_200[row]),
            "test_accuracy": float(self.table.test_200[row]),
            "test_regret": float(self.test_regrets[row]),
        }
        return Evaluation(reward=float(self.rewards[row]), metrics=metrics, cost_seconds=float(self.costs[row]))

    def arch_of(self, indices: Sequence[int]) -> str:
        """Return the NAS-Bench-201 string of an index sequence."""
        return arch_string(self.space.decode(indices))

    def indices_of(self, arch: str) -> tuple[int, ...]:
        """Return the index sequence of a NAS-Bench-201 string."""
        return parse_arch_string(arch)
