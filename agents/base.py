"""The interface every agent implements."""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqopt.spaces import ChoiceSpace
from seqopt.trial import Proposal, TrialResult

logger = logging.getLogger(__name__)


def make_generator(seed: int | np.random.SeedSequence | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator for an agent from an int, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, float)):
        raise TypeError(f"seed must be an int, a numpy SeedSequence or a Generator, got {seed!r}.")
    return np.random.Generator(np.random.PCG64(seed))


class Agent(abc.ABC):
    """Proposes sequences and learns from their rewards.

    The search loop calls ``propose`` for as many new proposals as it has free evaluation slots
    and ``observe`` with results as they finish, in any order. Proposals may therefore be
    outstanding while others are observed, and agents must not assume one ``observe`` per
    ``propose``. ``state_dict`` returns plain data (numbers, strings, lists, dicts, numpy arrays and
    torch tensors) from which ``load_state_dict`` restores the agent exactly, so that the next
    proposals after a restore equal those of the original.
    """

    #: Number of proposals the agent prefers to generate at once (the number of models evaluated in
    #: parallel between two updates).
    batch_size: int = 1

    def __init__(
        self, space: ChoiceSpace, seed: int | np.random.SeedSequence | np.random.Generator | None = None
    ) -> None:
        if not isinstance(space, ChoiceSpace):
            raise TypeError(f"space must be a seqopt ChoiceSpace, got {type(space).__name__}.")
        self.space = space
        self.rng = make_generator(seed)
        self.num_proposed = 0
        self.num_observed = 0
        self.num_failed = 0

    @abc.abstractmethod
    def propose(self, count: int = 1) -> list[Proposal]:
        """Return ``count`` new proposals."""

    def observe(self, results: Sequence[TrialResult]) -> None:
        """Learn from finished trials. Failed trials are counted and otherwise ignored."""
        usable = []
        for result in results:
            self.num_observed += 1
            if result.usable:
                usable.append(result)
            else:
                self.num_failed += 1
                logger.debug("Agent ignores trial %d (%s): %s", result.trial_id,
                             result.evaluation.status.value, result.evaluation.error)
        if usable:
            self._observe_usable(usable)

    def _observe_usable(self, results: list[TrialResult]) -> None:
        """Learn from trials whose reward is usable; the default ignores them."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "num_proposed": self.num_proposed,
            "num_observed": self.num_observed,
            "num_failed": self.num_failed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.num_proposed = int(state["num_proposed"])
        self.num_observed = int(state["num_observed"])
        self.num_failed = int(state["num_failed"])

    @staticmethod
    def _check_count(count: int) -> int:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}.")
        return int(count)


def rows_to_proposals(rows: np.ndarray, origin: str) -> list[Proposal]:
    """Wrap each row of an index array as a Proposal without a parent."""
    return [Proposal(indices=tuple(row), origin=origin) for row in rows.tolist()]
