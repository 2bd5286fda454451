import math

import numpy as np
import pytest
from scipy import stats

from seqopt import ChoiceSpace, Evaluation, Proposal, Status, TrialResult
from seqopt.agents import AgingEvolution, RandomSearch
from seqopt.agents.population import Population, mutate_uniform
from seqopt.envs import LearnToCount


def _result(trial_id: int, indices, reward: float, status: Status = Status.OK) -> TrialResult:
    return TrialResult(trial_id, Proposal(tuple(indices)), Evaluation(reward=reward, status=status))


def _feed(agent, objective, count: int, start: int = 0) -> int:
    """Propose, evaluate and observe ``count`` trials one at a time; return the next trial id."""
    for trial_id in range(start, start + count):
        (proposal,) = agent.propose(1)
        agent.observe([TrialResult(trial_id, proposal, objective.evaluate(proposal.indices))])
    return start + count


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mutation_probability": 1.5}, r"mutation_probability \(p\) must be a number in \[0, 1\], got 1.5"),
        ({"mutation_probability": -0.1}, r"mutation_probability \(p\) must be a number in \[0, 1\], got -0.1"),
        ({"population_size": 10, "sample_size": 11}, r"sample_size \(S=11\) must not exceed population_size \(P=10\)"),
        ({"population_size": 0, "sample_size": 1}, r"population_size \(P\) must be an int >= 1, got 0"),
        ({"sample_size": 0}, r"sample_size \(S\) must be an int >= 1, got 0"),
        ({"population_size": 2.5}, r"population_size \(P\) must be an int >= 1, got 2.5"),
    ],
)
def test_aging_evolution_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AgingEvolution(LearnToCount(4).space, **kwargs)


def test_random_search_proposals_are_valid_and_seeded():
    space = LearnToCount(6).space
    first = RandomSearch(space, seed=7).propose(50)
    second = RandomSearch(space, seed=7).propose(50)
    other = RandomSearch(space, seed=8).propose(50)
    assert [p.indices for p in first] == [p.indices for p in second]
    assert [p.indices for p in first] != [p.indices for p in other]
    for proposal in first:
        space.validate(proposal.indices)
        assert proposal.origin == "random"


def test_propose_count_validated():
    with pytest.raises(ValueError, match="count must be a non-negative int, got -1"):
        RandomSearch(LearnToCount(3).space).propose(-1)


def test_first_population_is_random_then_mutations():
    objective = LearnToCount(5)
    agent = AgingEvolution(objective.space, population_size=20, sample_size=5, seed=0)
    origins = []
    for trial_id in range(40):
        (proposal,) = agent.propose(1)
        origins.append(proposal.origin)
        agent.observe([TrialResult(trial_id, proposal, objective.evaluate(proposal.indices))])
    assert origins[:20] == ["random"] * 20
    assert origins[20:] == ["mutation"] * 20


def test_population_keeps_exactly_p_and_removes_oldest():
    objective = LearnToCount(5)
    agent = AgingEvolution(objective.space, population_size=10, sample_size=3, seed=0)
    _feed(agent, objective, 37)
    assert len(agent.population) == 10
    assert sorted(agent.population.trial_ids.tolist()) == list(range(27, 37))


def test_population_evicts_in_insertion_order():
    population = Population(capacity=3, length=2)
    for trial_id in range(5):
        population.add(np.array([[trial_id, 0]]), np.array([float(trial_id)]), np.array([trial_id]))
        assert len(population) == min(trial_id + 1, 3)
    assert sorted(population.trial_ids.tolist()) == [2, 3, 4]
    population.add(np.array([[9, 9]]), np.array([-1.0]), np.array([5]))
    assert sorted(population.trial_ids.tolist()) == [3, 4, 5]  # trial 2, the oldest, left


def test_tournament_with_s_equal_p_picks_best():
    population = Population(capacity=5, length=1)
    rewards = np.array([0.1, 0.9, 0.3, 0.5, 0.2])
    population.add(np.arange(5)[:, None], rewards, np.arange(5))
    slots = population.tournament(np.random.default_rng(0), count=100, sample_size=5)
    assert set(slots.tolist()) == {1}


def test_tournament_selection_probabilities():
    # With P = 4 and S = 2, the member of rank r (0 = best) wins with probability
    # (number of pairs containing it whose other member is worse) / C(4, 2) = (3 - r) / 6.
    population = Population(capacity=4, length=1)
    population.add(np.arange(4)[:, None], np.array([4.0, 3.0, 2.0, 1.0]), np.arange(4))
    slots = population.tournament(np.random.default_rng(1), count=60000, sample_size=2)
    frequencies = np.bincount(slots, minlength=4) / len(slots)
    np.testing.assert_allclose(frequencies, [3 / 6, 2 / 6, 1 / 6, 0.0], atol=0.01)


def test_mutation_p0_copies_parent():
    rng = np.random.default_rng(0)
    parents = rng.integers(0, 7, size=(200, 9))
    children, mask = mutate_uniform(parents, np.full(9, 7), rng, 0.0)
    np.testing.assert_array_equal(children, parents)
    assert not mask.any()


def test_mutation_p1_is_uniform():
    rng = np.random.default_rng(0)
    cardinalities = np.array([5, 3])
    parents = np.zeros((30000, 2), dtype=np.int64)
    children, mask = mutate_uniform(parents, cardinalities, rng, 1.0)
    assert mask.all()
    for position, k in enumerate(cardinalities):
        counts = np.bincount(children[:, position], minlength=k)
        assert stats.chisquare(counts).pvalue > 1e-3


def test_mutation_paper_rule_keeps_value_with_expected_probability():
    # Paper's rule: a position keeps the parent's value with probability (1 - p) + p / k.
    rng = np.random.default_rng(3)
    parents = np.zeros((40000, 1), dtype=np.int64)
    children, _ = mutate_uniform(parents, np.array([4]), rng, 0.5)
    kept = np.mean(children[:, 0] == 0)
    assert kept == pytest.approx(0.5 + 0.5 / 4, abs=0.01)


def test_mutation_must_change_always_changes():
    rng = np.random.default_rng(2)
    cardinalities = np.array([4, 2, 1])
    parents = rng.integers(0, 1, size=(5000, 3)) + np.array([3, 1, 0])
    children, _ = mutate_uniform(parents, cardinalities, rng, 1.0, must_change=True)
    assert (children[:, 0] != parents[:, 0]).all()
    assert (children[:, 1] != parents[:, 1]).all()
    assert (children[:, 2] == 0).all()  # a single-value choice cannot change
    counts = np.bincount(children[:, 0], minlength=4)
    assert counts[3] == 0
    assert stats.chisquare(counts[:3]).pvalue > 1e-3


def test_aging_evolution_p0_children_equal_parents():
    objective = LearnToCount(6)
    agent = AgingEvolution(objective.space, population_size=10, sample_size=4, mutation_probability=0.0, seed=1)
    _feed(agent, objective, 10)
    members = {int(t): tuple(row) for t, row in zip(agent.population.trial_ids, agent.population.indices.tolist())}
    for proposal in agent.propose(50):
        assert proposal.origin == "mutation"
        assert proposal.indices == members[proposal.parent]


def test_failed_trials_never_enter_population():
    space = LearnToCount(3).space
    agent = AgingEvolution(space, population_size=4, sample_size=2, seed=0)
    agent.observe([_result(0, (0, 1, 2), 0.5), _result(1, (1, 1, 1), math.nan, Status.FAILED)])
    assert len(agent.population) == 1
    assert agent.num_failed == 1
    assert agent.population.trial_ids[0] == 0


def test_outstanding_proposals_then_out_of_order_observe():
    objective = LearnToCount(5)
    agent = AgingEvolution(objective.space, population_size=8, sample_size=2, seed=0)
    proposals = agent.propose(12)  # 8 random, then 4 children from the members observed so far
    assert [p.origin for p in proposals] == ["random"] * 12  # nothing observed yet, so all random
    results = [TrialResult(i, p, objective.evaluate(p.indices)) for i, p in enumerate(proposals)]
    agent.observe(results[5:])
    agent.observe(results[:5])
    assert len(agent.population) == 8
    assert all(p.origin == "mutation" for p in agent.propose(5))


def test_state_dict_round_trip_reproduces_proposals():
    objective = LearnToCount(6)
    agent = AgingEvolution(objective.space, population_size=15, sample_size=4, seed=5)
    _feed(agent, objective, 30)
    state = agent.state_dict()
    expected = [p.indices for p in agent.propose(20)]

    restored = AgingEvolution(objective.space, population_size=15, sample_size=4, seed=999)
    restored.load_state_dict(state)
    assert [p.indices for p in restored.propose(20)] == expected


def test_state_dict_rejects_other_population_size():
    space = LearnToCount(4).space
    state = AgingEvolution(space, population_size=5, sample_size=2, seed=0).state_dict()
    with pytest.raises(ValueError, match="capacity 5"):
        AgingEvolution(space, population_size=6, sample_size=2, seed=0).load_state_dict(state)


def test_aging_evolution_beats_random_on_learn_to_count():
    objective = LearnToCount(8)
    evolution = AgingEvolution(objective.space, population_size=50, sample_size=10, seed=0)
    random_search = RandomSearch(objective.space, seed=0)
    best = {}
    for name, agent in (("evolution", evolution), ("random", random_search)):
        rewards = []
        for trial_id in range(1500):
            (proposal,) = agent.propose(1)
            evaluation = objective.evaluate(proposal.indices)
            rewards.append(evaluation.reward)
            agent.observe([TrialResult(trial_id, proposal, evaluation)])
        best[name] = max(rewards)
    assert best["evolution"] > best["random"]
    assert best["evolution"] >= 0.5


def test_space_of_one_choice_works():
    space = ChoiceSpace.from_dict({"only": ["a", "b"]})
    agent = AgingEvolution(space, population_size=2, sample_size=1, seed=0)
    agent.observe([_result(0, (1,), 1.0), _result(1, (0,), 0.0)])
    assert all(len(p.indices) == 1 for p in agent.propose(10))
