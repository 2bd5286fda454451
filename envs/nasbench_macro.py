"""NAS-Bench-Macro as a tabular objective: one block choice per layer of a MobileNetV2-like network.

Su et al. 2021, "Prioritized Architecture Sampling with Monte-Carlo Tree Search" (CVPR 2021)
trained every one of the 3**8 = 6,561 architectures of this space on CIFAR-10, three times each.
Each of the 8 searchable layers is an identity (the layer is skipped), a MobileNetV2 block with
kernel 3 and expansion 3, or one with kernel 5 and expansion 6. The space is a small, exhaustively
evaluated stand-in for the layer-wise factorized (MnasNet-like) spaces of "Evolutionary-Neural
Hybrid Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828).

The table holds test accuracy only, with no validation accuracy and no training time: the reward
is test accuracy and every trial costs 0 simulated seconds, so budgets must count trials.
Accuracies, rewards and regrets are fractions in [0, 1] (the table prints percent).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from seqopt.data import locate
from seqopt.objective import Evaluation
from seqopt.spaces import Choice, ChoiceSpace

DATASET = "nas-bench-macro"
TABLE_FILE = "nas-bench-macro_cifar10.json"
NUM_LAYERS = 8
# Block of each digit of the table's architecture keys: '0', '1', '2'.
BLOCKS = ("identity", "mb3_k3", "mb6_k5")
NUM_ARCHITECTURES = len(BLOCKS) ** NUM_LAYERS
NUM_REPEATS = 3
MODES = ("mean", "sample")

_CODE_WEIGHTS = len(BLOCKS) ** np.arange(NUM_LAYERS - 1, -1, -1, dtype=np.int64)


class MacroTable(NamedTuple):
    """The table indexed by the base-3 code of an architecture key (first layer most significant)."""

    test_accuracy: np.ndarray  # (6561, 3) test accuracy of each training repeat
    mean_accuracy: np.ndarray  # (6561,)
    params: np.ndarray  # (6561,) trainable parameters
    flops: np.ndarray  # (6561,)


@functools.lru_cache(maxsize=2)
def load_table(path: Path) -> MacroTable:
    """Read the JSON table; every one of the 6,561 keys must be present with three repeats.

    Raises:
        ValueError: naming the first missing key or malformed entry.
    """
    with open(path, encoding="utf-8") as f:
        raw: dict[str, dict[str, Any]] = json.load(f)
    test = np.full((NUM_ARCHITECTURES, NUM_REPEATS), np.nan)
    mean = np.full(NUM_ARCHITECTURES, np.nan)
    params = np.zeros(NUM_ARCHITECTURES, dtype=np.int64)
    flops = np.zeros(NUM_ARCHITECTURES, dtype=np.int64)
    for key, entry in raw.items():
        if len(key) != NUM_LAYERS or set(key) - {"0", "1", "2"}:
            raise ValueError(f"{path}: key {key!r} is not {NUM_LAYERS} digits of 0, 1 and 2.")
        if len(entry.get("test_acc", [])) != NUM_REPEATS:
            raise ValueError(f"{path}: entry {key!r} must hold {NUM_REPEATS} test accuracies, got {entry!r}.")
        code = int(key, len(BLOCKS))
        test[code] = np.asarray(entry["test_acc"], dtype=np.float64) / 100.0
        mean[code] = float(entry["mean_acc"]) / 100.0
        params[code] = int(entry["params"])
        flops[code] = int(entry["flops"])
    missing = np.flatnonzero(np.isnan(mean))
    if missing.size:
        first = np.base_repr(int(missing[0]), len(BLOCKS)).zfill(NUM_LAYERS)
        raise ValueError(f"{path} lacks {missing.size} of the {NUM_ARCHITECTURES} architectures, e.g. {first!r}.")
    return MacroTable(test, mean, params, flops)


class NASBenchMacro:
    """NAS-Bench-Macro on CIFAR-10 as a seqopt objective (Gymnasium id ``seqopt/NASBenchMacro-v0``).

    The space has 8 choices, ``layer_1`` to ``layer_8``, with the values of ``BLOCKS``. Each
    evaluation reports the reward (test accuracy), a cost of 0 seconds and the metrics ``arch`` (the
    table's 8-digit key), ``test_accuracy`` (mean of the three repeats), ``test_accuracy_std``,
    ``test_regret`` (the best mean, 0.931267, minus ``test_accuracy``), ``params`` and ``flops``.

    Args:
        mode: ``"mean"``: the reward is the mean test accuracy of the three training repeats.
            ``"sample"``: the reward is one repeat drawn with the trial's generator, as a single
            training run would give; the metrics keep the mean.
        path: the JSON table; None finds it through the data registry.
    """

    def __init__(self, mode: str = "mean", path: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}.")
        self.mode = mode
        self.path = path
        self.table = load_table(Path(path).expanduser() if path is not None else locate(DATASET, TABLE_FILE))
        self.space = ChoiceSpace([Choice(f"layer_{i + 1}", BLOCKS) for i in range(NUM_LAYERS)])
        self.best_test_accuracy = float(self.table.mean_accuracy.max())

    def __repr__(self) -> str:
        return f"NASBenchMacro(mode={self.mode!r})"

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """Return the table rows of index sequences of shape (..., 8)."""
        return np.asarray(indices, dtype=np.int64) @ _CODE_WEIGHTS

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        sequence = self.space.validate(indices)
        row = int(self.rows(np.array(sequence)))
        mean = float(self.table.mean_accuracy[row])
        if self.mode == "sample":
            if rng is None:
                raise ValueError("mode='sample' draws a training repeat and needs the trial's rng; got rng=None.")
            reward = float(self.table.test_accuracy[row, rng.integers(NUM_REPEATS)])
        else:
            reward = mean
        metrics: dict[str, Any] = {
            "arch": "".join(str(i) for i in sequence),
            "test_accuracy": mean,
            "test_accuracy_std": float(self.table.test_accuracy[row].std()),
            "test_regret": self.best_test_accuracy - mean,
            "params": int(self.table.params[row]),
            "flops": int(self.table.flops[row]),
        }
        return Evaluation(reward=reward, metrics=metrics, cost_seconds=0.0)
