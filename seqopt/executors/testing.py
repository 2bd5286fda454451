"""Objectives for testing and benchmarking executors and fault handling.

``FaultyObjective`` misbehaves on purpose; ``WorkerProbe`` reports the environment a trial runs in.

Faults are drawn from the trial's own generator, which derives from the run's seed and the trial
id, so the same trials fail in the same way on every executor. With ``once_dir`` set, a fault
fires only the first time a sequence is evaluated (a marker file records it, across worker
processes), which makes it a transient fault that a retry overcomes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from seqopt.envs.learn_to_count import LearnToCount, learn_to_count_reward
from seqopt.objective import Evaluation

FAULTS = ("raise", "nan", "hang", "kill", "block")


class FaultyObjective(LearnToCount):
    """Learn to count with an optional delay and faults injected at the given rates.

    Args:
        n: sequence length and largest value, as in ``LearnToCount``.
        delay_seconds: seconds each evaluation sleeps before scoring (a stand-in for training).
        raise_rate: probability that an evaluation raises RuntimeError.
        nan_rate: probability that it returns a NaN reward.
        hang_rate: probability that it sleeps ``hang_seconds`` (to trip a trial timeout).
        kill_rate: probability that it kills its own process with SIGKILL. Only for executors
            with worker processes: inline, it kills the search itself.
        block_rate: probability that it blocks SIGALRM and then sleeps ``hang_seconds``, like a
            long call into C that no signal interrupts, so only killing the process stops it.
            Only for executors with worker processes.
        hang_seconds: length of a hang.
        once_dir: folder of marker files; when set, each fault fires at most once per sequence.
        kill_after: SIGKILL the process at the start of evaluation number ``kill_after + 1`` in
            that process (a crash at a known point, for resume tests); None never.
    """

    def __init__(
        self,
        n: int = 6,
        delay_seconds: float = 0.0,
        raise_rate: float = 0.0,
        nan_rate: float = 0.0,
        hang_rate: float = 0.0,
        kill_rate: float = 0.0,
        block_rate: float = 0.0,
        hang_seconds: float = 60.0,
        once_dir: str | None = None,
        kill_after: int | None = None,
    ) -> None:
        super().__init__(n)
        rates = np.array([raise_rate, nan_rate, hang_rate, kill_rate, block_rate], dtype=np.float64)
        if np.any(rates < 0) or rates.sum() > 1:
            raise ValueError(f"Fault rates must be >= 0 and sum to at most 1, got {dict(zip(FAULTS, rates.tolist()))}.")
        self.delay_seconds = float(delay_seconds)
        self.thresholds = np.cumsum(rates)
        self.hang_seconds = float(hang_seconds)
        self.once_dir = once_dir
        self.kill_after = kill_after
        self.num_evaluations = 0

    def __repr__(self) -> str:
        return f"FaultyObjective(n={self.n})"

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        self.num_evaluations += 1
        if self.kill_after is not None and self.num_evaluations > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)

        fault = self.draw_fault(rng)
        if fault is not None and self._fires(fault, indices):
            if fault == "raise":
                raise RuntimeError(f"injected failure for sequence {list(indices)}")
            if fault == "nan":
                return Evaluation(reward=float("nan"))
            if fault == "hang":
                time.sleep(self.hang_seconds)
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "block":
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                time.sleep(self.hang_seconds)

        values = np.asarray(self.space.validate(indices)) + 1
        return Evaluation(reward=float(learn_to_count_reward(values, self.n)))

    def draw_fault(self, rng: np.random.Generator | None) -> str | None:
        """Return the fault this trial's generator selects, or None."""
        if rng is None or self.thresholds[-1] == 0:
            return None
        position = int(np.searchsorted(self.thresholds, rng.random(), side="right"))
        return FAULTS[position] if position < len(self.thresholds) else None

    def _fires(self, fault: str, indices: tuple[int, ...]) -> bool:
        if self.once_dir is None:
            return True
        marker = Path(self.once_dir) / f"{fault}-{'-'.join(map(str, indices))}"
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return False
        return True


class WorkerProbe(LearnToCount):
    """Learn to count whose metrics describe the process that evaluated the trial.

    Metrics: ``pid``; ``threads``, the OMP_NUM_THREADS value; ``worker_index``, the
    SEQOPT_WORKER_INDEX value; ``heavy_modules``, which of tensorflow, stable_baselines3 and torch
    the process has imported.
    """

    HEAVY_MODULES = ("tensorflow", "stable_baselines3", "torch")

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        evaluation = super().evaluate(indices, rng)
        evaluation.metrics = {
            "pid": os.getpid(),
            "threads": os.environ.get("OMP_NUM_THREADS"),
            "worker_index": os.environ.get("SEQOPT_WORKER_INDEX"),
            "heavy_modules": [name for name in self.HEAVY_MODULES if name in sys.modules],
        }
        return evaluation
