"""Evaluate trials one after another in the search's own process."""

from __future__ import annotations

from collections import deque

import numpy as np

from seqopt.executors.base import Completed, Executor, check_positive_int, evaluate_safely


class InlineExecutor(Executor):
    """Evaluates queued trials in submission order when ``wait`` is called.

    A per-trial timeout interrupts the evaluation with SIGALRM when the search runs in the main
    thread (see ``evaluate_safely``).

    Args:
        capacity: trials kept in flight; with more than one, ``wait`` evaluates the whole queue,
            so an agent that proposes batches (Evo-NAS trains on batches of B models evaluated in
            parallel) observes the same history as on B workers that finish in order.
    """

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = check_positive_int("capacity", capacity)
        self._queue: deque[tuple[int, tuple[int, ...], np.random.SeedSequence]] = deque()

    def submit(self, trial_id: int, indices: tuple[int, ...], seed: np.random.SeedSequence) -> None:
        self._queue.append((trial_id, indices, seed))

    def wait(self, timeout: float | None = None) -> list[Completed]:
        finished = []
        while self._queue:
            trial_id, indices, seed = self._queue.popleft()
            completed = evaluate_safely(self.objective, indices, seed, self.trial_timeout)
            completed.trial_id = trial_id
            finished.append(completed)
        return finished

    @property
    def num_pending(self) -> int:
        return len(self._queue)
