"""Stable-Baselines3 agents (PPO, A2C, MaskablePPO) driven through the ordinary seqopt search loop."""

import gc
import os
import random
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from seqopt import Budget, Choice, ChoiceSpace, Evaluation, FunctionObjective, Search, TrialResult
from seqopt.agents.sb3 import SB3A2C, SB3PPO, SB3MaskablePPO
from seqopt.cli import build_agent, build_objective
from seqopt.envs import LearnToCount
from seqopt.executors import InlineExecutor
from seqopt.store import read_records

AGENTS = {"sb3_ppo": SB3PPO, "sb3_a2c": SB3A2C, "sb3_maskable_ppo": SB3MaskablePPO}
# Small rollouts so that a few dozen trials already include gradient updates.
SMALL = {
    "sb3_ppo": {"n_steps": 40, "batch_size": 20, "n_epochs": 2},
    "sb3_a2c": {"n_steps": 5},
    "sb3_maskable_ppo": {"n_steps": 40, "batch_size": 20, "n_epochs": 2},
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny networks on a shared machine run faster on one thread; restore the setting afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _learner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("seqopt-SB3")]


def _result(proposal, reward: float) -> TrialResult:
    return TrialResult(0, proposal, Evaluation(reward=reward))


def _history(agent_class, seed: int, trials: int = 40, **kwargs) -> list[tuple[tuple[int, ...], float]]:
    objective = LearnToCount(5)
    with agent_class(objective.space, seed=seed, **kwargs) as agent:
        search = Search(objective, agent, budget=Budget(trials=trials), seed=seed)
        search.run()
    return [(r.indices, r.reward) for r in search.history]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_search_writes_trials(name, tmp_path):
    objective = LearnToCount(5)
    agent = AGENTS[name](objective.space, seed=0, **SMALL[name])
    summary = Search(objective, agent, budget=Budget(trials=60), seed=0, run_dir=tmp_path).run()
    agent.close()

    records = read_records(tmp_path)
    assert summary.num_trials == 60
    assert len(records) == 60
    assert [r["trial"] for r in records] == list(range(60))
    for record in records:
        objective.space.validate(record["indices"])
        assert record["status"] == "ok"
        assert record["origin"] == "policy"
        assert record["reward"] == pytest.approx(objective.evaluate(tuple(record["indices"])).reward)
    # PPO's rollout of 40 steps is 8 episodes of 5 steps: 60 trials mean 7 updates happened.
    assert agent.model.num_timesteps >= 5 * 56


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_same_seed_same_history(name):
    first = _history(AGENTS[name], seed=3, **SMALL[name])
    second = _history(AGENTS[name], seed=3, **SMALL[name])
    other = _history(AGENTS[name], seed=4, **SMALL[name])
    assert first == second
    assert first != other


def test_global_random_state_untouched():
    # SB3 seeds and draws from the global generators; the agent must hand them back unchanged.
    random.seed(11)
    np.random.seed(11)  # noqa: NPY002
    torch.manual_seed(11)
    expected = (random.random(), np.random.random(), torch.rand(1).item())  # noqa: NPY002
    random.seed(11)
    np.random.seed(11)  # noqa: NPY002
    torch.manual_seed(11)

    _history(SB3PPO, seed=0, **SMALL["sb3_ppo"])

    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected  # noqa: NPY002


def test_vector_envs_fill_executor_slots():
    objective = LearnToCount(4)
    with SB3PPO(objective.space, seed=0, n_envs=3, n_steps=8, batch_size=12, n_epochs=1) as agent:
        assert agent.batch_size == 3
        batch = agent.propose(3)
        assert len(batch) == 3
        assert agent.propose(1) == []  # the next batch needs the rewards of all three
        agent.observe([_result(proposal, 0.1) for proposal in reversed(batch)])
        assert len(agent.propose(3)) == 3

    with SB3PPO(objective.space, seed=0, n_envs=3, n_steps=8, batch_size=12, n_epochs=1) as agent:
        summary = Search(objective, agent, budget=Budget(trials=30), seed=0,
                         executor=InlineExecutor(capacity=3)).run()
    assert summary.num_trials == 30
    # Ten batches of three episodes of 4 steps; the learner waits inside the last step of the tenth.
    assert agent.model.num_timesteps == 30 * 4 - 3


def test_more_slots_than_envs_warns(caplog):
    objective = LearnToCount(4)
    with SB3PPO(objective.space, seed=0, n_envs=2, n_steps=8, batch_size=16, n_epochs=1) as agent:
        proposals = agent.propose(5)
    assert len(proposals) == 2
    assert "at most 2 trials can be in flight, but 5 were requested" in caplog.text


def _fails_when_first_is_zero(values: dict) -> float:
    if values["a"] == 0:
        raise RuntimeError("simulated training crash")
    return float(values["a"] + values["b"])


def test_failed_trials_reach_learner():
    space = ChoiceSpace([Choice("a", [0, 1, 2]), Choice("b", [0, 1])])
    objective = FunctionObjective(space, _fails_when_first_is_zero)
    with SB3PPO(space, seed=1, failure_reward=-5.0, n_steps=16, batch_size=8, n_epochs=1) as agent:
        search = Search(objective, agent, budget=Budget(trials=40), seed=1)
        summary = search.run()
    statuses = [r.evaluation.status.value for r in search.history]
    assert summary.num_trials == 40
    assert "failed" in statuses
    assert "ok" in statuses
    assert agent.num_failed == statuses.count("failed")


def test_maskable_ppo_picks_only_valid_actions():
    space = ChoiceSpace([Choice("a", [0, 1]), Choice("b", list(range(5))), Choice("c", [0, 1, 2])])
    objective = FunctionObjective(space, lambda values: float(sum(values.values())))
    with SB3MaskablePPO(space, seed=0, invalid_action="raise", n_steps=30, batch_size=15, n_epochs=1) as agent:
        summary = Search(objective, agent, budget=Budget(trials=100), seed=0).run()
    assert summary.num_trials == 100


def test_learner_error_reaches_propose():
    # Plain PPO samples actions up to the largest cardinality; with "raise" the env rejects them.
    space = ChoiceSpace([Choice("a", [0, 1]), Choice("b", list(range(6)))])
    agent = SB3PPO(space, seed=0, invalid_action="raise", n_steps=16, batch_size=8)
    with pytest.raises(RuntimeError, match=r"SB3PPO learner failed.*is invalid at step 0"):
        for _ in range(50):
            (proposal,) = agent.propose(1)
            agent.observe([_result(proposal, 0.0)])
    assert not any(t.is_alive() for t in _learner_threads())


def test_close_stops_learner():
    objective = LearnToCount(3)
    agent = SB3A2C(objective.space, seed=0)
    (proposal,) = agent.propose(1)
    agent.observe([_result(proposal, 0.5)])
    agent.propose(1)
    assert len(_learner_threads()) == 1
    agent.close()
    assert _learner_threads() == []
    with pytest.raises(RuntimeError, match="SB3A2C is closed"):
        agent.propose(1)


def test_garbage_collection_stops_learner():
    objective = LearnToCount(3)
    agent = SB3PPO(objective.space, seed=0)
    agent.propose(1)
    assert len(_learner_threads()) == 1
    del agent
    gc.collect()
    assert _learner_threads() == []


def test_unknown_hyperparameter_names_closest():
    with pytest.raises(TypeError, match=r"PPO has no hyperparameter 'learning_rat'\. Did you mean 'learning_rate'"):
        SB3PPO(LearnToCount(3).space, learning_rat=0.1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_envs": 0}, "n_envs must be an int >= 1, got 0"),
    ({"invalid_action": "clip"}, "invalid_action must be 'wrap' or 'raise', got 'clip'"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SB3PPO(LearnToCount(3).space, **kwargs)


def _records_without_timing(run_dir) -> list[dict]:
    records = read_records(run_dir)
    for record in records:
        record.pop("timing", None)
    return records


@pytest.mark.parametrize("n_envs", [1, 3])
def test_resume_replays_learner_exactly(tmp_path, n_envs):
    objective = LearnToCount(5)
    options = {"n_envs": n_envs, "n_steps": 20, "batch_size": 10 * n_envs, "n_epochs": 2}

    def search(run_dir, trials: int, resume: bool = False) -> Search:
        agent = SB3PPO(objective.space, seed=7, **options)
        return Search(objective, agent, budget=Budget(trials=trials), seed=7, run_dir=run_dir,
                      executor=InlineExecutor(capacity=n_envs), checkpoint_every_trials=7, resume=resume)

    # A multiple of n_envs, so that the first run ends on a whole batch like the uninterrupted one.
    first = search(tmp_path / "resumed", 42)
    first.run()
    first.agent.close()
    resumed = search(tmp_path / "resumed", 80, resume=True)
    resumed.run()
    resumed.agent.close()
    uninterrupted = search(tmp_path / "uninterrupted", 80)
    uninterrupted.run()
    uninterrupted.agent.close()

    assert len(read_records(tmp_path / "resumed")) == 80
    assert _records_without_timing(tmp_path / "resumed") == _records_without_timing(tmp_path / "uninterrupted")
    assert resumed.agent.model.num_timesteps == uninterrupted.agent.model.num_timesteps


def test_load_state_dict_rejects_other_seed():
    objective = LearnToCount(3)
    with SB3PPO(objective.space, seed=0) as agent:
        (proposal,) = agent.propose(1)
        agent.observe([_result(proposal, 0.2)])
        state = agent.state_dict()
    assert len(state["batches"]) == 1
    with SB3PPO(objective.space, seed=1) as other, pytest.raises(ValueError, match="saved with SB3 seed"):
        other.load_state_dict(state)
    with SB3PPO(objective.space, seed=0) as used:
        used.propose(1)
        with pytest.raises(RuntimeError, match="needs a fresh agent"):
            used.load_state_dict(state)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_config_builds_agent(name):
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose("config", overrides=[f"agent={name}", "env.n=4", "seed=2"])
    objective = build_objective(cfg)
    agent = build_agent(cfg, objective)
    assert type(agent) is AGENTS[name]
    assert agent.n_envs == 1
    agent.close()


@pytest.mark.slow
def test_cli_writes_trials(tmp_path):
    command = [sys.executable, "-m", "seqopt.cli", "agent=sb3_ppo", "budget.trials=25", "env.n=5",
               "progress=false", f"hydra.run.dir={tmp_path}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "25 trials" in completed.stdout
    assert len(read_records(tmp_path)) == 25


@pytest.mark.slow
def test_maskable_ppo_learns_to_count():
    # The optimum (1, ..., n) has reward 1; a uniform sequence of n = 4 scores 0.28 on average.
    objective = LearnToCount(4)
    with SB3MaskablePPO(objective.space, seed=0, n_steps=256, batch_size=64, learning_rate=3e-3,
                        gamma=1.0) as agent:
        search = Search(objective, agent, budget=Budget(trials=1500), seed=0)
        summary = search.run()
    rewards = np.array([r.reward for r in search.history])
    assert summary.best_reward == 1.0
    assert rewards[-200:].mean() > rewards[:200].mean() + 0.2
