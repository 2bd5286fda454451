"""Evaluate trials in local worker processes started with multiprocessing's spawn method.

Each worker owns one pipe to the search process and evaluates one trial at a time, so the search
always has a record of which trial a worker is running. That makes the hard failures precise: a
worker that dies (a segfault, the out-of-memory killer, ``kill -9``) fails exactly its own trial,
and a trial that does not stop at its time limit is stopped by killing its worker. In both cases
a fresh worker replaces the old one while the others keep running.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import connection, get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from seqopt.executors.base import (
    THREAD_ENV_VARS,
    Completed,
    Executor,
    apply_thread_limit,
    check_positive_int,
    evaluate_safely,
    timeout_message,
)
from seqopt.hardware import worker_environment
from seqopt.objective import Evaluation, Objective

logger = logging.getLogger(__name__)

# Guards os.environ while a worker starts: spawn copies the parent's environment, which is the
# only way to set thread variables before the child imports numpy.
_ENVIRON_LOCK = threading.Lock()

_Task = tuple[int, tuple[int, ...], np.random.SeedSequence]


def _worker_main(conn: Connection, payload: bytes, threads: int | None) -> None:
    """Run a worker process: load the objective, then evaluate tasks until a stop request (None) arrives."""
    apply_thread_limit(threads)
    try:
        objective = pickle.loads(payload)
    except Exception as error:
        conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=4)}"))
        return
    apply_thread_limit(threads)  # the objective's imports may have loaded torch or TensorFlow
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return  # the search process is gone
        if task is None:
            return
        trial_id, indices, seed, trial_timeout = task
        completed = evaluate_safely(objective, indices, seed, trial_timeout)
        completed.trial_id = trial_id
        try:
            conn.send(completed)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            failed = Evaluation.failed(f"the evaluation result cannot be sent to the search process: {error}")
            conn.send(Completed(trial_id, failed, completed.timing))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    task: _Task | None = None
    dispatched: float = 0.0


class ProcessExecutor(Executor):
    """Runs up to ``workers`` trials at once, one per local worker process.

    Args:
        workers: W, the number of worker processes and of trials kept in flight.
        threads_per_worker: cap on the CPU threads of each worker's numerical libraries, set
            through OMP_NUM_THREADS and friends before the worker starts and through torch and
            TensorFlow's own calls when the objective loads them; None leaves the defaults.
        start_timeout: seconds a new worker may take to import the objective before the search
            stops with an error.
        timeout_grace_seconds: extra seconds, past the trial timeout, before a worker whose trial
            ignored the timeout is killed.
        hardware: the ``conf/hardware`` config. Each worker gets the environment that
            ``seqopt.hardware.worker_environment`` returns for its slot: its worker index, and one
            GPU each when the gpu backend lists its devices.

    A worker enforces the per-trial timeout itself with SIGALRM, which stops Python code at once
    and keeps the worker. A trial stuck where no signal reaches it (a long call into C) is
    stopped by killing its worker ``timeout_grace_seconds`` later.

    The objective is pickled once and sent to each worker; it must be importable by reference
    (a module-level class or function), which the spawn method requires. A worker imports only
    what unpickling the objective and the search's main module import.
    """

    def __init__(self, workers: int = 2, threads_per_worker: int | None = 1, start_timeout: float = 300.0,
                 timeout_grace_seconds: float = 5.0, hardware: Mapping[str, Any] | None = None) -> None:
        self.capacity = check_positive_int("workers", workers)
        self.threads_per_worker = None if threads_per_worker is None else check_positive_int(
            "threads_per_worker", threads_per_worker)
        if isinstance(start_timeout, bool) or not isinstance(start_timeout, (int, float)) or start_timeout <= 0:
            raise ValueError(f"start_timeout must be a positive number of seconds, got {start_timeout!r}.")
        self.start_timeout = float(start_timeout)
        if isinstance(timeout_grace_seconds, bool) or not isinstance(timeout_grace_seconds, (int, float)) \
                or timeout_grace_seconds < 0:
            raise ValueError(f"timeout_grace_seconds must be a number >= 0, got {timeout_grace_seconds!r}.")
        self.timeout_grace_seconds = float(timeout_grace_seconds)
        self.hardware = dict(hardware) if hardware is not None else None
        self._context = get_context("spawn")
        self._workers: list[_Worker] = []
        self._queue: deque[_Task] = deque()
        self._finished: list[Completed] = []
        self._payload = b""
        self.num_workers_started = 0

    @property
    def workers(self) -> int:
        return self.capacity

    def start(self, objective: Objective, trial_timeout: float | None = None) -> None:
        """Start the workers; an executor already started for this same objective keeps its workers."""
        if self._workers and getattr(self, "objective", None) is objective:
            super().start(objective, trial_timeout)
            return
        self.shutdown()
        super().start(objective, trial_timeout)
        try:
            self._payload = pickle.dumps(objective)
        except Exception as error:
            raise TypeError(
                f"The objective {objective!r} cannot be pickled for worker processes ({error}). Define its class "
                "and functions at module level, or use executor=inline."
            ) from error
        self._workers = [self._spawn(slot) for slot in range(self.capacity)]

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block until every worker has loaded the objective (benchmarks use it to time steady state)."""
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not all(worker.ready for worker in self._workers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Worker processes were not ready after {limit:g} s.")
            self._poll(0.05)

    def submit(self, trial_id: int, indices: tuple[int, ...], seed: np.random.SeedSequence) -> None:
        self._queue.append((trial_id, indices, seed))
        self._dispatch()

    def wait(self, timeout: float | None = None) -> list[Completed]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished and self.num_pending:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._dispatch()
            self._poll(remaining)
            self._dispatch()
            if remaining == 0.0:
                break  # polled once without blocking
        finished, self._finished = self._finished, []
        return finished

    @property
    def num_pending(self) -> int:
        busy = sum(worker.task is not None for worker in self._workers)
        return len(self._queue) + busy + len(self._finished)

    def shutdown(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones (abandoned trials) are killed."""
        for worker in self._workers:
            if worker.task is not None:
                worker.process.kill()
                continue
            try:
                worker.conn.send(None)
            except OSError:
                pass
        # Wait for all exits at once; a loaded machine can take seconds to tear down many interpreters.
        deadline = time.monotonic() + 10.0
        alive = [worker.process for worker in self._workers]
        while alive and time.monotonic() < deadline:
            connection.wait([process.sentinel for process in alive], deadline - time.monotonic())
            alive = [process for process in alive if process.is_alive()]
        for process in alive:
            process.kill()
        for worker in self._workers:
            worker.process.join(1.0)
            worker.conn.close()
        self._workers = []
        self._queue.clear()
        self._finished = []

    def _spawn(self, slot: int) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(child_end, self._payload, self.threads_per_worker),
                                        daemon=True, name=f"seqopt-worker-{slot}")
        environment = worker_environment(self.hardware, slot)
        if self.threads_per_worker is not None:
            environment.update({name: str(self.threads_per_worker) for name in THREAD_ENV_VARS})
        with _ENVIRON_LOCK:
            saved = {name: os.environ.get(name) for name in environment}
            os.environ.update(environment)
            try:
                process.start()
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        child_end.close()
        self.num_workers_started += 1
        return _Worker(process, parent_end, dispatched=time.monotonic())

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if worker.ready and worker.task is None:
                task = self._queue.popleft()
                try:
                    worker.conn.send((*task, self.trial_timeout))
                except OSError:
                    self._queue.appendleft(task)  # the worker died; _poll replaces it
                    continue
                worker.task = task
                worker.dispatched = time.monotonic()

    def _poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for messages or dead workers, then enforce time limits."""
        now = time.monotonic()
        limits = [timeout] if timeout is not None else []
        for worker in self._workers:
            if worker.task is not None and self.trial_timeout is not None:
                limits.append(worker.dispatched + self.trial_timeout + self.timeout_grace_seconds - now)
            elif not worker.ready:
                limits.append(worker.dispatched + self.start_timeout - now)
        wait_for = max(min(limits), 0.0) if limits else None

        handles: list[Any] = [worker.conn for worker in self._workers]
        handles += [worker.process.sentinel for worker in self._workers]
        ready = set(connection.wait(handles, wait_for))
        for slot, worker in enumerate(self._workers):
            if worker.conn in ready:
                self._receive(slot, worker)
        for slot, worker in enumerate(self._workers):
            if worker.process.sentinel in ready and not worker.process.is_alive() and self._workers[slot] is worker:
                self._replace(slot, self._death_message(worker) + " while evaluating the trial")
        self._enforce_time_limits()

    def _receive(self, slot: int, worker: _Worker) -> None:
        while worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                return  # the sentinel reports the death
            if isinstance(message, Completed):
                worker.task = None
                self._finished.append(message)
            elif message[0] == "ready":
                worker.ready = True
            elif message[0] == "error":
                self.shutdown()
                raise RuntimeError(f"A worker process could not load the objective {self.objective!r}:\n{message[1]}")

    def _death_message(self, worker: _Worker) -> str:
        code = worker.process.exitcode
        if code is not None and code < 0:
            try:
                cause = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                cause = f"killed by signal {-code}"
        else:
            cause = f"exit code {code}"
        return f"worker process {worker.process.pid} died ({cause})"

    def _enforce_time_limits(self) -> None:
        now = time.monotonic()
        for slot, worker in enumerate(self._workers):
            if worker.task is not None and self.trial_timeout is not None \
                    and now - worker.dispatched >= self.trial_timeout + self.timeout_grace_seconds:
                worker.process.kill()
                worker.process.join(5.0)
                self._replace(slot, f"{timeout_message(self.trial_timeout)}; the trial did not stop at the limit, "
                                    f"so its worker was killed {self.timeout_grace_seconds:g} s later")
            elif not worker.ready and now - worker.dispatched >= self.start_timeout:
                self.shutdown()
                raise RuntimeError(
                    f"A worker process did not load the objective within start_timeout={self.start_timeout:g} s; "
                    "raise executor.start_timeout if importing the objective is slow."
                )

    def _replace(self, slot: int, error: str) -> None:
        """Fail the dead worker's trial with ``error`` and start a new worker in its slot."""
        worker = self._workers[slot]
        if worker.task is not None:
            trial_id = worker.task[0]
            now = time.time()
            started = now - (time.monotonic() - worker.dispatched)
            self._finished.append(Completed(trial_id, Evaluation.failed(error), {"started": started, "finished": now}))
            logger.warning("Trial %d: %s; starting a new worker.", trial_id, error)
        elif not worker.ready:
            worker.conn.close()
            raise RuntimeError(
                f"A worker process exited before loading the objective ({self._death_message(worker)}). "
                "Check that the objective can be imported in a fresh Python process."
            )
        worker.conn.close()
        self._workers[slot] = self._spawn(slot)
