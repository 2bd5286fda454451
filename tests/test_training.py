"""REINFORCE, Priority Queue Training and the priority queue."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqopt.agents.policy import AutoregressivePolicy, PolicyConfig, sample_sequences
from seqopt.agents.training import (
    PQT,
    PQTConfig,
    PriorityQueue,
    Reinforce,
    ReinforceConfig,
    make_trainer,
    make_trainer_config,
)


def small_policy(cardinalities: list[int], seed: int = 0) -> AutoregressivePolicy:
    return AutoregressivePolicy(cardinalities, PolicyConfig(hidden_size=8, embedding_size=4),
                                torch.Generator().manual_seed(seed))


def rows(*sequences: tuple[int, ...]) -> np.ndarray:
    return np.array(sequences, dtype=np.int64)


def brute_force_top(history: list[tuple[tuple[int, ...], float]], count: int) -> set[tuple[int, ...]]:
    """The best ``count`` unique sequences, first reward kept, older first among ties."""
    first: dict[tuple[int, ...], tuple[float, int]] = {}
    for order, (sequence, reward) in enumerate(history):
        first.setdefault(sequence, (reward, order))
    ranked = sorted(first.items(), key=lambda item: (-item[1][0], item[1][1]))
    return {sequence for sequence, _ in ranked[:count]}


def test_queue_keeps_best_unique_fixed_k() -> None:
    queue = PriorityQueue(2, capacity=3)
    queue.push(rows((0, 0), (0, 1), (0, 2)), np.array([0.1, 0.5, 0.3]))
    queue.push(rows((0, 1)), np.array([0.99]))  # duplicate with another reward: ignored
    queue.push(rows((1, 0), (1, 1)), np.array([0.4, 0.05]))
    members, rewards = queue.members()
    np.testing.assert_array_equal(members, [[0, 1], [1, 0], [0, 2]])
    np.testing.assert_array_equal(rewards, [0.5, 0.4, 0.3])
    assert queue.num_pushed == 6


def test_queue_tie_keeps_older_member() -> None:
    queue = PriorityQueue(1, capacity=2)
    queue.push(rows((0,), (1,), (2,)), np.array([0.5, 0.5, 0.5]))
    members, _ = queue.members()
    np.testing.assert_array_equal(members, [[0], [1]])


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_queue_fraction_is_exact_top(fraction: float) -> None:
    rng = np.random.default_rng(0)
    queue = PriorityQueue(3, fraction=fraction)
    history: list[tuple[tuple[int, ...], float]] = []
    for _ in range(400):
        sequence = tuple(int(v) for v in rng.integers(0, 4, size=3))  # 64 sequences: many duplicates
        reward = float(np.round(rng.random(), 1))  # ties too
        queue.push(np.array([sequence]), np.array([reward]))
        history.append((sequence, reward))
        capacity = max(1, math.ceil(fraction * len(history) - 1e-9))
        assert queue.capacity == capacity
        members, _ = queue.members()
        assert {tuple(m) for m in members.tolist()} == brute_force_top(history, capacity)


def test_queue_fraction_capacity_ignores_rounding_error() -> None:
    queue = PriorityQueue(1, fraction=0.07)
    queue.push(np.arange(100)[:, None], np.ones(100))
    assert queue.capacity == 7  # 0.07 * 100 is 7.000000000000001 in floating point
    assert len(queue) == 7


def test_queue_fixed_k_matches_brute_force_without_repeats() -> None:
    rng = np.random.default_rng(1)
    queue = PriorityQueue(4, capacity=10)
    history: list[tuple[tuple[int, ...], float]] = []
    for sequence in rng.permutation(np.stack(np.unravel_index(np.arange(256), (4, 4, 4, 4)), axis=1))[:200]:
        reward = float(rng.random())
        queue.push(sequence[None], np.array([reward]))
        history.append((tuple(sequence.tolist()), reward))
    members, _ = queue.members()
    assert {tuple(m) for m in members.tolist()} == brute_force_top(history, 10)


def test_queue_sample_draws_distinct_members() -> None:
    queue = PriorityQueue(1, capacity=50)
    queue.push(np.arange(50)[:, None], np.arange(50, dtype=np.float64))
    drawn = queue.sample(20, np.random.default_rng(0))
    assert len(np.unique(drawn)) == 20
    np.testing.assert_array_equal(np.sort(queue.sample(80, np.random.default_rng(0))[:, 0]), np.arange(50))


@pytest.mark.parametrize(("capacity", "fraction"), [(5, None), (None, 0.2)])
def test_queue_state_round_trip(capacity: int | None, fraction: float | None) -> None:
    rng = np.random.default_rng(2)
    first = PriorityQueue(3, capacity=capacity, fraction=fraction)
    first.push(rng.integers(0, 3, size=(60, 3)), np.round(rng.random(60), 2))
    second = PriorityQueue(3, capacity=capacity, fraction=fraction)
    second.load_state_dict(first.state_dict())

    more_sequences, more_rewards = rng.integers(0, 3, size=(40, 3)), np.round(rng.random(40), 2)
    for queue in (first, second):
        queue.push(more_sequences, more_rewards)
    for a, b in zip(first.members(), second.members()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.sample(4, np.random.default_rng(9)), second.sample(4, np.random.default_rng(9)))


def test_queue_rejects_nan_reward() -> None:
    with pytest.raises(ValueError, match="Queue rewards must be finite"):
        PriorityQueue(1, capacity=2).push(rows((0,)), np.array([math.nan]))


def test_trainer_steps_once_per_batch() -> None:
    policy = small_policy([3, 3])
    trainer = make_trainer(PQTConfig(queue_size=4, queue_fraction=None), policy, np.random.default_rng(0), batch_size=2)
    assert trainer.observe(rows((0, 1), (1, 2), (2, 0)), np.array([0.1, 0.2, 0.3])) == 1
    assert trainer.observe(rows((0, 0), (1, 1)), np.array([0.1, 0.2])) == 1
    assert trainer.observe(rows((2, 2)), np.array([0.4])) == 1
    assert trainer.num_updates == 3
    assert trainer.num_trials == 6


def test_reinforce_moves_toward_better_arm() -> None:
    """Two-arm bandit: arm 1 pays 1, arm 0 pays 0."""
    policy = small_policy([2])
    trainer = Reinforce(policy, ReinforceConfig(learning_rate=0.05, entropy_penalty=0.0, baseline_decay=0.9),
                        np.random.default_rng(0), batch_size=8)
    rng = np.random.default_rng(1)
    sampler = policy.sampler()
    for _ in range(30):
        arms = sample_sequences(sampler, 8, rng)
        trainer.observe(arms, arms[:, 0].astype(np.float64))
    sampler.start(1)
    assert sampler.probabilities()[0, 1] > 0.9


def test_reinforce_sign_follows_advantage() -> None:
    policy = small_policy([2])
    trainer = Reinforce(policy, ReinforceConfig(learning_rate=0.01, entropy_penalty=0.0, baseline_decay=0.5),
                        np.random.default_rng(0))
    trainer.baseline = 0.5
    trainer.observe(rows((0,)), np.array([1.0]))  # better than the baseline: arm 0 gains
    sampler = policy.sampler()
    sampler.start(1)
    after_good = sampler.probabilities()[0, 0]
    assert after_good > 0.5
    trainer.baseline = 0.5
    for _ in range(3):
        trainer.baseline = 0.5
        trainer.observe(rows((0,)), np.array([0.0]))  # worse than the baseline: arm 0 loses
    sampler.start(1)
    assert sampler.probabilities()[0, 0] < after_good


def test_reinforce_baseline_is_moving_average() -> None:
    trainer = Reinforce(small_policy([2]), ReinforceConfig(baseline_decay=0.5), np.random.default_rng(0))
    trainer.observe(rows((0,)), np.array([1.0]))
    assert trainer.baseline == pytest.approx(1.0)  # started at the first reward
    trainer.observe(rows((1,)), np.array([0.0]))
    assert trainer.baseline == pytest.approx(0.5)
    trainer.observe(rows((1,)), np.array([0.0]))
    assert trainer.baseline == pytest.approx(0.25)


def test_pqt_step_raises_queue_likelihood() -> None:
    policy = small_policy([4, 4, 4])
    trainer = PQT(policy, PQTConfig(learning_rate=0.01, entropy_penalty=0.0, queue_size=3, queue_fraction=None),
                  np.random.default_rng(0))
    best = rows((3, 2, 1), (0, 1, 2), (1, 1, 1))
    with torch.no_grad():
        before, _ = policy.log_prob_and_entropy(torch.as_tensor(best))
    trainer.observe(np.concatenate([best, rows((2, 2, 2), (0, 0, 0))]), np.array([0.9, 0.8, 0.7, 0.1, 0.2]))
    with torch.no_grad():
        after, _ = policy.log_prob_and_entropy(torch.as_tensor(best))
    assert torch.all(after > before)
    assert len(trainer.queue) == 3


def test_pqt_entropy_bonus_keeps_policy_wider() -> None:
    entropies = []
    for penalty in (0.0, 1.0):
        policy = small_policy([4, 4])
        trainer = PQT(policy, PQTConfig(learning_rate=0.05, entropy_penalty=penalty, queue_size=1,
                                        queue_fraction=None), np.random.default_rng(0))
        for _ in range(30):
            trainer.observe(rows((3, 0), (1, 1)), np.array([1.0, 0.0]))
        entropies.append(trainer.last_entropy)
    assert entropies[1] > entropies[0] + 0.5


def test_trainer_rejects_nan_reward() -> None:
    trainer = make_trainer({"algorithm": "reinforce"}, small_policy([2]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="Failed trials must be filtered out"):
        trainer.observe(rows((0,)), np.array([math.nan]))


def test_trainer_state_round_trip_continues_identically() -> None:
    def build(seed: int) -> PQT:
        policy = small_policy([3, 3, 3], seed)
        return PQT(policy, PQTConfig(learning_rate=0.01, queue_fraction=0.5, minibatch_size=4),
                   np.random.default_rng(seed), batch_size=3)

    first = build(0)
    data_rng = np.random.default_rng(5)
    first.observe(data_rng.integers(0, 3, size=(10, 3)), data_rng.random(10))
    second = build(1)
    second.policy.load_state_dict(first.policy.state_dict())
    second.load_state_dict(first.state_dict())
    second.rng.bit_generator.state = first.rng.bit_generator.state

    more, more_rewards = data_rng.integers(0, 3, size=(7, 3)), data_rng.random(7)
    for trainer in (first, second):
        trainer.observe(more, more_rewards)
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"algorithm": "pqt", "queue_size": 5}, "Give exactly one of trainer.queue_size and trainer.queue_fraction"),
        ({"algorithm": "pqt", "queue_fraction": None}, "Give exactly one of"),
        ({"algorithm": "pqt", "queue_fraction": 1.5}, r"trainer.queue_fraction must be a number in \(0, 1\]"),
        ({"algorithm": "pqt", "learning_rate": 0}, "trainer.learning_rate must be a positive finite number, got 0"),
        ({"algorithm": "reinforce", "baseline_decay": 1.0}, r"trainer.baseline_decay must be a number in \[0, 1\)"),
        ({"algorithm": "reinforce", "queue_size": 5}, r"Unknown trainer option\(s\) \['queue_size'\]"),
        ({"algorithm": "ppo"}, r"trainer.algorithm must be one of \['pqt', 'reinforce'\], got 'ppo'"),
        ({"algorithm": "pqt", "entropy_penalty": -1}, "trainer.entropy_penalty must be a finite number >= 0"),
    ],
)
def test_trainer_config_rejects_bad_values(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_trainer_config(config)
