"""NAS-Bench-Macro objective against entries of the real table, read here with the json module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from seqopt.envs.nasbench_macro import NASBenchMacro

TABLE = Path(os.environ.get("SEQOPT_DATA_MIRROR", "/nonexistent")) / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
pytestmark = pytest.mark.skipif(not TABLE.is_file(), reason="NAS-Bench-Macro is not in SEQOPT_DATA_MIRROR")


@pytest.fixture(scope="module")
def raw() -> dict[str, dict]:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def test_entries_match_json(raw: dict[str, dict]) -> None:
    objective = NASBenchMacro()
    keys = ["22212220", "00000000", "11111111", *np.random.default_rng(1).choice(sorted(raw), 20).tolist()]
    for key in keys:
        evaluation = objective.evaluate(tuple(int(c) for c in key))
        entry = raw[key]
        assert evaluation.metrics["arch"] == key
        assert evaluation.reward == pytest.approx(entry["mean_acc"] / 100)
        assert evaluation.metrics["test_accuracy"] == pytest.approx(entry["mean_acc"] / 100)
        assert evaluation.metrics["params"] == entry["params"]
        assert evaluation.metrics["flops"] == entry["flops"]
        assert evaluation.cost_seconds == 0.0


def test_best_architecture_has_zero_regret() -> None:
    objective = NASBenchMacro()
    best = objective.evaluate((2, 2, 2, 1, 2, 2, 2, 0))
    assert best.reward == pytest.approx(0.9312666, abs=1e-6)
    assert best.metrics["test_regret"] == 0.0
    assert objective.space.names[0] == "layer_1"
    assert objective.space.choices[0].values == ("identity", "mb3_k3", "mb6_k5")


def test_sample_mode_draws_a_repeat(raw: dict[str, dict]) -> None:
    objective = NASBenchMacro(mode="sample")
    repeats = [value / 100 for value in raw["12012012"]["test_acc"]]
    for seed in range(5):
        evaluation = objective.evaluate((1, 2, 0, 1, 2, 0, 1, 2), np.random.default_rng(seed))
        assert evaluation.reward == pytest.approx(repeats[int(np.random.default_rng(seed).integers(3))])
    with pytest.raises(ValueError, match="needs the trial's rng"):
        objective.evaluate((1, 2, 0, 1, 2, 0, 1, 2), None)


def test_bad_mode_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"\['mean', 'sample'\]"):
        NASBenchMacro(mode="median")


def test_env_passes_checkers() -> None:
    env = gym.make("seqopt/NASBenchMacro-v0")
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
