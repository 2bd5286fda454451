"""Redrawing repeated proposals (``max_redraws``) in aging evolution, the Neural agent and Evo-NAS."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from seqopt import Budget, Search
from seqopt.agents import AgingEvolution, EvoNAS, NeuralAgent
from seqopt.agents.base import Agent
from seqopt.agents.novelty import SeenSequences
from seqopt.agents.policy import PolicyConfig
from seqopt.agents.training import PQTConfig
from seqopt.checkpoint import load_checkpoint, save_checkpoint
from seqopt.envs import LearnToCount
from seqopt.executors import InlineExecutor
from seqopt.trial import Proposal, TrialResult

SMALL_POLICY = PolicyConfig(hidden_size=8, embedding_size=4)
# A small queue and a fast learning rate make the policy repeat itself quickly, while the entropy
# bonus keeps enough spread for redraws to find new sequences.
SHARP = PQTConfig(learning_rate=3e-3, entropy_penalty=0.1, queue_size=3, queue_fraction=None)

AGENTS: dict[str, Callable[..., Agent]] = {
    "aging_evolution": lambda space, **kw: AgingEvolution(space, population_size=8, sample_size=4,
                                                          mutation_probability=0.2, **kw),
    "neural": lambda space, **kw: NeuralAgent(space, trainer=SHARP, policy=SMALL_POLICY, **kw),
    "evo_nas": lambda space, **kw: EvoNAS(space, population_size=8, sample_size=4, mutation_probability=0.2,
                                          trainer=SHARP, policy=SMALL_POLICY, **kw),
}


def run(name: str, space_n: int, trials: int, max_redraws: int, seed: int = 0, width: int = 1) -> list[tuple[int, ...]]:
    objective = LearnToCount(space_n)
    agent = AGENTS[name](objective.space, max_redraws=max_redraws, seed=seed)
    search = Search(objective, agent, budget=Budget(trials=trials), seed=seed, executor=InlineExecutor(width))
    search.run()
    return [r.indices for r in sorted(search.history, key=lambda r: r.trial_id)]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_redraws_remove_repeats(name: str) -> None:
    # n = 5 has 3,125 sequences, far more than the 150 trials, so 50 redraws leave almost no repeat.
    plain = run(name, 5, 150, max_redraws=0)
    redrawn = run(name, 5, 150, max_redraws=50)
    assert len(set(plain)) < len(plain)  # without redraws these settings repeat themselves
    assert len(set(redrawn)) >= len(redrawn) - 1


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_exhausted_space_keeps_repeats(name: str) -> None:
    # n = 2 has 4 sequences: after them, every proposal is a repeat that is kept after the redraws.
    objective = LearnToCount(2)
    agent = AGENTS[name](objective.space, max_redraws=5, seed=1)
    search = Search(objective, agent, budget=Budget(trials=30), seed=1, executor=InlineExecutor(3))
    summary = search.run()
    assert summary.num_trials == 30
    assert len({r.indices for r in search.history}) == 4
    assert agent.seen.num_repeats_kept == 26
    assert agent.metrics()["agent/repeats_kept"] == 26
    assert summary.agent_metrics is not None
    assert summary.agent_metrics["agent/repeats_kept"] == 26
    assert "agent/repeats_kept=26" in summary.format()


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_exhausted_space_skips_redraws(name: str) -> None:
    # Once all 4 sequences of n = 2 are taken, a huge max_redraws must not cost any redraw.
    objective = LearnToCount(2)
    agent = AGENTS[name](objective.space, max_redraws=10**9, seed=1)
    summary = Search(objective, agent, budget=Budget(trials=30), seed=1, executor=InlineExecutor(3)).run()
    assert summary.num_trials == 30
    assert agent.seen.num_repeats_kept == 26
    assert agent.seen.num_redraws < 1000


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_zero_redraws_changes_nothing(name: str) -> None:
    objective = LearnToCount(5)
    default = AGENTS[name](objective.space, seed=4)
    search = Search(objective, default, budget=Budget(trials=60), seed=4)
    search.run()
    history = [r.indices for r in sorted(search.history, key=lambda r: r.trial_id)]
    assert run(name, 5, 60, max_redraws=0, seed=4) == history
    assert len(default.seen) == 0  # no memory is kept when the option is off


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_redraws_same_seed_same_history(name: str) -> None:
    assert run(name, 5, 80, max_redraws=10, seed=2, width=2) == run(name, 5, 80, max_redraws=10, seed=2, width=2)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_checkpoint_keeps_seen_sequences(name: str, tmp_path: object) -> None:
    objective = LearnToCount(4)
    agent = AGENTS[name](objective.space, max_redraws=10, seed=0)
    trial_id = 0
    for _ in range(40):
        proposal = agent.propose(1)[0]
        agent.observe([TrialResult(trial_id, proposal, objective.evaluate(proposal.indices))])
        trial_id += 1
    path = f"{tmp_path}/checkpoint.zip"
    save_checkpoint(path, {"agent": agent.state_dict()})
    restored = AGENTS[name](objective.space, max_redraws=10, seed=7)
    restored.load_state_dict(load_checkpoint(path)["agent"])
    assert len(restored.seen) == len(agent.seen) == 40
    assert [p.indices for p in agent.propose(6)] == [p.indices for p in restored.propose(6)]


def test_repeats_within_call_redrawn() -> None:
    seen = SeenSequences(length=1, max_redraws=3)
    values = iter([0, 0, 0, 0, 1, 2])

    def draw(count: int) -> list[Proposal]:
        return [Proposal(indices=(next(values),)) for _ in range(count)]

    # Draw (0, 0, 0): rows 1 and 2 repeat row 0. Redraw (0, 1): row 1 still repeats. Redraw (2,).
    assert [p.indices for p in seen.draw(draw, 3)] == [(0,), (2,), (1,)]
    assert seen.num_redraws == 3


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_invalid_max_redraws_rejected(value: object) -> None:
    with pytest.raises(ValueError, match=r"max_redraws must be an int >= 0"):
        AgingEvolution(LearnToCount(3).space, population_size=4, sample_size=2, max_redraws=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_redraws must be an int >= 0"):
        EvoNAS(LearnToCount(3).space, population_size=4, sample_size=2, max_redraws=value)  # type: ignore[arg-type]


def test_seen_state_is_arrays() -> None:
    seen = SeenSequences(length=2, max_redraws=1)
    seen.draw(lambda count: [Proposal(indices=(1, 0)) for _ in range(count)], 1)
    state = seen.state_dict()
    assert isinstance(state["sequences"], np.ndarray) and state["sequences"].tolist() == [[1, 0]]
