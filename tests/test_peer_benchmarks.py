"""Smoke tests of benchmarks/peers.py and benchmarks/hybrid_rl.py with tiny budgets."""

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqopt import Budget, Search
from seqopt.envs import LearnToCount

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


peers = _load("peers")
hybrid_rl = _load("hybrid_rl")


@pytest.fixture(autouse=True)
def restore_process_settings():
    # run_job sets one torch thread and quiets seqopt's logger, as in its worker processes.
    threads = torch.get_num_threads()
    level = logging.getLogger("seqopt").level
    yield
    torch.set_num_threads(threads)
    logging.getLogger("seqopt").setLevel(level)


def _history(agent) -> list[tuple[tuple[int, ...], float]]:
    search = Search(LearnToCount(5), agent, budget=Budget(trials=40), seed=0)
    search.run()
    return [(r.indices, r.reward) for r in search.history]


@pytest.mark.parametrize("build", [
    lambda space, seed: peers.OptunaTPE(space, seed),
    lambda space, seed: peers.NevergradOptimizer(space, seed, "NGOpt", 40),
    lambda space, seed: peers.NevergradOptimizer(space, seed, "DiscreteOnePlusOne", 40),
], ids=["optuna_tpe", "nevergrad_ngopt", "nevergrad_discrete_one_plus_one"])
def test_peer_adapters_are_seeded(build):
    space = LearnToCount(5).space
    first = _history(build(space, 1))
    second = _history(build(space, 1))
    other = _history(build(space, 2))
    assert len(first) == 40
    for indices, _ in first:
        space.validate(indices)
    assert first == second
    assert first != other


def test_nevergrad_unequal_cardinalities():
    from seqopt import Choice, ChoiceSpace, FunctionObjective

    space = ChoiceSpace([Choice("a", [0, 1]), Choice("b", list(range(4)))])
    objective = FunctionObjective(space, lambda values: float(values["a"] + values["b"]))
    search = Search(objective, peers.NevergradOptimizer(space, 0, "DiscreteOnePlusOne", 30),
                    budget=Budget(trials=30), seed=0)
    assert search.run().best_reward == 4.0


def test_peers_job_reports_curve_and_time():
    result = peers.run_job(peers.Job("learn_to_count_5", "aging evolution", 0, 60))
    curve = np.array(result["best_so_far"])
    assert len(curve) == 60
    assert np.all(np.diff(curve) >= 0)
    assert result["agent_seconds_per_trial"] > 0
    assert "| learn_to_count_5 | aging evolution | 1 |" in peers.summarize([result], ["learn_to_count_5"],
                                                                          ["aging evolution"])


def test_hybrid_job_counts_steps():
    result = hybrid_rl.run_job(hybrid_rl.Job("frozen_lake_4x4_slippery", "hybrid (PQT)", 0, 300))
    assert 300 <= sum(result["lengths"]) < 400
    assert len(result["evaluation"]) == hybrid_rl.EVALUATION_EPISODES
    assert set(result["returns"]) <= {0.0, 1.0}


learn_to_count_benchmark = _load("learn_to_count")


def test_learn_to_count_preset_overrides_apply() -> None:
    # "neural_pqt:batch_size=4" trains once per 4 trials: 60 trials give 15 policy updates.
    outcome = learn_to_count_benchmark.run_replica("neural_pqt:batch_size=4", 4, 0, 60, None)
    assert len(outcome["rewards"]) == 60
    assert outcome["updates"] == 15


def test_learn_to_count_cache_name_is_plain() -> None:
    path = learn_to_count_benchmark.cache_path(Path("/tmp"), 10, "aging_evolution:max_redraws=20", 20, 5000, None)
    assert path.name == "learn_to_count_n10_aging_evolution_max_redraws_20_r20_t5000_bpreset.npz"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("Evo-NAS (PQT, tuned)=evo_nas_pqt_tuned", ("Evo-NAS (PQT, tuned)", "evo_nas_pqt_tuned")),
        ("Neural (PQT, B = 16)=neural_pqt:batch_size=16", ("Neural (PQT, B = 16)", "neural_pqt:batch_size=16")),
        ("no preset here", ("", "")),
    ],
)
def test_learn_to_count_extra_split(item: str, expected: tuple[str, str]) -> None:
    assert learn_to_count_benchmark.split_extra(item) == expected
