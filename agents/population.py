"""The aging population and tournament selection shared by aging evolution and Evo-NAS.

Aging (regularized) evolution follows Real et al. 2019, "Regularized Evolution for Image
Classifier Architecture Search" (arXiv:1802.01548): the population contains the P most recently
observed models, a parent is the best of S members sampled without replacement, and each new
model replaces the oldest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from seqopt.trial import Proposal, TrialResult

if TYPE_CHECKING:
    from seqopt.agents.novelty import SeenSequences


class Population:
    """Ring buffer of the ``capacity`` (P) most recently observed sequences and their rewards."""

    def __init__(self, capacity: int, length: int) -> None:
        self.capacity = capacity
        self.indices = np.zeros((capacity, length), dtype=np.int64)
        self.rewards = np.full(capacity, -np.inf, dtype=np.float64)
        self.trial_ids = np.full(capacity, -1, dtype=np.int64)
        self.num_added = 0

    def __len__(self) -> int:
        return min(self.num_added, self.capacity)

    def add(self, indices: np.ndarray, rewards: np.ndarray, trial_ids: np.ndarray) -> None:
        """Insert rows in order; each one overwrites the oldest member once the population is full."""
        count = len(rewards)
        if count == 0:
            return
        if count > self.capacity:  # only the last P of a large batch survive
            indices, rewards, trial_ids = indices[-self.capacity:], rewards[-self.capacity:], trial_ids[-self.capacity:]
            self.num_added += count - self.capacity
            count = self.capacity
        slots = (self.num_added + np.arange(count)) % self.capacity
        self.indices[slots] = indices
        self.rewards[slots] = rewards
        self.trial_ids[slots] = trial_ids
        self.num_added += count

    def oldest_slot(self) -> int:
        """Slot of the member that the next ``add`` overwrites."""
        return self.num_added % self.capacity if self.num_added >= self.capacity else self.num_added

    def tournament(self, rng: np.random.Generator, count: int, sample_size: int) -> np.ndarray:
        """Return the slots of ``count`` parents, each the best of ``sample_size`` distinct members.

        When fewer than ``sample_size`` members exist, the tournament uses all of them.
        """
        size = len(self)
        if size == 0:
            raise RuntimeError("Cannot select a parent from an empty population.")
        sample_size = min(sample_size, size)
        if sample_size == size:
            contestants = np.broadcast_to(np.arange(size), (count, size))
        else:
            # Sampling without replacement for all tournaments at once: the S smallest of
            # independent uniform keys are a uniform S-subset.
            keys = rng.random((count, size))
            contestants = np.argpartition(keys, sample_size - 1, axis=1)[:, :sample_size]
        best = np.argmax(self.rewards[contestants], axis=1)
        return contestants[np.arange(count), best]

    def add_results(self, results: Sequence[TrialResult]) -> None:
        """Insert finished trials with usable rewards, in order (see ``add``)."""
        self.add(
            np.array([r.proposal.indices for r in results], dtype=np.int64),
            np.array([r.evaluation.reward for r in results], dtype=np.float64),
            np.array([r.trial_id for r in results], dtype=np.int64),
        )

    def children(self, slots: np.ndarray, children: np.ndarray, mask: np.ndarray) -> list[Proposal]:
        """Wrap each child row as a mutation Proposal whose parent is the member in ``slots``."""
        parent_ids = self.trial_ids[slots].tolist()
        return [
            Proposal(indices=tuple(child), parent=parent_id, mask=tuple(m), origin="mutation")
            for child, m, parent_id in zip(children.tolist(), mask.tolist(), parent_ids)
        ]

    def best(self) -> int:
        """Slot of the member with the highest reward."""
        return int(np.argmax(self.rewards[: len(self)]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "indices": self.indices.copy(),
            "rewards": self.rewards.copy(),
            "trial_ids": self.trial_ids.copy(),
            "num_added": self.num_added,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity or np.shape(state["indices"]) != self.indices.shape:
            raise ValueError(
                f"Population state has capacity {state['capacity']} and shape {np.shape(state['indices'])}, "
                f"but this agent has capacity {self.capacity} and shape {self.indices.shape}."
            )
        self.indices[...] = np.asarray(state["indices"])
        self.rewards[...] = np.asarray(state["rewards"])
        self.trial_ids[...] = np.asarray(state["trial_ids"])
        self.num_added = int(state["num_added"])


def mutate_uniform(
    parents: np.ndarray,
    cardinalities: np.ndarray,
    rng: np.random.Generator,
    probability: float,
    must_change: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample each position of each parent with probability p, uniformly over its choice's values.

    With ``must_change=False`` (the Evo-NAS paper's rule) a resampled value may equal the parent's,
    so a position keeps its value with probability (1 - p) + p / k for a choice of k values. With
    ``must_change=True`` a resampled value is drawn from the other k - 1 values (the NAS-Bench-101
    colab's rule); a choice with a single value cannot change.

    Returns the children and the boolean mask of resampled positions, both shaped like ``parents``.
    """
    shape = parents.shape
    mask = rng.random(shape) < probability
    uniform = rng.random(shape)
    if must_change:
        others = np.maximum(cardinalities - 1, 1)
        draw = (uniform * others).astype(np.int64)
        draw += draw >= parents  # skip over the parent's value
        draw = np.where(cardinalities > 1, draw, parents)
    else:
        draw = (uniform * cardinalities).astype(np.int64)
    children = np.where(mask, draw, parents)
    return children, mask


def propose_evolution(
    count: int,
    num_proposed: int,
    population: Population,
    seen: SeenSequences,
    draw_initial: Callable[[int], list[Proposal]],
    draw_children: Callable[[int], list[Proposal]],
) -> list[Proposal]:
    """Return ``count`` proposals of an evolutionary agent: initial ones, then children.

    Until the agent has proposed P (the population's capacity) sequences, or while its population
    is still empty, proposals come from ``draw_initial``; the rest mutate parents through
    ``draw_children``. Both pass through ``seen``, which redraws repeats when the agent asks for it.
    """
    num_initial = min(count, max(population.capacity - num_proposed, 0))
    if len(population) == 0:
        num_initial = count
    proposals = seen.draw(draw_initial, num_initial) if num_initial else []
    num_children = count - num_initial
    if num_children:
        proposals.extend(seen.draw(draw_children, num_children))
    return proposals
