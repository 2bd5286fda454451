"""Evaluate trials as Ray tasks, on a local Ray instance or on a cluster.

Each trial is one Ray task that reserves the resources given here (CPUs, GPUs, custom resources
such as TPU), so Ray places trials on whichever machines have them free. Ray's own task retries
are turned off: the search decides about retries, and a crashed worker or a cancelled task comes
back as a failed trial.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

import numpy as np

from seqopt.executors.base import (
    Completed,
    Executor,
    apply_thread_limit,
    check_positive_int,
    evaluate_safely,
    timeout_message,
)
from seqopt.hardware import HardwareConfig
from seqopt.objective import Evaluation, Objective

logger = logging.getLogger(__name__)

# Per Ray worker process: the objective of the running search, unpickled once instead of once per
# task (a tabular benchmark can be hundreds of MB). Keyed by the object id of its ray.put copy.
_OBJECTIVE_CACHE: dict[str, Any] = {}


def _evaluate_task(objective_box: list[Any], trial_id: int, indices: tuple[int, ...],
                   seed: np.random.SeedSequence, threads: int | None, trial_timeout: float | None) -> Completed:
    """Body of one Ray task. The objective's ObjectRef arrives inside a list so that Ray passes the
    reference itself rather than a fresh copy of the object."""
    import ray

    reference = objective_box[0]
    key = reference.hex()
    objective = _OBJECTIVE_CACHE.get(key)
    if objective is None:
        objective = ray.get(reference)
        _OBJECTIVE_CACHE.clear()
        _OBJECTIVE_CACHE[key] = objective
    apply_thread_limit(threads)
    # Ray runs tasks in the worker's main thread, so SIGALRM enforces the time limit right here.
    completed = evaluate_safely(objective, indices, seed, trial_timeout)
    completed.trial_id = trial_id
    return completed


class RayExecutor(Executor):
    """Keeps up to ``max_in_flight`` trials running as Ray tasks.

    Args:
        max_in_flight: W, the number of trials kept in flight. Ray runs as many at once as the
            cluster's resources allow and queues the rest.
        address: address of a running Ray cluster ("auto", "ray://host:10001"); None starts a
            local Ray instance (unless one is already running in this process).
        num_cpus_per_trial: CPUs Ray reserves for each trial; fractions are allowed. None takes
            ``hardware.threads``, or 1 when that is null.
        num_gpus_per_trial: GPUs Ray reserves for each trial; fractions are allowed. None takes 1
            with the gpu hardware backend and 0 otherwise.
        resources_per_trial: custom Ray resources per trial, such as ``{"TPU": 1}``. The tpu
            hardware backend reserves nothing by itself, so a TPU search names it here.
        threads_per_trial: cap on each trial's numerical-library threads; None leaves Ray's
            default, which sets OMP_NUM_THREADS to the task's CPU count.
        init_kwargs: extra ``ray.init`` arguments, such as ``{"num_cpus": 8}`` for a local instance.
        hardware: the ``conf/hardware`` config that the None defaults above are read from.
        timeout_grace_seconds: extra seconds, past the trial timeout, before a task is cancelled.

    The per-trial timeout is enforced inside the task (SIGALRM), so a worker's start-up and
    Ray's queue do not count. As a backstop for code that SIGALRM cannot interrupt (a long call
    into C), a task still running ``timeout_grace_seconds`` after its limit, counted from
    submission, is cancelled with ``force=True``, which kills its worker process.
    """

    def __init__(
        self,
        max_in_flight: int = 2,
        address: str | None = None,
        num_cpus_per_trial: float | None = None,
        num_gpus_per_trial: float | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        threads_per_trial: int | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        hardware: Mapping[str, Any] | None = None,
        timeout_grace_seconds: float = 60.0,
    ) -> None:
        self.capacity = check_positive_int("max_in_flight", max_in_flight)
        config = HardwareConfig.from_config(dict(hardware) if hardware is not None else None)
        if num_cpus_per_trial is None:
            num_cpus_per_trial = config.threads or 1
        if num_gpus_per_trial is None:
            num_gpus_per_trial = 1 if config.name == "gpu" else 0
        for name, value in (("num_cpus_per_trial", num_cpus_per_trial), ("num_gpus_per_trial", num_gpus_per_trial)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        self.address = address
        self.num_cpus_per_trial = float(num_cpus_per_trial)
        self.num_gpus_per_trial = float(num_gpus_per_trial)
        self.resources_per_trial = dict(resources_per_trial or {})
        self.threads_per_trial = None if threads_per_trial is None else check_positive_int(
            "threads_per_trial", threads_per_trial)
        self.init_kwargs = dict(init_kwargs or {})
        if isinstance(timeout_grace_seconds, bool) or not isinstance(timeout_grace_seconds, (int, float)) \
                or timeout_grace_seconds < 0:
            raise ValueError(f"timeout_grace_seconds must be a number >= 0, got {timeout_grace_seconds!r}.")
        self.timeout_grace_seconds = float(timeout_grace_seconds)
        self._owns_ray = False
        self._remote: Any = None
        self._objective_ref: Any = None
        self._running: dict[Any, tuple[int, float, float]] = {}  # ObjectRef -> (trial id, submit time, wall time)
        self._finished: list[Completed] = []

    def start(self, objective: Objective, trial_timeout: float | None = None) -> None:
        """Connect to Ray (or start a local instance) and put the objective into its object store."""
        super().start(objective, trial_timeout)
        import ray

        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": True, **self.init_kwargs}
            ray.init(address=self.address, **options)
            self._owns_ray = True
            logger.info("Started Ray (address %s): %s", self.address or "local", ray.cluster_resources())
        elif self.address is not None:
            logger.warning("Ray is already initialized in this process; executor.address=%r is ignored.",
                           self.address)
        self._remote = ray.remote(_evaluate_task).options(
            num_cpus=self.num_cpus_per_trial,
            num_gpus=self.num_gpus_per_trial,
            resources=self.resources_per_trial or None,
            max_retries=0,
            retry_exceptions=False,
        )
        self._objective_ref = ray.put(objective)

    def submit(self, trial_id: int, indices: tuple[int, ...], seed: np.random.SeedSequence) -> None:
        if self._remote is None:
            raise RuntimeError("RayExecutor.submit was called before start().")
        reference = self._remote.remote([self._objective_ref], trial_id, indices, seed, self.threads_per_trial,
                                        self.trial_timeout)
        self._running[reference] = (trial_id, time.monotonic(), time.time())

    def wait(self, timeout: float | None = None) -> list[Completed]:
        import ray

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished and self._running:
            limits = [] if deadline is None else [deadline - time.monotonic()]
            if self.trial_timeout is not None:
                oldest = min(submitted for _, submitted, _ in self._running.values())
                limits.append(oldest + self.trial_timeout + self.timeout_grace_seconds - time.monotonic())
            wait_for = max(min(limits), 0.0) if limits else None
            references = list(self._running)
            ready, _ = ray.wait(references, num_returns=1, timeout=wait_for)
            if ready:
                ready, _ = ray.wait(references, num_returns=len(references), timeout=0)
            for reference in ready:
                self._collect(reference)
            self._cancel_overdue()
            if deadline is not None and time.monotonic() >= deadline:
                break
        finished, self._finished = self._finished, []
        return finished

    @property
    def num_pending(self) -> int:
        return len(self._running) + len(self._finished)

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            for reference in self._running:
                ray.cancel(reference, force=True)
        self._running.clear()
        self._objective_ref = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def _collect(self, reference: Any) -> None:
        import ray

        trial_id, _, submitted_wall = self._running.pop(reference)
        try:
            completed = ray.get(reference)
        except ray.exceptions.RayError as error:
            # A crashed worker, a lost node or a cancelled task. The task body cannot raise, because
            # evaluate_safely turns every exception of the objective into a failed Evaluation.
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            completed = Completed(trial_id, Evaluation.failed(f"Ray task failed: {text}"),
                                  {"started": submitted_wall, "finished": time.time()})
            logger.warning("Trial %d: Ray task failed: %s", trial_id, text.splitlines()[0] if text else "")
        self._finished.append(completed)

    def _cancel_overdue(self) -> None:
        import ray

        if self.trial_timeout is None:
            return
        now = time.monotonic()
        limit = self.trial_timeout + self.timeout_grace_seconds
        overdue = [ref for ref, (_, submitted, _) in self._running.items() if now - submitted >= limit]
        for reference in overdue:
            trial_id, _, submitted_wall = self._running.pop(reference)
            ray.cancel(reference, force=True)
            evaluation = Evaluation.failed(
                f"{timeout_message(self.trial_timeout)}; the trial did not stop at the limit, so its Ray task was "
                f"cancelled {self.timeout_grace_seconds:g} s later")
            self._finished.append(Completed(trial_id, evaluation, {"started": submitted_wall, "finished": time.time()}))
            logger.warning("Trial %d still ran %g s after submission; its Ray task was cancelled.", trial_id, limit)
