"""Random search: every sequence drawn uniformly from the space."""

from __future__ import annotations

from seqopt.agents.base import Agent, rows_to_proposals
from seqopt.trial import Proposal


class RandomSearch(Agent):
    """Draws each proposal uniformly at random; learns nothing from rewards."""

    def propose(self, count: int = 1) -> list[Proposal]:
        count = self._check_count(count)
        rows = self.space.sample(self.rng, count)
        self.num_proposed += count
        return rows_to_proposals(rows, origin="random")
