import itertools

import numpy as np
import pytest

from seqopt.envs import LearnToCount, learn_to_count_reward


@pytest.mark.parametrize("n", [2, 3, 10, 20])
def test_optimum_is_one(n):
    objective = LearnToCount(n)
    assert objective.evaluate(objective.optimum()).reward == pytest.approx(1.0)


def test_hand_computed_value():
    # n = 3, a = (2, 2, 3): denominator 2^2 + 0^2 + 1^2 + (3 - 4)^2 = 6, reward 4 / 6.
    objective = LearnToCount(3)
    indices = objective.space.encode([2, 2, 3])
    assert objective.evaluate(indices).reward == pytest.approx(4 / 6)


def test_worst_value_n4():
    # a = (4, 1, 4, 1): 16 + 9 + 9 + 9 + 16 = 59, reward 5 / 59.
    assert learn_to_count_reward(np.array([4, 1, 4, 1]), 4) == pytest.approx(5 / 59)


def test_optimum_unique_by_exhaustion():
    objective = LearnToCount(4)
    values = np.array(list(itertools.product(range(1, 5), repeat=4)))
    rewards = learn_to_count_reward(values, 4)
    assert rewards.max() == pytest.approx(1.0)
    assert values[rewards.argmax()].tolist() == [1, 2, 3, 4]
    assert np.sum(rewards >= 1.0 - 1e-12) == 1
    assert objective.space.size == 256


@pytest.mark.parametrize("n", [1, 0, -3, 2.5, True])
def test_bad_n_rejected(n):
    with pytest.raises(ValueError, match="n >= 2"):
        LearnToCount(n)


def test_invalid_sequence_rejected():
    with pytest.raises(ValueError, match="index 5 is out of range"):
        LearnToCount(5).evaluate((0, 1, 2, 3, 5))
