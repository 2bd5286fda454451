"""Hydra config groups of the tabular NAS benchmarks: compose them and run tiny searches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from seqopt.cli import build_agent, build_objective, run_search
from seqopt.envs import NASBench101, NASBench201, NASBenchMacro
from seqopt.envs.nasbench101 import Cell, EvaluationData, ModelMetrics, Row, cell_hash, write_rows
from seqopt.store import read_records

MIRROR = Path(os.environ.get("SEQOPT_DATA_MIRROR", "/nonexistent"))
needs_tables = pytest.mark.skipif(not (MIRROR / "nas-bench-201").is_dir() or not (MIRROR / "nas-bench-macro").is_dir(),
                                  reason="the NAS-Bench tables are not in SEQOPT_DATA_MIRROR")


def _compose(*overrides: str):
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        return compose("config", overrides=["progress=false", *overrides])


@needs_tables
def test_env_groups_build_objectives() -> None:
    assert isinstance(build_objective(_compose("env=nasbench201")), NASBench201)
    assert build_objective(_compose("env=nasbench201", "env.protocol=200-epoch")).protocol == "200-epoch"
    assert isinstance(build_objective(_compose("env=nasbench_macro")), NASBenchMacro)


@needs_tables
@pytest.mark.slow
def test_nasbench201_experiment_runs(tmp_path: Path) -> None:
    cfg = _compose("experiment=nasbench201", "budget.cost_seconds=1500")
    assert cfg.env.protocol == "12-epoch"
    assert cfg.budget.trials is None
    assert cfg.agent.population_size == 10
    assert cfg.agent.sample_size == 3
    assert cfg.agent._target_ == "seqopt.agents.EvoNAS"
    summary = run_search(cfg, tmp_path)
    records = read_records(tmp_path)
    assert summary.stop_reason == "cost budget spent"
    assert records[-1]["total_cost_seconds"] >= 1500 > records[-2]["total_cost_seconds"]
    best = max(records, key=lambda r: r["reward"])
    assert best["metrics"]["arch"].startswith("|")
    assert summary.best_reward == best["reward"]
    # The experiment redraws repeated proposals, so no architecture is charged twice.
    assert cfg.agent.max_redraws == 20
    assert len({r["metrics"]["arch"] for r in records}) == len(records)


@needs_tables
@pytest.mark.slow
def test_nasbench_macro_experiment_runs(tmp_path: Path) -> None:
    summary = run_search(_compose("experiment=nasbench_macro", "budget.trials=60"), tmp_path)
    assert summary.num_trials == 60
    assert all(len(r["metrics"]["arch"]) == 8 for r in read_records(tmp_path))


@pytest.mark.slow
def test_nasbench101_experiment_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(tmp_path / "cache"))
    chain = Cell(np.eye(3, k=1, dtype=int), ("input", "conv3x3-bn-relu", "output"))
    final = EvaluationData(108.0, 300.0, 1.0, 0.8, 0.79)
    rows = [Row(cell_hash(chain), 108, chain.matrix, list(chain.operations),
                ModelMetrics([EvaluationData(), EvaluationData(), final], 1000, 400.0))]
    path = tmp_path / "small.tfrecord"
    write_rows(path, rows)
    # Most random cells are missing from a one-cell file and fail; that must not stop the search here.
    cfg = _compose("experiment=nasbench101", f"env.path={path}", "budget.trials=40", "budget.cost_seconds=null",
                   "max_failure_rate=null")
    objective = build_objective(cfg)
    assert isinstance(objective, NASBench101)
    assert type(build_agent(cfg, objective)).__name__ == "EvoNAS"
    summary = run_search(cfg, tmp_path / "run")
    assert summary.num_trials == 40
    statuses = {r["status"] for r in read_records(tmp_path / "run")}
    assert statuses <= {"ok", "invalid", "failed"}
