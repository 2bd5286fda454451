"""The Neural and Evo-NAS agents: sampling distribution, bookkeeping, state, failures and the search loop."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from seqopt import Budget, ChoiceSpace, Evaluation, FunctionObjective, Proposal, Search, TrialResult
from seqopt.agents import EvoNAS, NeuralAgent, PolicyAgent
from seqopt.agents.evo_nas import mutate_with_policy
from seqopt.agents.hybrid import HybridPolicy
from seqopt.agents.policy import AutoregressivePolicy, PolicyConfig
from seqopt.agents.training import PQT, PQTConfig, ReinforceConfig
from seqopt.envs import LearnToCount
from seqopt.executors import InlineExecutor

SMALL_POLICY = {"hidden_size": 8, "embedding_size": 4}


def all_sequences(cardinalities: list[int]) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(k) for k in cardinalities], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def conditional_probabilities(policy: AutoregressivePolicy, sequences: np.ndarray) -> np.ndarray:
    """pi(a_i | a_1..a_{i-1}) of every position of every sequence, teacher-forced in torch."""
    with torch.no_grad():
        log_probs = torch.log_softmax(policy.logits(torch.as_tensor(sequences)), dim=-1)
        return log_probs.gather(-1, torch.as_tensor(sequences).unsqueeze(-1)).squeeze(-1).exp().double().numpy()


def evo_nas_probabilities(policy: AutoregressivePolicy, parent: np.ndarray, p: float, sequences: np.ndarray,
                          condition_on_parent: bool = False) -> np.ndarray:
    """prod_i ((1 - p) [a'_i = a_i] + p pi(a'_i | prefix)) for every sequence.

    With ``condition_on_parent`` the policy is wrongly conditioned on the parent's prefix instead of
    the child's; the chi-square test must reject that model.
    """
    if condition_on_parent:
        with torch.no_grad():
            log_probs = torch.log_softmax(policy.logits(torch.as_tensor(parent[None])), dim=-1)[0].exp().double()
        policy_terms = log_probs.numpy()[np.arange(sequences.shape[1]), sequences]
    else:
        policy_terms = conditional_probabilities(policy, sequences)
    return np.prod((1 - p) * (sequences == parent) + p * policy_terms, axis=1)


def chi_square_pvalue(observed: np.ndarray, expected: np.ndarray) -> float:
    """Chi-square goodness of fit, with the cells expected below 5 counts pooled into one."""
    small = expected < 5
    observed = np.append(observed[~small], observed[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    return float(stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)


def trained_policy(cardinalities: list[int]) -> AutoregressivePolicy:
    """A policy made far from uniform, and dependent on the prefix, by a few PQT steps."""
    policy = AutoregressivePolicy(cardinalities, PolicyConfig(**SMALL_POLICY), torch.Generator().manual_seed(0))
    trainer = PQT(policy, PQTConfig(learning_rate=0.02, entropy_penalty=0.0, queue_size=3, queue_fraction=None),
                  np.random.default_rng(0))
    favourites = np.array([[0, 1, 1], [2, 0, 0], [1, 2, 1]])
    for _ in range(10):
        trainer.observe(favourites, np.array([1.0, 0.9, 0.8]))
    return policy


@pytest.mark.parametrize("trained", [True, False])
def test_evo_nas_sampling_distribution_matches_formula(trained: bool) -> None:
    cardinalities = [3, 3, 2]
    policy = trained_policy(cardinalities) if trained else AutoregressivePolicy(cardinalities)
    parent = np.array([2, 2, 1])
    p, draws = 0.4, 40000
    children, mask = mutate_with_policy(policy.sampler(), HybridPolicy(p, np.random.default_rng(1)),
                                        np.tile(parent, (draws, 1)), np.random.default_rng(2))
    np.testing.assert_array_equal(children[~mask], np.tile(parent, (draws, 1))[~mask])

    sequences = all_sequences(cardinalities)
    codes = np.ravel_multi_index(children.T, cardinalities)
    observed = np.bincount(codes, minlength=len(sequences))
    expected = evo_nas_probabilities(policy, parent, p, sequences)
    assert expected.sum() == pytest.approx(1.0, abs=1e-6)
    assert chi_square_pvalue(observed, draws * expected) > 1e-3

    if trained:
        # The test has power: the same counts reject a policy conditioned on the parent's prefix.
        wrong = evo_nas_probabilities(policy, parent, p, sequences, condition_on_parent=True)
        assert chi_square_pvalue(observed, draws * wrong / wrong.sum()) < 1e-6


def test_untrained_evo_nas_mutates_like_aging_evolution() -> None:
    """A fresh policy is uniform, so each position keeps its value with probability (1 - p) + p / k."""
    space = LearnToCount(6).space
    agent = EvoNAS(space, population_size=5, sample_size=2, mutation_probability=0.3, policy=SMALL_POLICY, seed=0)
    parents = np.tile(np.arange(6), (20000, 1))
    children, _ = mutate_with_policy(agent.sampler, agent.hybrid, parents, agent.rng)
    kept = (children == parents).mean(axis=0)
    np.testing.assert_allclose(kept, 0.7 + 0.3 / 6, atol=0.012)


def feed(agent: PolicyAgent, objective: LearnToCount, count: int, start: int = 0) -> int:
    trial_id = start
    while trial_id < start + count:
        proposals = agent.propose(min(agent.batch_size, start + count - trial_id))
        results = []
        for proposal in proposals:
            results.append(TrialResult(trial_id, proposal, objective.evaluate(proposal.indices)))
            trial_id += 1
        agent.observe(results)
    return trial_id


def test_evo_nas_zero_probability_returns_parent() -> None:
    objective = LearnToCount(5)
    agent = EvoNAS(objective.space, population_size=10, sample_size=3, mutation_probability=0.0,
                   policy=SMALL_POLICY, seed=0)
    history: dict[int, tuple[int, ...]] = {}
    for trial_id in range(40):
        (proposal,) = agent.propose(1)
        history[trial_id] = proposal.indices
        if trial_id >= 10:
            assert proposal.origin == "mutation"
            assert proposal.parent is not None
            assert proposal.indices == history[proposal.parent]
            assert proposal.mask == (False,) * 5
        else:
            assert proposal.origin == "policy"
        agent.observe([TrialResult(trial_id, proposal, objective.evaluate(proposal.indices))])


def test_evo_nas_children_follow_their_mask() -> None:
    objective = LearnToCount(8)
    agent = EvoNAS(objective.space, population_size=20, sample_size=5, policy=SMALL_POLICY, seed=1)
    feed(agent, objective, 20)
    by_id = {int(i): tuple(row) for i, row in zip(agent.population.trial_ids, agent.population.indices.tolist())}
    mutated = 0
    for proposal in agent.propose(50):
        parent = by_id[proposal.parent]  # type: ignore[index]
        assert proposal.mask is not None
        for value, parent_value, resampled in zip(proposal.indices, parent, proposal.mask):
            if not resampled:
                assert value == parent_value
        mutated += sum(proposal.mask)
    assert 0.2 < mutated / (50 * 8) < 0.4  # p = 0.3


AGENTS: dict[str, Callable[..., PolicyAgent]] = {
    "neural_pqt": lambda space, **kw: NeuralAgent(space, policy=SMALL_POLICY, **kw),
    "neural_reinforce": lambda space, **kw: NeuralAgent(space, trainer=ReinforceConfig(), policy=SMALL_POLICY, **kw),
    "evo_nas_pqt": lambda space, **kw: EvoNAS(space, population_size=12, sample_size=4, policy=SMALL_POLICY, **kw),
    "evo_nas_reinforce": lambda space, **kw: EvoNAS(space, population_size=12, sample_size=4,
                                                    trainer={"algorithm": "reinforce"}, policy=SMALL_POLICY, **kw),
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_state_dict_round_trip_reproduces_proposals(name: str) -> None:
    objective = LearnToCount(6)
    agent = AGENTS[name](objective.space, batch_size=3, seed=0)
    next_id = feed(agent, objective, 25)  # 25 = 8 full batches and one pending trial
    assert agent.trainer.num_updates == 8

    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    restored = AGENTS[name](objective.space, batch_size=3, seed=99)
    restored.load_state_dict(torch.load(buffer, weights_only=False))

    histories = []
    for candidate in (agent, restored):
        proposals = []
        trial_id = next_id
        for _ in range(6):
            batch = candidate.propose(3)
            proposals.extend(p.indices for p in batch)
            candidate.observe([TrialResult(trial_id + i, p, objective.evaluate(p.indices))
                               for i, p in enumerate(batch)])
            trial_id += 3
        histories.append(proposals)
    assert histories[0] == histories[1]
    for a, b in zip(agent.policy.parameters(), restored.policy.parameters()):
        assert torch.equal(a, b)


def test_state_dict_survives_checkpoint_file(tmp_path: object) -> None:
    from seqopt.checkpoint import load_checkpoint, save_checkpoint

    objective = LearnToCount(6)
    agent = AGENTS["evo_nas_pqt"](objective.space, batch_size=2, seed=0)
    feed(agent, objective, 21)
    path = f"{tmp_path}/checkpoint.zip"
    save_checkpoint(path, {"agent": agent.state_dict()})
    restored = AGENTS["evo_nas_pqt"](objective.space, batch_size=2, seed=5)
    restored.load_state_dict(load_checkpoint(path)["agent"])
    assert [p.indices for p in agent.propose(8)] == [p.indices for p in restored.propose(8)]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_same_seed_same_history(name: str) -> None:
    objective = LearnToCount(6)
    runs = []
    for seed in (3, 3, 4):
        search = Search(objective, AGENTS[name](objective.space, seed=seed), budget=Budget(trials=60), seed=seed)
        search.run()
        runs.append([r.indices for r in search.history])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def _fails_when_first_is_zero(values: dict[str, int]) -> Evaluation:
    if values["a1"] == 1:
        return Evaluation(reward=math.nan)  # recorded as a failed trial
    return Evaluation(reward=float(sum(values.values())))


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_failed_trials_never_reach_training(name: str) -> None:
    space = LearnToCount(4).space
    objective = FunctionObjective(space, _fails_when_first_is_zero)
    agent = AGENTS[name](space, batch_size=2, seed=0)
    summary = Search(objective, agent, budget=Budget(trials=80), seed=0, executor=InlineExecutor(2)).run()
    assert summary.num_failed > 0
    assert agent.num_failed == summary.num_failed
    assert agent.trainer.num_trials == 80 - summary.num_failed
    if isinstance(agent.trainer, PQT):
        members, rewards = agent.trainer.queue.members()
        assert np.all(np.isfinite(rewards))
        assert np.all(members[:, 0] != 0)
    if isinstance(agent, EvoNAS):
        size = len(agent.population)
        assert np.all(np.isfinite(agent.population.rewards[:size]))
        assert np.all(agent.population.indices[:size, 0] != 0)


def test_outstanding_proposals_observed_out_of_order() -> None:
    objective = LearnToCount(5)
    agent = AGENTS["evo_nas_pqt"](objective.space, batch_size=2, seed=0)
    feed(agent, objective, 14)
    proposals = agent.propose(6)
    results = [TrialResult(100 + i, p, objective.evaluate(p.indices)) for i, p in enumerate(proposals)]
    agent.observe(results[3:5])
    agent.observe(results[:3] + results[5:])
    assert agent.num_observed == 20
    assert agent.trainer.num_updates == 10


def test_neural_agent_learns_learn_to_count() -> None:
    objective = LearnToCount(5)
    agent = NeuralAgent(objective.space, trainer=PQTConfig(learning_rate=3e-3, queue_size=10, queue_fraction=None),
                        policy=SMALL_POLICY, batch_size=4, seed=0)
    untrained = [objective.evaluate(p.indices).reward for p in agent.propose(200)]
    feed(agent, objective, 600)
    trained = [objective.evaluate(p.indices).reward for p in agent.propose(200)]
    # A uniform policy averages about 0.17 at n = 5; imitating the queue's best sequences raises it.
    assert np.mean(trained) > np.mean(untrained) + 0.2


def test_metrics_report_training_state() -> None:
    objective = LearnToCount(4)
    agent = AGENTS["evo_nas_pqt"](objective.space, batch_size=2, seed=0)
    feed(agent, objective, 10)
    metrics = agent.metrics()
    assert metrics["agent/num_updates"] == 5
    assert metrics["agent/queue_size"] == 2  # 20 % of 10 trials
    assert math.isfinite(metrics["agent/loss"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda space: EvoNAS(space, mutation_probability=1.2),
         r"mutation_probability \(p\) must be a number in \[0, 1\]"),
        (lambda space: EvoNAS(space, population_size=10, sample_size=20), r"sample_size \(S=20\) must not exceed"),
        (lambda space: NeuralAgent(space, batch_size=0), r"batch_size \(B\) must be an int >= 1, got 0"),
        (lambda space: NeuralAgent(space, policy={"cells": "gru"}), r"Unknown policy option\(s\) \['cells'\]"),
        (lambda space: NeuralAgent(space, trainer={"algorithm": "pqt", "lr": 1}), r"Unknown trainer option"),
    ],
)
def test_agents_reject_bad_arguments(build: Callable[[ChoiceSpace], PolicyAgent], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(LearnToCount(4).space)


def test_proposals_carry_no_agent_internals() -> None:
    objective = LearnToCount(5)
    agent = AGENTS["evo_nas_pqt"](objective.space, seed=0)
    feed(agent, objective, 15)
    for proposal in agent.propose(4):
        assert isinstance(proposal, Proposal)
        assert all(type(i) is int for i in proposal.indices)
        assert proposal.mask is not None and all(type(m) is bool for m in proposal.mask)
        assert type(proposal.parent) is int
