"""Regret curves: known values, stores against in-memory histories, and a written figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from seqopt import Budget, Evaluation, Search
from seqopt.agents import RandomSearch
from seqopt.regret_plot import RegretCurve, band, curve_from_results, curve_from_store, incumbent_curve, plot_regret
from seqopt.spaces import ChoiceSpace


def test_incumbent_follows_best_reward() -> None:
    curve = incumbent_curve([10, 20, 30, 40], [0.5, 0.4, 0.7, 0.7], [0.05, 0.01, 0.02, 0.0])
    assert curve.times.tolist() == [10, 30, 60, 100]
    assert curve.regrets.tolist() == [0.05, 0.05, 0.02, 0.02]  # a tie keeps the earlier trial


def test_failed_trials_never_lead() -> None:
    curve = incumbent_curve([1, 1, 1], [math.nan, 0.2, 0.9], [0.0, 0.3, math.nan])
    assert math.isnan(curve.regrets[0])
    assert curve.regrets[1:].tolist() == [0.3, 0.3]


def test_curve_is_a_step_function() -> None:
    curve = RegretCurve(np.array([10.0, 30.0]), np.array([0.5, 0.1]))
    values = curve.at(np.array([5.0, 10.0, 29.9, 30.0, 1e6]))
    assert math.isnan(values[0])
    assert values[1:].tolist() == [0.5, 0.5, 0.1, 0.1]


def test_band_widths() -> None:
    values = np.array([[1.0, np.nan], [3.0, 2.0]])
    mean, _, high = band(values, "std")
    assert mean.tolist() == [2.0, 2.0]
    assert (high - mean).tolist() == pytest.approx([math.sqrt(2), 0.0])
    mean, _, high = band(values, "sem2")
    assert (high - mean)[0] == pytest.approx(2 * math.sqrt(2) / math.sqrt(2))
    mean, low, high = band(values, "ci70")
    assert (mean - low)[0] == pytest.approx((high - mean)[0])
    assert (high - mean)[0] == pytest.approx(1.0364334 * math.sqrt(2) / math.sqrt(2), rel=1e-6)
    with pytest.raises(ValueError, match="band kind must be one of"):
        band(values, "iqr")


class _Table:
    """A deterministic objective whose regret and cost depend on the sequence."""

    space = ChoiceSpace.from_dict({"a": range(4), "b": range(4)})

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator) -> Evaluation:
        reward = (indices[0] * 4 + indices[1]) / 15
        return Evaluation(reward=reward, metrics={"test_regret": 1.0 - reward}, cost_seconds=1.0 + indices[0])


def test_store_and_history_give_the_same_curve(tmp_path: Path) -> None:
    objective = _Table()
    budget = Budget(trials=None, cost_seconds=60.0)
    Search(objective, RandomSearch(objective.space, seed=2), budget=budget, seed=2, run_dir=tmp_path).run()
    in_memory = Search(objective, RandomSearch(objective.space, seed=2), budget=budget, seed=2)
    in_memory.run()
    stored = curve_from_store(tmp_path)
    remembered = curve_from_results(in_memory.history)
    assert stored.times.tolist() == pytest.approx(remembered.times.tolist())
    assert stored.regrets.tolist() == remembered.regrets.tolist()
    assert remembered.times[-1] >= 60.0
    assert np.all(np.diff(remembered.regrets) <= 0)


def test_plot_writes_png(tmp_path: Path) -> None:
    curves = [incumbent_curve([5, 10, 100], [0.1, 0.3, 0.2], [0.02, 0.01, 0.03]),
              incumbent_curve([8, 50], [0.2, 0.5], [0.015, 0.005])]
    path = plot_regret({"random": curves, "evolution": curves[::-1]}, tmp_path / "img" / "regret.png", budget=200)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one curve"):
        plot_regret({"none": []}, tmp_path / "empty.png")
