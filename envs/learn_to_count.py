"""Learn to count: the synthetic task of "Evolutionary-Neural Hybrid Agents for Architecture
Search" (Maziarz et al., arXiv:1811.09828), Section 6.1.

A sequence a = (a_1, ..., a_n) with every a_i in {1, ..., n} scores

    r(a) = (n + 1) / (a_1^2 + sum_{k=1}^{n-1} (a_{k+1} - a_k)^2 + (a_n - (n + 1))^2),

which rewards small steps between neighbours, a small first value and a large last value. The
maximum 1.0 is reached only at (1, 2, ..., n), because the denominator is a sum of n + 1 squared
integer steps that must add up to n + 1 and is smallest when every step is 1.
"""

from __future__ import annotations

import numpy as np

from seqopt.objective import Evaluation
from seqopt.spaces import Choice, ChoiceSpace


def learn_to_count_reward(values: np.ndarray, n: int) -> np.ndarray:
    """Reward of sequences of values in 1..n; ``values`` has shape ``(..., n)``."""
    values = np.asarray(values, dtype=np.float64)
    batch_shape = values.shape[:-1]
    padded = np.concatenate([np.zeros((*batch_shape, 1)), values, np.full((*batch_shape, 1), n + 1.0)], axis=-1)
    denominator = np.sum(np.diff(padded, axis=-1) ** 2, axis=-1)
    return (n + 1) / denominator


class LearnToCount:
    """The learn-to-count objective over n positions with values 1..n.

    Args:
        n: sequence length and largest value; the space contains n**n sequences.
    """

    def __init__(self, n: int = 10) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(
                f"learn-to-count needs an int n >= 2 (the sequence length and largest value), got n={n!r}."
            )
        self.n = int(n)
        self.space = ChoiceSpace([Choice(f"a{i + 1}", list(range(1, self.n + 1))) for i in range(self.n)])

    def __repr__(self) -> str:
        return f"LearnToCount(n={self.n})"

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        values = np.asarray(self.space.validate(indices)) + 1
        return Evaluation(reward=float(learn_to_count_reward(values, self.n)))

    def optimum(self) -> tuple[int, ...]:
        """Index sequence of the optimum (1, 2, ..., n)."""
        return tuple(range(self.n))
