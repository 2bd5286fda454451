"""The Evo-NAS per-step rule: reuse the parent's action, or with probability p ask a base policy.

Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828),
Algorithm 1: for each step i of a child episode, draw m_i ~ Bernoulli(p); m_i = 0 reuses the
parent's action a_i, m_i = 1 takes an action sampled from the policy, which is conditioned on the
actions actually taken so far. A child sequence A' therefore has probability

    prod_i ((1 - p) [a'_i = a_i] + p pi(a'_i | A'_{i-1})).

``HybridPolicy`` stores the parent episodes of a batch of children, draws the mutation mask and
calls a base policy only for the steps that the mask hands to it. It knows nothing of how the base
policy computes its actions, so the same object serves two uses:

- sequence search (the Evo-NAS agent), where the base policy is an autoregressive network whose
  observation is the prefix of choices made so far;
- closed-loop Gymnasium tasks, where the base policy is pi(a | observation), for example an MLP,
  and the parent episode is a recorded list of actions.

Protocol per batch: ``begin(parents)``, then one ``act(sample_base, rows)`` per step of the
episodes in ``rows``, then read ``masks``. The caller feeds each returned action to its
environment or policy state, so the base policy sees the action actually taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BaseSampler = Callable[[np.ndarray], np.ndarray]
"""Takes the int64 row numbers of the episodes whose step the base policy decides and returns
one action per row, in the same order."""


class HybridPolicy:
    """Per-step choice between a parent's action and a base policy's action for a batch of episodes.

    Args:
        mutation_probability: p, the probability that a step's action comes from the base
            policy instead of the parent.
        rng: generator of the mutation mask.

    A step past the end of a parent episode (a shorter parent, or no parent at all) always takes
    the base policy's action. Such steps count as mutated in ``masks``.
    """

    def __init__(self, mutation_probability: float, rng: np.random.Generator) -> None:
        if isinstance(mutation_probability, bool) or not isinstance(mutation_probability, (int, float)) \
                or not 0.0 <= mutation_probability <= 1.0:
            raise ValueError(f"mutation_probability (p) must be a number in [0, 1], got {mutation_probability!r}.")
        self.mutation_probability = float(mutation_probability)
        self.rng = rng
        self.begin([])

    def begin(self, parents: Sequence[Sequence[int] | np.ndarray | None] | np.ndarray) -> None:
        """Start one child episode per parent; a parent of None means the base policy takes every step."""
        count = len(parents)
        lengths = np.array([0 if parent is None else len(parent) for parent in parents], dtype=np.int64)
        horizon = int(lengths.max()) if count else 0
        self._parents = np.zeros((count, horizon), dtype=np.int64)
        for row, parent in enumerate(parents):
            if parent is not None and len(parent):
                self._parents[row, : len(parent)] = np.asarray(parent, dtype=np.int64)
        self._lengths = lengths

        # m ~ Bernoulli(p) for every step the parent covers, all drawn now: the draws are
        # independent of the episode, so drawing them up front gives the same distribution.
        resample = self.rng.random((count, horizon)) < self.mutation_probability
        self._keep = ~resample & (np.arange(horizon)[None, :] < lengths[:, None])

        self._steps = np.zeros(count, dtype=np.int64)
        self._mutated = np.zeros((count, max(horizon, 1)), dtype=np.bool_)
        self._all_rows = np.arange(count, dtype=np.int64)
        self._lockstep: int | None = 0  # the common step while every act() covered all rows

    @property
    def count(self) -> int:
        return len(self._lengths)

    def act(self, sample_base: BaseSampler, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the next action of each episode in ``rows`` (distinct row numbers; default: all, in order).

        ``sample_base`` is called at most once, with the rows whose action the base policy
        decides at this step, and not at all when every listed episode reuses its parent's action.
        """
        if rows is None and self._lockstep is not None:
            return self._act_lockstep(sample_base, self._lockstep)

        rows = self._all_rows if rows is None else np.asarray(rows, dtype=np.int64)
        self._lockstep = None
        steps = self._steps[rows]
        keep = np.zeros(len(rows), dtype=np.bool_)
        covered = steps < self._lengths[rows]
        keep[covered] = self._keep[rows[covered], steps[covered]]

        actions = np.zeros(len(rows), dtype=np.int64)
        actions[keep] = self._parents[rows[keep], steps[keep]]
        if not keep.all():
            actions[~keep] = sample_base(rows[~keep])

        if len(rows):
            self._reserve_steps(int(steps.max()) + 1)
        self._mutated[rows, steps] = ~keep
        self._steps[rows] += 1
        return actions

    def _act_lockstep(self, sample_base: BaseSampler, step: int) -> np.ndarray:
        # Fast path of the sequence case: every episode is at the same step, so columns replace
        # per-row gathers.
        if step < self._keep.shape[1]:
            keep = self._keep[:, step]
            actions = self._parents[:, step].copy()
        else:
            keep = np.zeros(self.count, dtype=np.bool_)
            actions = np.zeros(self.count, dtype=np.int64)
        if not keep.all():
            mutated_rows = np.flatnonzero(~keep)
            actions[mutated_rows] = sample_base(mutated_rows)

        self._reserve_steps(step + 1)
        self._mutated[:, step] = ~keep
        self._steps += 1
        self._lockstep = step + 1
        return actions

    def _reserve_steps(self, steps: int) -> None:
        """Grow the mask record to hold at least ``steps`` steps per episode."""
        if steps > self._mutated.shape[1]:
            grown = np.zeros((self.count, 2 * steps), dtype=np.bool_)
            grown[:, : self._mutated.shape[1]] = self._mutated
            self._mutated = grown

    @property
    def masks(self) -> list[np.ndarray]:
        """Per episode, one bool per step taken so far: True where the base policy chose the action."""
        return [self._mutated[row, :steps].copy() for row, steps in enumerate(self._steps.tolist())]

    def mask_array(self, length: int) -> np.ndarray:
        """Return the mutation mask of the first ``length`` steps of every episode, shape (count, length)."""
        if length > self._mutated.shape[1]:
            raise ValueError(f"length {length} exceeds the {self._mutated.shape[1]} steps recorded.")
        return self._mutated[:, :length].copy()
