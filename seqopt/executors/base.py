"""The executor interface: where and how trials are evaluated."""

from __future__ import annotations

import abc
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from seqopt.objective import Evaluation, Objective


@dataclass(slots=True)
class Completed:
    """A finished evaluation as an executor reports it."""

    trial_id: int
    evaluation: Evaluation
    timing: dict[str, float] = field(default_factory=dict)


def evaluate_safely(objective: Objective, indices: tuple[int, ...], seed: np.random.SeedSequence) -> Completed:
    """Evaluate one sequence, turning any exception into a failed Evaluation with its traceback.

    ``trial_id`` is filled in by the caller.
    """
    started = time.time()
    try:
        evaluation = objective.evaluate(indices, np.random.Generator(np.random.PCG64(seed)))
        if not isinstance(evaluation, Evaluation):
            raise TypeError(
                f"{type(objective).__name__}.evaluate must return a seqopt Evaluation, got {type(evaluation).__name__}."
            )
    except Exception as error:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        tail = "".join(traceback.format_tb(error.__traceback__)[-3:])
        evaluation = Evaluation.failed(f"{text}\n{tail}".strip())
    finished = time.time()
    return Completed(-1, evaluation, {"started": started, "finished": finished})


class Executor(abc.ABC):
    """Runs evaluations, possibly many at once, and reports them as they finish.

    ``capacity`` is how many trials the search keeps in flight. ``wait`` blocks until at least one
    submitted trial has finished (or ``timeout`` seconds passed) and returns every finished one.
    """

    capacity: int = 1

    def start(self, objective: Objective) -> None:
        """Prepare to evaluate ``objective``; called once before the first ``submit``."""
        self.objective = objective

    @abc.abstractmethod
    def submit(self, trial_id: int, indices: tuple[int, ...], seed: np.random.SeedSequence) -> None:
        """Queue one evaluation."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> list[Completed]:
        """Return finished evaluations, blocking until at least one is available or ``timeout`` passes."""

    @property
    @abc.abstractmethod
    def num_pending(self) -> int:
        """Number of submitted evaluations not yet returned by ``wait``."""

    def shutdown(self) -> None:
        """Release workers; pending evaluations are abandoned."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
