"""NAS-Bench-201 objective against rows of the real tables, read here independently with csv."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from seqopt import Budget, Search
from seqopt.agents import AgingEvolution, RandomSearch
from seqopt.data import MissingDataError
from seqopt.envs.nasbench201 import OPERATIONS, NASBench201, arch_string, parse_arch_string

MIRROR = Path(os.environ.get("SEQOPT_DATA_MIRROR", "/nonexistent")) / "nas-bench-201"
pytestmark = pytest.mark.skipif(not MIRROR.is_dir(), reason="the NAS-Bench-201 tables are not in SEQOPT_DATA_MIRROR")

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def _rows(name: str) -> list[dict[str, str]]:
    with open(MIRROR / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tables() -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    return (_rows("nas_landscapes_cifar10_avg.csv"), _rows("nats_bench_landscape_test200.csv"),
            _rows("mini_nasbench201_12epoch.csv"))


@pytest.fixture(scope="module")
def paper() -> NASBench201:
    return NASBench201(protocol="12-epoch")


@pytest.fixture(scope="module")
def full() -> NASBench201:
    return NASBench201(protocol="200-epoch")


def _indices_of(arch: str) -> tuple[int, ...]:
    # Written apart from the module's parser: node groups split by '+', edges by '|', 'op~source'.
    ops = [part.split("~")[0] for node in arch.split("+") for part in node.split("|") if part]
    return tuple(OPERATIONS.index(op) for op in ops)


SAMPLE_ROWS = [0, 1, 2, 6111, 11472, 13714, 15624, *np.random.default_rng(7).integers(0, 15625, 13).tolist()]


@pytest.mark.parametrize("row", SAMPLE_ROWS)
def test_lookup_matches_csv_rows(row: int, tables, paper: NASBench201, full: NASBench201) -> None:
    landscape, test200, twelve = tables
    arch = landscape[row]["arch_str"]
    indices = _indices_of(arch)

    evaluation = paper.evaluate(indices)
    assert evaluation.metrics["arch"] == arch
    assert evaluation.metrics["index"] == row
    assert evaluation.reward == pytest.approx(float(twelve[row]["cifar10-val"]) / 100)
    twelve_epoch_cost = 12 * float(landscape[row]["train-per-time"]) + float(landscape[row]["valid-per-time"])
    assert evaluation.cost_seconds == pytest.approx(twelve_epoch_cost)
    test_accuracy = float(test200[row]["CIFAR10TestAccuracy200Epochs"]) / 100
    assert evaluation.metrics["test_accuracy"] == pytest.approx(test_accuracy)
    assert evaluation.metrics["valid_accuracy"] == pytest.approx(float(landscape[row]["valid-accuracy"]) / 100)

    evaluation = full.evaluate(indices)
    assert evaluation.reward == pytest.approx(float(landscape[row]["valid-accuracy"]) / 100)
    full_cost = float(landscape[row]["train-all-time"]) + float(landscape[row]["valid-per-time"])
    assert evaluation.cost_seconds == pytest.approx(full_cost)


def test_published_optimum_and_resnet(paper: NASBench201, full: NASBench201) -> None:
    # NAS-Bench-201 paper (arXiv:2001.00326): optimum 91.61 validation / 94.37 test; ResNet 90.83 / 93.97.
    assert round(100 * full.best_valid_accuracy, 2) == 91.61
    assert round(100 * full.best_test_accuracy, 2) == 94.37
    resnet = full.evaluate(parse_arch_string(RESNET))
    assert resnet.metrics["valid_accuracy"] == pytest.approx(0.9083, abs=1e-3)
    assert resnet.metrics["test_accuracy"] == pytest.approx(0.9397, abs=1e-3)


def test_protocol_12_epoch_best_reward_is_optimal_test(paper: NASBench201) -> None:
    # The architecture with the best 12-epoch validation accuracy is NAS-Bench-201 index 13714,
    # whose 200-epoch test accuracy equals the table's best, 94.37%.
    best = int(np.argmax(paper.rewards))
    assert best == 13714
    assert paper.rewards[best] == pytest.approx(0.84892)
    evaluation = paper.evaluate(parse_arch_string(paper.table.arch[best]))
    assert evaluation.metrics["test_regret"] == pytest.approx(0.0, abs=1e-12)
    assert round(100 * evaluation.metrics["test_accuracy"], 2) == 94.37


def test_arch_strings_round_trip(paper: NASBench201) -> None:
    for row, arch in enumerate(paper.table.arch):
        indices = parse_arch_string(arch)
        assert arch_string([OPERATIONS[i] for i in indices]) == arch
        assert paper.arch_of(indices) == arch
        assert int(paper.rows(indices)) == row


def test_vectorised_lookup_matches_evaluate(paper: NASBench201) -> None:
    batch = np.random.default_rng(3).integers(0, 5, size=(200, 6))
    found = paper.lookup(batch)
    for i, indices in enumerate(batch.tolist()):
        evaluation = paper.evaluate(tuple(indices))
        assert found.reward[i] == evaluation.reward
        assert found.cost_seconds[i] == evaluation.cost_seconds
        assert found.test_accuracy[i] == evaluation.metrics["test_accuracy"]
        assert found.test_regret[i] == evaluation.metrics["test_regret"]
        assert found.valid_accuracy[i] == evaluation.metrics["valid_accuracy"]


def test_lookup_rejects_bad_indices(paper: NASBench201) -> None:
    with pytest.raises(ValueError, match=r"values in 0\.\.4"):
        paper.lookup([[0, 0, 0, 0, 0, 5]])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 6\)"):
        paper.lookup([[0, 0, 0]])
    with pytest.raises(ValueError, match="Position 5"):
        paper.evaluate((0, 0, 0, 0, 0, 7))


def test_bad_protocol_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"\['12-epoch', '200-epoch'\]"):
        NASBench201(protocol="12")


def test_parse_rejects_unknown_operation() -> None:
    with pytest.raises(ValueError, match="conv_5x5"):
        parse_arch_string("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_missing_tables_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQOPT_DATA_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(MissingDataError, match="seqopt-data download nas-bench-201"):
        NASBench201(protocol="200-epoch")
    with pytest.raises(FileNotFoundError, match="data_dir=None"):
        NASBench201(protocol="200-epoch", data_dir=str(tmp_path))


def test_search_records_total_cost(tmp_path: Path, paper: NASBench201) -> None:
    budget = 3000.0
    agent = AgingEvolution(paper.space, population_size=10, sample_size=3, mutation_probability=0.2, seed=1)
    Search(paper, agent, budget=Budget(trials=None, cost_seconds=budget), seed=1, run_dir=tmp_path).run()
    records = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    totals = np.array([r["total_cost_seconds"] for r in records])
    assert totals == pytest.approx(np.cumsum([r["cost_seconds"] for r in records]))
    assert totals[-1] >= budget > totals[-2]
    assert all(r["metrics"]["arch"] == paper.arch_of(r["indices"]) for r in records)


def test_same_seed_same_history(paper: NASBench201) -> None:
    def run(seed: int) -> list[tuple[int, ...]]:
        search = Search(paper, RandomSearch(paper.space, seed=seed), budget=Budget(trials=30), seed=seed)
        search.run()
        return [r.indices for r in search.history]

    assert run(4) == run(4)
    assert run(4) != run(5)


@pytest.mark.parametrize("protocol", ["12-epoch", "200-epoch"])
def test_env_passes_checkers(protocol: str) -> None:
    env = gym.make("seqopt/NASBench201-v0", protocol=protocol)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.reset(seed=0)
    for action in (3, 3, 3, 3, 3, 3):
        _, reward, terminated, _, info = env.step(action)
    assert terminated
    assert info["metrics"]["arch"] == arch_string(["nor_conv_3x3"] * 6)
    assert reward == info["reward"] > 0.5
