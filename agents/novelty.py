"""Redrawing proposals that repeat a sequence the agent proposed before.

On a deterministic objective a repeated sequence spends a trial and teaches nothing. Repeats are
common once a learned policy sharpens: on learn-to-count at n = 10, Evo-NAS (PQT) with a queue of
the 50 best repeated an earlier sequence in 74 % of its trials from 1,000 to 2,000 and in 77 % after
3,500 (benchmarks/tune_learn_to_count.py, 4 replicas; docs/learn_to_count.md). Agents with
``max_redraws > 0`` draw such a proposal again, the whole draw (parent selection included), up to
that many times. A proposal still repeated after the last redraw is kept, so a small or exhausted
space never stalls the agent; once every sequence of the space has been proposed, repeats are kept
without any redraw.

With ``max_redraws = 0`` (the default) nothing changes: the agents follow their papers'
algorithms exactly, repeats included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from seqopt.trial import Proposal


def check_max_redraws(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"max_redraws must be an int >= 0 (0 keeps repeated proposals), got {value!r}.")
    return int(value)


class SeenSequences:
    """The sequences an agent has proposed, and the redraw loop that avoids them.

    Args:
        length: the sequence length n.
        max_redraws: how many times a repeated proposal is drawn again; 0 turns the filter off
            and keeps no memory.
        space_size: the number of distinct sequences, or None when unknown. When all have been
            proposed, no redraw is attempted.
    """

    def __init__(self, length: int, max_redraws: int, space_size: int | None = None) -> None:
        self.length = length
        self.max_redraws = check_max_redraws(max_redraws)
        self.space_size = space_size
        self._seen: set[tuple[int, ...]] = set()
        self.num_redraws = 0
        self.num_repeats_kept = 0

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, indices: tuple[int, ...]) -> bool:
        return indices in self._seen

    def draw(self, draw: Callable[[int], list[Proposal]], count: int) -> list[Proposal]:
        """Return ``count`` proposals from ``draw``, redrawing those that repeat a seen sequence.

        A proposal also counts as a repeat when an earlier proposal of the same call has its
        sequence. ``draw(k)`` must return k proposals.
        """
        proposals = draw(count)
        if not self.max_redraws:
            return proposals
        for _ in range(self.max_redraws):
            repeated = self._repeated(proposals)
            if not repeated:
                break
            distinct = len(self._seen) + len(proposals) - len(repeated)
            if self.space_size is not None and distinct >= self.space_size:
                self.num_repeats_kept += len(repeated)  # nothing new is left to draw
                break
            self.num_redraws += len(repeated)
            for row, proposal in zip(repeated, draw(len(repeated))):
                proposals[row] = proposal
        else:
            self.num_repeats_kept += len(self._repeated(proposals))
        self._seen.update(proposal.indices for proposal in proposals)
        return proposals

    def _repeated(self, proposals: list[Proposal]) -> list[int]:
        batch: set[tuple[int, ...]] = set()
        repeated = []
        for row, proposal in enumerate(proposals):
            if proposal.indices in self._seen or proposal.indices in batch:
                repeated.append(row)
            else:
                batch.add(proposal.indices)
        return repeated

    def metrics(self) -> dict[str, float]:
        if not self.max_redraws:
            return {}
        return {"agent/redraws": float(self.num_redraws), "agent/repeats_kept": float(self.num_repeats_kept)}

    def state_dict(self) -> dict[str, Any]:
        rows = sorted(self._seen)
        return {
            "sequences": np.array(rows, dtype=np.int64).reshape(-1, self.length),
            "num_redraws": self.num_redraws,
            "num_repeats_kept": self.num_repeats_kept,
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:  # a checkpoint written before the filter existed
            return
        self._seen = {tuple(row) for row in np.asarray(state["sequences"], dtype=np.int64).tolist()}
        self.num_redraws = int(state["num_redraws"])
        self.num_repeats_kept = int(state["num_repeats_kept"])
