"""The objective protocol: what a search problem must provide, and what one evaluation returns."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from seqopt.spaces import ChoiceSpace


class Status(enum.StrEnum):
    """Outcome of one evaluation.

    ``ok``: the reward is meaningful. ``invalid``: the sequence is not a valid model (for example a
    NAS-Bench-101 cell with too many edges); its reward is the objective's penalty and agents may
    learn from it. ``failed``: the evaluation itself broke (an exception, a NaN, a timeout); the
    reward is NaN and agents never learn from it.
    """

    OK = "ok"
    INVALID = "invalid"
    FAILED = "failed"


@dataclass
class Evaluation:
    """Result of evaluating one sequence.

    Attributes:
        reward: higher is better. NaN for a failed evaluation.
        metrics: extra figures to record, such as test accuracy or regret; values must be JSON
            serializable.
        cost_seconds: seconds the evaluation cost, measured or simulated (a tabular benchmark
            reports the training time of the model it looked up).
        status: see ``Status``.
        error: the error text of a failed evaluation.
    """

    reward: float
    metrics: dict[str, Any] = field(default_factory=dict)
    cost_seconds: float = 0.0
    status: Status = Status.OK
    error: str | None = None

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        self.reward = float(self.reward)
        if self.status is Status.OK and not math.isfinite(self.reward):
            # A NaN or infinite reward would poison losses and populations, so it is recorded as
            # a failure with the value in the error text.
            self.error = f"objective returned a non-finite reward {self.reward!r}"
            self.status = Status.FAILED
            self.reward = math.nan

    @classmethod
    def failed(cls, error: str, cost_seconds: float = 0.0, metrics: Mapping[str, Any] | None = None) -> Evaluation:
        return cls(reward=math.nan, metrics=dict(metrics or {}), cost_seconds=cost_seconds,
                   status=Status.FAILED, error=error)

    @property
    def usable(self) -> bool:
        """True when agents may learn from this evaluation (ok or invalid with a finite reward)."""
        return self.status is not Status.FAILED and math.isfinite(self.reward)


@runtime_checkable
class Objective(Protocol):
    """A search problem: a choice space and a way to score one index sequence.

    Objectives must be picklable so that process and Ray executors can ship them to workers.
    ``rng`` is a generator seeded for this one trial. Deterministic objectives ignore it. Stochastic
    ones (a benchmark that draws one of several training seeds) must use it and no global random
    state, so that the same seed gives the same history.
    """

    space: ChoiceSpace

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator) -> Evaluation: ...


class FunctionObjective:
    """Wrap a plain function of the decoded values as an Objective.

    ``fn`` receives ``{choice name: value}`` and returns either a float reward or an Evaluation.
    It must be a module-level function (or another picklable callable) to run in worker processes.
    """

    def __init__(self, space: ChoiceSpace, fn: Callable[[dict[str, Any]], float | Evaluation]) -> None:
        self.space = space
        self.fn = fn

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator) -> Evaluation:
        result = self.fn(self.space.decode_dict(indices))
        if isinstance(result, Evaluation):
            return result
        return Evaluation(reward=float(result))


def describe_sequence(space: ChoiceSpace, indices: tuple[int, ...]) -> str:
    """Format a sequence as ``name=value`` pairs for logs and summaries."""
    return ", ".join(f"{name}={value!r}" for name, value in zip(space.names, space.decode(indices)))
