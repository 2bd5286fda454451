"""The executor interface: where and how trials are evaluated."""

from __future__ import annotations

import abc
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

import numpy as np

from seqopt.objective import Evaluation, Objective

#: Environment variables that cap the threads of numerical libraries: OpenMP (torch, many BLAS
#: builds), MKL, OpenBLAS, numexpr, Apple Accelerate and TensorFlow's two pools.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


@dataclass(slots=True)
class Completed:
    """A finished evaluation as an executor reports it."""

    trial_id: int
    evaluation: Evaluation
    timing: dict[str, float] = field(default_factory=dict)


class TrialTimeout(Exception):
    """Raised inside an inline evaluation that ran past the per-trial time limit."""


def timeout_message(seconds: float) -> str:
    return f"trial timed out after {seconds:g} s (trial_timeout={seconds:g}); raise trial_timeout if it needs longer"


def check_trial_timeout(trial_timeout: float | None) -> float | None:
    if trial_timeout is None:
        return None
    if isinstance(trial_timeout, bool) or not isinstance(trial_timeout, (int, float)) or not trial_timeout > 0:
        raise ValueError(f"trial_timeout must be a positive number of seconds or None, got {trial_timeout!r}.")
    return float(trial_timeout)


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    return int(value)


@contextmanager
def _alarm(seconds: float | None) -> Iterator[bool]:
    """Raise TrialTimeout in the main thread after ``seconds``; yield whether the alarm is armed.

    SIGALRM interrupts Python code only between bytecodes, so a long call into C (one big matrix
    product) finishes before the exception is raised.
    """
    usable = (seconds is not None and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield False
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TrialTimeout(timeout_message(seconds or 0.0))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds or 0.0)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def evaluate_safely(
    objective: Objective,
    indices: tuple[int, ...],
    seed: np.random.SeedSequence,
    trial_timeout: float | None = None,
) -> Completed:
    """Evaluate one sequence, turning any exception into a failed Evaluation with its traceback.

    With ``trial_timeout``, an evaluation in the main thread is interrupted by SIGALRM; elsewhere
    it runs to the end and is recorded as failed when it took longer than the limit.
    ``trial_id`` is filled in by the caller.
    """
    started = time.time()
    try:
        with _alarm(trial_timeout) as armed:
            evaluation = objective.evaluate(indices, np.random.Generator(np.random.PCG64(seed)))
        if not isinstance(evaluation, Evaluation):
            raise TypeError(
                f"{type(objective).__name__}.evaluate must return a seqopt Evaluation, got {type(evaluation).__name__}."
            )
        if trial_timeout is not None and not armed and time.time() - started > trial_timeout:
            evaluation = Evaluation.failed(timeout_message(trial_timeout), cost_seconds=evaluation.cost_seconds)
    except TrialTimeout as error:
        evaluation = Evaluation.failed(str(error))
    except Exception as error:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        tail = "".join(traceback.format_tb(error.__traceback__)[-3:])
        evaluation = Evaluation.failed(f"{text}\n{tail}".strip())
    finished = time.time()
    return Completed(-1, evaluation, {"started": started, "finished": finished})


def apply_thread_limit(threads: int | None) -> None:
    """Cap the threads of numerical libraries in this process to ``threads`` (None: leave them).

    The environment variables reach libraries loaded later; torch and TensorFlow, when an
    objective already imported them, are also set through their own calls. Neither is imported
    here, so a worker whose objective does not need them never pays their start-up cost.
    """
    if threads is None:
        return
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        try:
            tensorflow.config.threading.set_intra_op_parallelism_threads(threads)
            tensorflow.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TensorFlow fixes its pools once it has run an op; the variables above still apply


class Executor(abc.ABC):
    """Runs evaluations, possibly many at once, and reports them as they finish.

    ``capacity`` is how many trials the search keeps in flight (W). ``wait`` blocks until at
    least one submitted trial has finished (or ``timeout`` seconds passed) and returns every
    finished one. With nothing pending it returns an empty list at once. An exception, a
    non-finite reward, a timeout or a dead worker is reported as a failed Evaluation, never
    raised.
    """

    capacity: int = 1
    trial_timeout: float | None = None

    def start(self, objective: Objective, trial_timeout: float | None = None) -> None:
        """Prepare to evaluate ``objective``; called once before the first ``submit``.

        ``trial_timeout`` is the per-trial limit in seconds; a trial that runs longer is stopped
        where the executor can stop it and recorded as failed.
        """
        self.objective = objective
        self.trial_timeout = check_trial_timeout(trial_timeout)

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
