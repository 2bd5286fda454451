"""Records that flow between agents, executors, the search loop and the trial store."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from seqopt.objective import Evaluation, Status


@dataclass(slots=True)
class Proposal:
    """A sequence an agent proposes for evaluation, with the agent's bookkeeping for it.

    Attributes:
        indices: one index per choice.
        parent: trial id of the parent the sequence was mutated from, or None.
        mask: per position, True where the value was resampled rather than copied from the parent.
        origin: short tag of how the agent made it ("random", "mutation", "policy", ...).
    """

    indices: tuple[int, ...]
    parent: int | None = None
    mask: tuple[bool, ...] | None = None
    origin: str = ""


@dataclass(slots=True)
class TrialResult:
    """One finished trial: the proposal, its id and its evaluation."""

    trial_id: int
    proposal: Proposal
    evaluation: Evaluation
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def indices(self) -> tuple[int, ...]:
        return self.proposal.indices

    @property
    def reward(self) -> float:
        return self.evaluation.reward

    @property
    def usable(self) -> bool:
        return self.evaluation.usable

    def to_record(self, values: tuple[Any, ...] | None = None) -> dict[str, Any]:
        """Return the JSON-ready dict stored as one line of the trial store."""
        ev = self.evaluation
        record: dict[str, Any] = {
            "trial": self.trial_id,
            "indices": list(self.proposal.indices),
            "reward": ev.reward if math.isfinite(ev.reward) else None,
            "status": ev.status.value,
            "cost_seconds": ev.cost_seconds,
            "metrics": ev.metrics,
            "error": ev.error,
            "parent": self.proposal.parent,
            "origin": self.proposal.origin,
        }
        if values is not None:
            record["values"] = list(values)
        if self.proposal.mask is not None:
            record["mask"] = [int(m) for m in self.proposal.mask]
        if self.timing:
            record["timing"] = self.timing
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrialResult:
        mask = record.get("mask")
        proposal = Proposal(
            indices=tuple(int(i) for i in record["indices"]),
            parent=record.get("parent"),
            mask=tuple(bool(m) for m in mask) if mask is not None else None,
            origin=record.get("origin", ""),
        )
        reward = record.get("reward")
        evaluation = Evaluation(
            reward=math.nan if reward is None else float(reward),
            metrics=dict(record.get("metrics") or {}),
            cost_seconds=float(record.get("cost_seconds", 0.0)),
            status=Status(record.get("status", "ok")),
            error=record.get("error"),
        )
        return cls(trial_id=int(record["trial"]), proposal=proposal, evaluation=evaluation,
                   timing=dict(record.get("timing") or {}))
