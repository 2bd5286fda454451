"""The autoregressive policy: uniform start, teacher-forced log-probabilities, numpy sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqopt.agents.policy import AutoregressivePolicy, PolicyConfig, sample_categorical, sample_sequences

CARDINALITIES = [3, 5, 4, 2]


def make_policy(cell: str = "lstm", num_layers: int = 1, seed: int = 0) -> AutoregressivePolicy:
    generator = torch.Generator().manual_seed(seed)
    config = PolicyConfig(cell=cell, hidden_size=8, embedding_size=4, num_layers=num_layers)
    return AutoregressivePolicy(CARDINALITIES, config, generator)


def randomize_heads(policy: AutoregressivePolicy, seed: int = 1) -> None:
    """Give the heads random weights on their valid entries, so the policy is far from uniform."""
    generator = torch.Generator().manual_seed(seed)
    valid = policy.logit_mask == 0
    with torch.no_grad():
        policy.head_weight.normal_(generator=generator).mul_(3.0).mul_(valid[..., None])
        policy.head_bias.normal_(generator=generator).mul_(valid)


def all_sequences(cardinalities: list[int]) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(k) for k in cardinalities], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_untrained_policy_is_uniform(cell: str) -> None:
    policy = make_policy(cell)
    sequences = torch.as_tensor(all_sequences(CARDINALITIES)[::7])
    with torch.no_grad():
        log_prob, entropy = policy.log_prob_and_entropy(sequences)
    expected = -sum(math.log(k) for k in CARDINALITIES)
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(entropy.numpy(), -expected, rtol=1e-6)

    sampler = policy.sampler()
    sampler.start(3)
    for k in CARDINALITIES:
        probabilities = sampler.probabilities()
        assert probabilities.shape == (3, k)
        np.testing.assert_allclose(probabilities, 1.0 / k, rtol=1e-6)
        sampler.feed(np.array([0, 1, k - 1]))


def test_untrained_policy_samples_uniformly() -> None:
    policy = make_policy()
    sequences = sample_sequences(policy.sampler(), 20000, np.random.default_rng(0))
    for position, k in enumerate(CARDINALITIES):
        counts = np.bincount(sequences[:, position], minlength=k)
        # Binomial standard deviation is below 70 for 20,000 draws; 5 of them is a loose bound.
        assert np.all(np.abs(counts - 20000 / k) < 350), (position, counts)


@pytest.mark.parametrize(("cell", "num_layers"), [("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)])
def test_sampler_matches_teacher_forcing(cell: str, num_layers: int) -> None:
    policy = make_policy(cell, num_layers)
    randomize_heads(policy)
    rng = np.random.default_rng(0)
    sequences = sample_sequences(policy.sampler(), 64, rng)

    sampler = policy.sampler()
    sampler.start(len(sequences))
    log_prob = np.zeros(len(sequences))
    for position in range(len(CARDINALITIES)):
        probabilities = sampler.probabilities()
        log_prob += np.log(probabilities[np.arange(len(sequences)), sequences[:, position]])
        sampler.feed(sequences[:, position])
    with torch.no_grad():
        expected, _ = policy.log_prob_and_entropy(torch.as_tensor(sequences))
    np.testing.assert_allclose(log_prob, expected.numpy(), atol=1e-5)


def test_log_prob_is_hand_computed() -> None:
    """LSTM with one unit whose only nonzero recurrent weight feeds the embedding to the cell gate."""
    policy = AutoregressivePolicy([3, 2], PolicyConfig(hidden_size=1, embedding_size=1))
    with torch.no_grad():
        for weight in policy.rnn.parameters():
            weight.zero_()
        policy.rnn.weight_ih_l0[2, 0] = 1.0  # rows are the input, forget, cell and output gates
        policy.embedding.weight[:, 0] = torch.tensor([-2.0, 0.5, 3.0])  # embeddings of position 0's values
        policy.head_bias[0] = torch.tensor([0.0, math.log(2.0), math.log(3.0)])
        policy.head_weight[1, 1, 0] = 4.0  # position 1: logits (0, 4 h)

    def hidden_after(value: int) -> float:
        # Step 0 sees a zero input, so its state is zero. At step 1 the input gate is sigmoid(0) = 0.5,
        # the cell is 0.5 * tanh(e) and the output gate is 0.5.
        embedding = [-2.0, 0.5, 3.0][value]
        cell = 0.5 * math.tanh(embedding)
        return 0.5 * math.tanh(cell)

    def expected_log_prob(first: int, second: int) -> float:
        first_term = math.log([1.0, 2.0, 3.0][first] / 6.0)
        second_logit = 4.0 * hidden_after(first)
        second_prob = 1.0 / (1.0 + math.exp(second_logit)) if second == 0 else 1.0 / (1.0 + math.exp(-second_logit))
        return first_term + math.log(second_prob)

    sequences = [(2, 1), (0, 1), (1, 0), (2, 0)]
    with torch.no_grad():
        log_prob, _ = policy.log_prob_and_entropy(torch.tensor(sequences))
    for (first, second), value in zip(sequences, log_prob.tolist()):
        assert value == pytest.approx(expected_log_prob(first, second), abs=1e-6)


def test_entropy_is_summed_over_positions() -> None:
    policy = AutoregressivePolicy([2, 2], PolicyConfig(hidden_size=2, embedding_size=2))
    with torch.no_grad():
        for weight in policy.rnn.parameters():
            weight.zero_()
        policy.head_bias[0] = torch.tensor([0.0, math.log(3.0)])  # probabilities 1/4, 3/4
    with torch.no_grad():
        _, entropy = policy.log_prob_and_entropy(torch.tensor([[0, 1]]))
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) + math.log(2.0)
    assert entropy.item() == pytest.approx(expected, abs=1e-6)


def test_construction_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_policy(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_same_generator_seed_same_weights() -> None:
    first, second, other = make_policy(seed=3), make_policy(seed=3), make_policy(seed=4)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(first.embedding.weight, other.embedding.weight)


def test_sampler_sees_optimizer_updates() -> None:
    policy = make_policy()
    sampler = policy.sampler()
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.1)
    target = torch.tensor([[2, 4, 3, 1]])
    for _ in range(20):
        log_prob, _ = policy.log_prob_and_entropy(target)
        optimizer.zero_grad()
        (-log_prob.sum()).backward()
        optimizer.step()
    sampler.start(1)
    probabilities = sampler.probabilities()
    assert probabilities[0, 2] > 0.9


def test_padded_head_entries_stay_zero_after_training() -> None:
    policy = make_policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.1)
    for _ in range(5):
        log_prob, entropy = policy.log_prob_and_entropy(torch.tensor([[2, 4, 3, 1], [0, 0, 0, 0]]))
        optimizer.zero_grad()
        (-log_prob.sum() - entropy.sum()).backward()
        optimizer.step()
    padded = policy.logit_mask != 0
    assert torch.count_nonzero(policy.head_weight[padded]) == 0
    assert torch.count_nonzero(policy.head_bias[padded]) == 0


def test_sample_categorical_follows_probabilities() -> None:
    probabilities = np.tile(np.array([[0.1, 0.0, 0.6, 0.3]]), (40000, 1))
    draws = sample_categorical(probabilities, np.random.default_rng(1))
    frequencies = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(frequencies, [0.1, 0.0, 0.6, 0.3], atol=0.01)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell": "rnn"}, "policy.cell must be one of"),
        ({"hidden_size": 0}, "policy.hidden_size must be an int >= 1, got 0"),
        ({"num_layers": 1.5}, "policy.num_layers must be an int >= 1, got 1.5"),
    ],
)
def test_policy_config_rejects_bad_values(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyConfig(**options)  # type: ignore[arg-type]


def test_sampler_rejects_extra_step() -> None:
    sampler = AutoregressivePolicy([2]).sampler()
    sampler.start(1)
    sampler.probabilities()
    sampler.feed(np.array([0]))
    with pytest.raises(RuntimeError, match="call start"):
        sampler.probabilities()


def test_probabilities_of_rows_match_full_batch() -> None:
    policy = make_policy()
    randomize_heads(policy)
    sequences = sample_sequences(policy.sampler(), 6, np.random.default_rng(3))
    full, partial = policy.sampler(), policy.sampler()
    full.start(6)
    partial.start(6)
    rows = np.array([4, 1])
    for position in range(len(CARDINALITIES)):
        expected = full.probabilities()[rows]
        if position % 2 == 1:  # skipping the head at some positions must not change later ones
            np.testing.assert_allclose(partial.probabilities(rows), expected, rtol=1e-5)
        full.feed(sequences[:, position])
        partial.feed(sequences[:, position])
