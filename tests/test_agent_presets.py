"""The Neural and Evo-NAS presets of conf/agent: paper values, composition, tiny runs, and the CLI default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module

from seqopt.agents import EvoNAS, NeuralAgent
from seqopt.agents.training import PQTConfig, ReinforceConfig
from seqopt.cli import build_agent, build_objective, run_search
from seqopt.store import read_records

# Preset -> (agent class, algorithm, learning rate, entropy penalty, p, queue size K, queue fraction, P, S, B),
# with the values of "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828):
# learn to count from Table 5 and Appendix A, NAS-Bench from Table 6 and Appendix B, text from
# Section 6.3 and image from Section 6.4.
PAPER_VALUES: dict[str, tuple[Any, ...]] = {
    "evo_nas_pqt": (EvoNAS, "pqt", 1e-4, 0.2, 0.3, None, 0.2, 500, 50, 1),
    "evo_nas_reinforce": (EvoNAS, "reinforce", 1e-4, 0.2, 0.3, None, None, 500, 50, 1),
    "neural_pqt": (NeuralAgent, "pqt", 5e-4, 0.1, None, None, 0.05, None, None, 1),
    "neural_reinforce": (NeuralAgent, "reinforce", 5e-4, 0.1, None, None, None, None, None, 1),
    "evo_nas_pqt_nasbench": (EvoNAS, "pqt", 5e-5, 0.01, 0.2, None, 0.2, 500, 50, 1),
    "evo_nas_reinforce_nasbench": (EvoNAS, "reinforce", 2e-4, 0.01, 0.2, None, None, 500, 50, 1),
    "neural_pqt_nasbench": (NeuralAgent, "pqt", 1e-3, 0.1, None, None, 0.2, None, None, 1),
    "neural_reinforce_nasbench": (NeuralAgent, "reinforce", 1e-3, 0.1, None, None, None, None, None, 1),
    "evo_nas_pqt_text": (EvoNAS, "pqt", 1e-4, 0.1, 0.5, 5, None, 50, 10, 30),
    "neural_pqt_text": (NeuralAgent, "pqt", 1e-4, 0.1, None, 5, None, None, None, 30),
    "evo_nas_pqt_image": (EvoNAS, "pqt", 1e-4, 0.1, 0.1, None, 0.05, 500, 50, 60),
    "neural_pqt_image": (NeuralAgent, "pqt", 1e-4, 0.1, None, None, 0.05, None, None, 60),
}


def compose_config(*overrides: str) -> Any:
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("preset", sorted(PAPER_VALUES))
def test_preset_has_paper_values(preset: str) -> None:
    cfg = compose_config(f"agent={preset}", "env.n=6")
    agent = build_agent(cfg, build_objective(cfg))
    cls, algorithm, learning_rate, entropy, p, size, fraction, population, sample, batch = PAPER_VALUES[preset]
    assert type(agent) is cls
    config = agent.trainer.config
    assert isinstance(config, PQTConfig if algorithm == "pqt" else ReinforceConfig)
    assert config.learning_rate == pytest.approx(learning_rate)
    assert config.entropy_penalty == pytest.approx(entropy)
    assert agent.batch_size == batch
    if isinstance(config, PQTConfig):
        assert config.queue_size == size
        assert config.queue_fraction == fraction
    if isinstance(agent, EvoNAS):
        assert agent.mutation_probability == pytest.approx(p)
        assert agent.population_size == population
        assert agent.sample_size == sample


@pytest.mark.parametrize("preset", ["evo_nas_pqt", "evo_nas_reinforce", "neural_pqt", "neural_reinforce",
                                    "evo_nas_pqt_text"])
def test_preset_runs_tiny_search(preset: str, tmp_path: Path) -> None:
    cfg = compose_config(f"agent={preset}", "env.n=5", "budget.trials=70", "progress=false",
                         *(["agent.population_size=20", "agent.sample_size=5"] if preset.startswith("evo")
                           else ["agent.batch_size=2"]))
    summary = run_search(cfg, tmp_path)
    assert summary.num_trials == 70
    assert len(read_records(tmp_path)) == 70


def test_default_agent_is_evo_nas_pqt() -> None:
    cfg = compose_config()
    agent = build_agent(cfg, build_objective(cfg))
    assert type(agent) is EvoNAS
    assert agent.trainer.config.queue_fraction == 0.2


@pytest.mark.slow
def test_cli_default_runs_evo_nas(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "seqopt.cli", "env.n=5", "budget.trials=60", "progress=false",
               "agent.population_size=20", "agent.sample_size=5", f"hydra.run.dir={tmp_path}/run"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert result.returncode == 0, result.stderr
    assert "Search finished (trial budget spent): 60 trials" in result.stdout
    records = read_records(tmp_path / "run")
    assert len(records) == 60
    assert {r["origin"] for r in records} == {"policy", "mutation"}


def test_tuned_preset_changes_four_values() -> None:
    objective = build_objective(compose_config("env.n=6"))
    paper = build_agent(compose_config("agent=evo_nas_pqt", "env.n=6"), objective)
    tuned = build_agent(compose_config("agent=evo_nas_pqt_tuned", "env.n=6"), objective)
    assert isinstance(paper, EvoNAS)
    assert isinstance(tuned, EvoNAS)
    assert tuned.trainer.config.queue_size == 50
    assert tuned.trainer.config.queue_fraction is None
    assert tuned.trainer.config.learning_rate == pytest.approx(3e-4)
    assert tuned.mutation_probability == pytest.approx(0.15)
    assert tuned.seen.max_redraws == 20
    assert paper.seen.max_redraws == 0
    for name in ("population_size", "sample_size", "batch_size", "policy_config"):
        assert getattr(tuned, name) == getattr(paper, name)
    assert tuned.trainer.config.entropy_penalty == paper.trainer.config.entropy_penalty
