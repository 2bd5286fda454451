import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from seqopt.cli import build_agent, build_objective, run_search
from seqopt.store import read_records


def _seqopt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "seqopt.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})


def test_compose_overrides():
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose("config", overrides=["agent=aging_evolution", "env=learn_to_count", "env.n=20", "seed=3"])
    assert cfg.seed == 3
    objective = build_objective(cfg)
    assert objective.n == 20
    agent = build_agent(cfg, objective)
    assert type(agent).__name__ == "AgingEvolution"
    assert agent.population_size == 500
    executor = instantiate(cfg.executor)
    assert executor.capacity >= 1


def test_run_search_from_config(tmp_path):
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose("config", overrides=["agent=random_search", "budget.trials=30", "progress=false"])
    summary = run_search(cfg, tmp_path)
    assert summary.num_trials == 30
    assert len(read_records(tmp_path)) == 30


def test_cli_run_prints_summary(tmp_path):
    result = _seqopt("agent=aging_evolution", "env.n=6", "seed=3", "budget.trials=200", "progress=false",
                     f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Search finished (trial budget spent): 200 trials" in result.stdout
    assert "Best sequence: {'a1':" in result.stdout
    assert len(read_records(tmp_path / "run")) == 200
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_trials"] == 200


def test_cli_unknown_group_option_lists_choices(tmp_path):
    result = _seqopt("agent=no_such_agent", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'agent/no_such_agent'" in result.stderr
    assert "aging_evolution" in result.stderr
    assert "random_search" in result.stderr


@pytest.mark.slow
def test_cli_multirun_seeds_into_separate_folders(tmp_path):
    result = _seqopt("--multirun", "seed=0,1,2", "agent=random_search", "budget.trials=20", "progress=false",
                     f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stores = sorted((tmp_path / "sweep").glob("*/trials.jsonl"))
    assert len(stores) == 3
    first_sequences = [read_records(store)[0]["indices"] for store in stores]
    assert len({tuple(s) for s in first_sequences}) == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("budget.trials=0", "budget.trials must be a positive number or null, got 0"),
        ("budget.trials=abc", "budget.trials must be a positive number or null, got 'abc'"),
        ("seed=-1", "seed must be a non-negative int, got -1"),
        # Raised inside an agent constructor, so Hydra wraps it first.
        ("agent.max_redraws=-1", "max_redraws must be an int >= 0 (0 keeps repeated proposals), got -1."),
    ],
)
def test_cli_bad_value_prints_one_line_error(tmp_path, override, message):
    result = _seqopt(override, "progress=false", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    assert f"seqopt: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Error executing job" not in result.stderr
