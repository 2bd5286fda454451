"""The search loop: propose, evaluate, record, observe, until the budget is spent.

The loop is asynchronous: W evaluations stay in flight. As soon as any of them finish, they are
written to the trial store, observed by the agent and replaced by new proposals, so one slow trial
never idles the other workers. Failed trials (an exception, a non-finite reward, a
timeout, a dead worker) are retried up to ``retries`` times, then recorded and skipped by the
agent; a failure rate above ``max_failure_rate`` stops the search.

Checkpoints are written right after an ``agent.observe`` and before the next proposal, the one
point where the agent's state, the counters and the proposals in flight describe the run
exactly. A resumed search restores that state, re-submits the proposals that were in flight
with their original trial ids, and hands the trials that the store holds from after the
checkpoint back to the agent in their original batches instead of evaluating them again. With
the inline executor and a fixed seed the resumed store is therefore identical to that of an
uninterrupted run, apart from the ``timing`` field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqopt.checkpoint import CheckpointError, Replay, checkpoint_path, load_checkpoint, save_checkpoint
from seqopt.executors.base import Completed, Executor, check_trial_timeout
from seqopt.executors.inline import InlineExecutor
from seqopt.objective import Evaluation, Objective, Status
from seqopt.seeding import OBJECTIVE_STREAM, child_seed
from seqopt.store import TRIALS_FILENAME, TrialStore, read_records
from seqopt.trial import Proposal, TrialResult

if TYPE_CHECKING:  # the agents package imports torch lazily; workers need none of it
    from seqopt.agents.base import Agent

logger = logging.getLogger(__name__)
trial_logger = logging.getLogger("seqopt.trials")

SUMMARY_FILENAME = "summary.json"


@dataclass
class Budget:
    """When a search stops; the first limit reached ends it. None means no limit.

    Attributes:
        trials: number of trials to run.
        wall_seconds: wall-clock seconds of the search; a resumed search counts the time before
            its last checkpoint too.
        cost_seconds: sum of the trials' ``cost_seconds`` (real or simulated training time).
    """

    trials: int | None = 1000
    wall_seconds: float | None = None
    cost_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.trials is None and self.wall_seconds is None and self.cost_seconds is None:
            raise ValueError("Budget needs at least one limit: trials, wall_seconds or cost_seconds.")
        for name in ("trials", "wall_seconds", "cost_seconds"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"budget.{name} must be a positive number or null, got {value!r}.")


@dataclass
class SearchStats:
    """Running figures of a search, updated as each trial finishes."""

    window: int = 50
    num_finished: int = 0
    num_failed: int = 0
    num_invalid: int = 0
    num_reused: int = 0
    cost_seconds: float = 0.0
    best_reward: float = -math.inf
    best_trial: int | None = None
    best_indices: tuple[int, ...] | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    recent: deque[float] = field(default_factory=deque)
    recent_sum: float = 0.0
    unique: set[int] = field(default_factory=set)  # hashes of the sequences seen, to count unique ones

    def update(self, result: TrialResult, reused: bool = False) -> None:
        self.num_finished += 1
        self.num_reused += reused
        self.cost_seconds += result.evaluation.cost_seconds
        self.unique.add(hash(result.indices))
        status = result.evaluation.status
        if status is Status.FAILED:
            self.num_failed += 1
            self.last_error = result.evaluation.error
            return
        if status is Status.INVALID:
            self.num_invalid += 1
        reward = result.reward
        self.recent.append(reward)
        self.recent_sum += reward
        if len(self.recent) > self.window:
            self.recent_sum -= self.recent.popleft()
        if reward > self.best_reward:
            self.best_reward = reward
            self.best_trial = result.trial_id
            self.best_indices = result.indices
            self.best_metrics = dict(result.evaluation.metrics)

    @property
    def moving_average(self) -> float:
        return self.recent_sum / len(self.recent) if self.recent else math.nan

    def state_dict(self) -> dict[str, Any]:
        """Return every field except ``unique``, which a resumed search rebuilds from the trial store."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "unique"}
        state["recent"] = list(self.recent)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self.recent = deque(state["recent"])
        self.best_indices = tuple(state["best_indices"]) if state["best_indices"] is not None else None


@dataclass
class SearchSummary:
    """Report of a finished search."""

    num_trials: int
    num_failed: int
    num_invalid: int
    num_unique: int
    best_reward: float | None
    best_trial: int | None
    best_indices: list[int] | None
    best_values: dict[str, Any] | None
    moving_average: float | None
    wall_seconds: float
    trials_per_second: float
    cost_seconds: float
    stop_reason: str
    num_reused: int = 0
    num_retries: int = 0
    best_metrics: dict[str, Any] | None = None
    agent_metrics: dict[str, float] | None = None
    """The agent's own figures at the end (``agent.metrics()``, for agents that have it)."""

    def format(self) -> str:
        reused = f", {self.num_reused} answered by dedup" if self.num_reused else ""
        lines = [
            f"Search finished ({self.stop_reason}): {self.num_trials} trials "
            f"({self.num_unique} unique, {self.num_failed} failed, {self.num_invalid} invalid{reused}) "
            f"in {self.wall_seconds:.2f} s, {self.trials_per_second:.1f} trials/s.",
        ]
        if self.best_reward is None:
            lines.append("No trial returned a usable reward.")
        else:
            lines.append(f"Best reward {self.best_reward:.6g} at trial {self.best_trial}.")
            lines.append(f"Best sequence: {self.best_values}")
            if self.best_metrics:
                metrics = ", ".join(f"{name}={_format_metric(value)}" for name, value in self.best_metrics.items())
                lines.append(f"Best trial metrics: {metrics}")
            lines.append(f"Reward moving average (last 50): {self.moving_average:.6g}")
        if self.agent_metrics:
            metrics = ", ".join(f"{name}={_format_metric(value)}" for name, value in self.agent_metrics.items())
            lines.append(f"Agent: {metrics}")
        return "\n".join(lines)


class SearchAborted(RuntimeError):
    """Early stop of a search because too many trials failed; ``summary`` contains its figures."""

    def __init__(self, message: str, summary: SearchSummary) -> None:
        super().__init__(message)
        self.summary = summary


def _check_optional_positive(name: str, value: float | None, integer: bool = False) -> None:
    if value is None:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        kind = "int" if integer else "number"
        raise ValueError(f"{name} must be a positive {kind} or None, got {value!r}.")


class Search:
    """Run an agent against an objective until the budget is spent.

    Each iteration fills the free evaluation slots with new proposals, waits for finished trials,
    appends each to the trial store (flushed at once), lets the agent observe them, and writes a
    checkpoint when one is due. The number of trials in flight is
    ``max(executor.capacity, agent.batch_size)``.

    Args:
        objective: the problem.
        agent: the agent; seeded by the caller (see ``seqopt.seeding``).
        budget: when to stop.
        seed: the run's seed; each trial's objective generator derives from it and the trial id.
        run_dir: folder of the trial store, checkpoint and summary; None keeps the history in
            memory only (no checkpoints, no resume).
        executor: where trials run; default inline.
        progress: show a tqdm progress bar.
        window: trials in the reward moving average.
        checkpoint_every_trials: write a checkpoint after this many finished trials; None never
            by count.
        checkpoint_every_seconds: write a checkpoint after this many seconds; None never by time.
        resume: continue the run in ``run_dir`` from its checkpoint and trial store. A folder with
            a store but no checkpoint is replayed from the first trial; an empty folder starts a
            new run.
        retries: times a failed trial is evaluated again (same trial id and seed) before it is
            recorded as failed.
        max_failure_rate: stop with ``SearchAborted`` once more than this fraction of finished
            trials failed; None never stops.
        failure_rate_min_trials: finished trials needed before ``max_failure_rate`` applies.
        trial_timeout: seconds one evaluation may run before it is stopped and recorded as
            failed; None for no limit.
        dedup: reuse the earlier result (ok or invalid) of a sequence evaluated before instead of
            evaluating it again; the trial still counts against the budget.
    """

    def __init__(
        self,
        objective: Objective,
        agent: Agent,
        budget: Budget | None = None,
        seed: int = 0,
        run_dir: str | Path | None = None,
        executor: Executor | None = None,
        progress: bool = False,
        window: int = 50,
        *,
        checkpoint_every_trials: int | None = 5000,
        checkpoint_every_seconds: float | None = 300.0,
        resume: bool = False,
        retries: int = 0,
        max_failure_rate: float | None = None,
        failure_rate_min_trials: int = 20,
        trial_timeout: float | None = None,
        dedup: bool = False,
    ) -> None:
        if agent.space != objective.space:
            raise ValueError(f"Agent space {agent.space!r} differs from objective space {objective.space!r}.")
        _check_optional_positive("checkpoint_every_trials", checkpoint_every_trials, integer=True)
        _check_optional_positive("checkpoint_every_seconds", checkpoint_every_seconds)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}.")
        if max_failure_rate is not None and (isinstance(max_failure_rate, bool)
                                             or not isinstance(max_failure_rate, (int, float))
                                             or not 0 <= max_failure_rate <= 1):
            raise ValueError(f"max_failure_rate must be a number in [0, 1] or None, got {max_failure_rate!r}.")
        if isinstance(failure_rate_min_trials, bool) or not isinstance(failure_rate_min_trials, int) \
                or failure_rate_min_trials < 1:
            raise ValueError(f"failure_rate_min_trials must be an int >= 1, got {failure_rate_min_trials!r}.")
        if resume and run_dir is None:
            raise ValueError("resume=True needs the run_dir of the run to continue.")
        self.objective = objective
        self.agent = agent
        self.budget = budget or Budget()
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.executor = executor or InlineExecutor()
        self.progress = progress
        self.checkpoint_every_trials = checkpoint_every_trials
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.resume = bool(resume)
        self.retries = retries
        self.max_failure_rate = None if max_failure_rate is None else float(max_failure_rate)
        self.failure_rate_min_trials = failure_rate_min_trials
        self.trial_timeout = check_trial_timeout(trial_timeout)
        self.dedup = bool(dedup)

        self.stats = SearchStats(window=window)
        self.history: list[TrialResult] = []
        self.keep_history = run_dir is None
        self.next_trial_id = 0
        self.num_batches = 0  # agent.observe calls so far; stored with each trial as "batch"
        self.num_retries = 0
        self.in_flight: dict[int, Proposal] = {}
        self.attempts: dict[int, int] = {}  # trial id -> evaluations started, for trials in flight
        self.checkpoint_seconds = 0.0  # time spent writing checkpoints, for benchmarks
        self.num_checkpoints = 0
        self._elapsed_before = 0.0  # wall seconds of the run before the checkpoint it resumed from
        self._cache: dict[tuple[int, ...], tuple[int, Evaluation]] = {}  # dedup: sequence -> first result
        self._reused: list[Completed] = []
        self._reused_from: dict[int, int] = {}
        self._replay: Replay | None = None
        self._store: TrialStore | None = None
        self._last_checkpoint = (0, 0.0)  # (finished trials, monotonic time) at the last checkpoint
        self._stop_reason = "trial budget spent"
        self._abort_message: str | None = None  # set when the failure rate stops the search

    def run(self) -> SearchSummary:
        """Run until the budget is spent and return the summary.

        Raises:
            SearchAborted: when the failure rate exceeds ``max_failure_rate``; the trial store,
                a checkpoint and the summary are written first.
        """
        self._store = self._open_run_dir()
        started = time.monotonic() - self._elapsed_before
        self._last_checkpoint = (self.stats.num_finished, time.monotonic())
        capacity = max(self.executor.capacity, self.agent.batch_size)
        bar = None
        try:
            try:
                self.executor.start(self.objective, trial_timeout=self.trial_timeout)
                bar = self._make_progress_bar()
                self._run_loop(started, capacity, bar)
            finally:
                self.executor.shutdown()
                if bar is not None:
                    bar.close()
            self._write_checkpoint(started)
        finally:
            if self._store is not None:
                self._store.close()
            # Agents that run a learner in a background thread (the stable-baselines3 adapters)
            # release it here rather than at garbage collection.
            close_agent = getattr(self.agent, "close", None)
            if callable(close_agent):
                close_agent()
        if self._replay is not None and self._replay.active:
            logger.warning("The search stopped before replaying every stored trial; the trial store contains more "
                           "trials than the budget allows.")

        summary = self._summarize(time.monotonic() - started, self._stop_reason)
        if self.run_dir is not None:
            with open(self.run_dir / SUMMARY_FILENAME, "w", encoding="utf-8") as f:
                json.dump(asdict(summary), f, indent=2, default=str)
        if self._abort_message is not None:
            logger.error("%s", self._abort_message)
            raise SearchAborted(self._abort_message, summary)
        return summary

    def _run_loop(self, started: float, capacity: int, bar: Any) -> None:
        """Run the algorithm: propose into free slots, collect finished trials, record, observe, checkpoint."""
        self._resubmit_in_flight()
        while True:
            reason = self._budget_left(started)
            if reason is None:
                self._submit(capacity - len(self.in_flight))
            elif not self.in_flight:
                self._stop_reason = reason
                return

            results = [r for r in map(self._finish, self._collect()) if r is not None]
            if results:
                self.agent.observe(results)
                self.num_batches += 1
            if bar is not None:
                bar.update(len(results))
                bar.set_postfix(best=f"{self.stats.best_reward:.4g}", refresh=False)

            self._abort_message = self._failure_rate_exceeded()
            if self._abort_message is not None:
                self._stop_reason = "aborted: too many failed trials"
                return
            self._checkpoint_if_due(started)

    def _budget_left(self, started: float) -> str | None:
        """Return why the search must stop submitting, or None while budget remains."""
        budget = self.budget
        if budget.trials is not None and self.next_trial_id >= budget.trials:
            return "trial budget spent"
        if budget.wall_seconds is not None and time.monotonic() - started >= budget.wall_seconds:
            return "wall-clock budget spent"
        if budget.cost_seconds is not None and self.stats.cost_seconds >= budget.cost_seconds:
            return "cost budget spent"
        return None

    def _submit(self, free_slots: int) -> None:
        if self.budget.trials is not None:
            free_slots = min(free_slots, self.budget.trials - self.next_trial_id)
        if free_slots <= 0:
            return
        for proposal in self.agent.propose(free_slots):
            trial_id = self.next_trial_id
            self.next_trial_id += 1
            self.in_flight[trial_id] = proposal
            self.attempts[trial_id] = 1
            self._dispatch(trial_id, proposal)

    def _dispatch(self, trial_id: int, proposal: Proposal) -> None:
        """Send one trial to the dedup cache, the replayed store or the executor, in that order."""
        indices = proposal.indices
        if self.dedup and indices in self._cache:
            source, evaluation = self._cache[indices]
            now = time.time()
            reused = dataclasses.replace(evaluation, metrics=dict(evaluation.metrics), cost_seconds=0.0)
            self._reused.append(Completed(trial_id, reused, {"started": now, "finished": now}))
            self._reused_from[trial_id] = source
            return
        if self._replay is not None and self._replay.claim(trial_id, indices):
            return
        self.executor.submit(trial_id, indices, child_seed(self.seed, OBJECTIVE_STREAM, trial_id))

    def _collect(self) -> list[Completed]:
        """Return the next finished trials: reused results first, then the store's or the executor's."""
        completed, self._reused = self._reused, []
        replay = self._replay
        if replay is not None and replay.active:
            completed += [_completed_from_record(record) for record in replay.take(self.num_batches)]
            if not replay.active and self.executor.num_pending:
                # The crash may have cut the last stored batch short, so the executor has the rest.
                completed += self.executor.wait()
            return completed
        if self.executor.num_pending:
            completed += self.executor.wait(timeout=0.0 if completed else None)
        elif not completed and self.in_flight:
            raise RuntimeError(f"Trials {sorted(self.in_flight)} are in flight, but neither the executor nor the "
                               "trial store has them pending. This is a bug in seqopt; please report it.")
        return completed

    def _finish(self, completed: Completed) -> TrialResult | None:
        """Record one finished evaluation; return None when the trial is retried instead."""
        trial_id = completed.trial_id
        proposal = self.in_flight[trial_id]
        evaluation = completed.evaluation
        stored = self._replay.record(trial_id) if self._replay is not None else None
        attempts = int(stored.get("attempts", 1)) if stored is not None else self.attempts.get(trial_id, 1)
        if evaluation.status is Status.FAILED and stored is None and attempts <= self.retries:
            logger.warning("Trial %d failed (attempt %d of %d), retrying: %s", trial_id, attempts,
                           self.retries + 1, _first_line(evaluation.error))
            self.attempts[trial_id] = attempts + 1
            self.num_retries += 1
            self.executor.submit(trial_id, proposal.indices, child_seed(self.seed, OBJECTIVE_STREAM, trial_id))
            return None

        del self.in_flight[trial_id]
        self.attempts.pop(trial_id, None)
        reused_from = self._reused_from.pop(trial_id, None)
        result = TrialResult(trial_id, proposal, evaluation, completed.timing)
        self.stats.update(result, reused=reused_from is not None)
        if self.dedup and result.usable and proposal.indices not in self._cache:
            self._cache[proposal.indices] = (trial_id, evaluation)
        if self._store is not None and stored is None:
            self._store.append_record(self._record(result, attempts, reused_from))
        if self.keep_history:
            self.history.append(result)

        source = "" if stored is None else " (from the trial store)"
        if evaluation.status is Status.FAILED:
            logger.warning("Trial %d failed%s: %s", trial_id, source, _first_line(evaluation.error))
        else:
            trial_logger.info("Trial %d reward %.6g (%s) best %.6g (trial %s)%s", trial_id, evaluation.reward,
                              evaluation.status.value, self.stats.best_reward, self.stats.best_trial, source)
        return result

    def _record(self, result: TrialResult, attempts: int, reused_from: int | None) -> dict[str, Any]:
        record = result.to_record(self.objective.space.decode(result.indices))
        record["total_cost_seconds"] = self.stats.cost_seconds
        record["batch"] = self.num_batches
        if attempts > 1:
            record["attempts"] = attempts
        if reused_from is not None:
            record["reused_from"] = reused_from
        return record

    def _failure_rate_exceeded(self) -> str | None:
        """Return the message that stops the search, or None while failures stay within the limit."""
        stats = self.stats
        if self.max_failure_rate is None or stats.num_finished < self.failure_rate_min_trials:
            return None
        rate = stats.num_failed / stats.num_finished
        if rate <= self.max_failure_rate:
            return None
        return (
            f"Stopping the search: {stats.num_failed} of {stats.num_finished} finished trials failed ({rate:.0%}), "
            f"more than max_failure_rate={self.max_failure_rate:g}. Last error: {_first_line(stats.last_error)}. "
            "Fix the objective (every error is in the trial store), or raise max_failure_rate and resume the run."
        )

    # Checkpoint and resume.

    def _open_run_dir(self) -> TrialStore | None:
        """Open the trial store; on resume, restore the checkpoint and prepare the replay."""
        if self.run_dir is None:
            return None
        store_path = self.run_dir / TRIALS_FILENAME
        has_records = store_path.exists() and store_path.stat().st_size > 0
        if has_records and not self.resume:
            raise FileExistsError(
                f"Run folder {self.run_dir} already contains a trial store. Pass resume=True (resume=true on the "
                "command line) to continue that run, or choose a new run folder."
            )
        store = TrialStore(store_path)  # drops a line cut short by a crash
        if not self.resume:
            return store

        records = read_records(store_path)
        checkpoint = checkpoint_path(self.run_dir)
        num_restored = 0
        if checkpoint.exists():
            state = load_checkpoint(checkpoint)
            self._check_checkpoint(state)
            covered = int(state["search"]["num_records"])
            if covered <= len(records):
                num_restored = self._restore(state, covered)
            else:
                # Lines flushed but lost before reaching the disk (a power loss): the store wins.
                logger.warning("The checkpoint in %s covers %d trials but the trial store contains %d; ignoring the "
                               "checkpoint and replaying the store from the start.", self.run_dir, covered,
                               len(records))
        elif records:
            logger.warning("No checkpoint in %s: replaying all %d stored trials from the start.", self.run_dir,
                           len(records))
        for record in records[:num_restored]:
            self._remember(record)
        if len(records) > num_restored:
            self._replay = Replay(records[num_restored:])
        logger.info("Resuming %s: %d trials restored from the checkpoint, %d replayed from the store, "
                    "%d in flight re-submitted.", self.run_dir, num_restored, len(records) - num_restored,
                    len(self.in_flight))
        return store

    def _remember(self, record: dict[str, Any]) -> None:
        """Rebuild the unique-sequence count and the dedup cache from one stored trial."""
        result = TrialResult.from_record(record)
        self.stats.unique.add(hash(result.indices))
        if self.dedup and result.usable and result.indices not in self._cache:
            self._cache[result.indices] = (result.trial_id, result.evaluation)

    def _checkpoint_state(self, started: float) -> dict[str, Any]:
        return {
            "search": {
                "seed": self.seed,
                "agent_class": f"{type(self.agent).__module__}.{type(self.agent).__qualname__}",
                "space": [[choice.name, choice.cardinality] for choice in self.objective.space.choices],
                "dedup": self.dedup,
                "next_trial_id": self.next_trial_id,
                "num_batches": self.num_batches,
                "num_retries": self.num_retries,
                "num_records": self.stats.num_finished,
                "elapsed_seconds": time.monotonic() - started,
            },
            "stats": self.stats.state_dict(),
            "in_flight": [
                {"trial": trial_id, "attempts": self.attempts.get(trial_id, 1),
                 "proposal": {f.name: getattr(proposal, f.name) for f in dataclasses.fields(Proposal)}}
                for trial_id, proposal in self.in_flight.items()
            ],
            "agent": self.agent.state_dict(),
        }

    def _check_checkpoint(self, state: dict[str, Any]) -> None:
        """Raise CheckpointError when the checkpoint was written by a search with other settings."""
        search = state["search"]
        agent_class = f"{type(self.agent).__module__}.{type(self.agent).__qualname__}"
        expected = {
            "seed": self.seed,
            "agent_class": agent_class,
            "space": [[choice.name, choice.cardinality] for choice in self.objective.space.choices],
            "dedup": self.dedup,
        }
        for key, value in expected.items():
            if search.get(key) != value:
                raise CheckpointError(
                    f"The checkpoint in {self.run_dir} was written with {key}={search.get(key)!r}, but this search "
                    f"has {key}={value!r}. Resume with the settings of the original run."
                )

    def _restore(self, state: dict[str, Any], num_records: int) -> int:
        """Load a checkpoint into this search and return the number of stored trials it covers."""
        search = state["search"]
        self.agent.load_state_dict(state["agent"])
        self.stats.load_state_dict(state["stats"])
        self.next_trial_id = int(search["next_trial_id"])
        self.num_batches = int(search["num_batches"])
        self.num_retries = int(search["num_retries"])
        self._elapsed_before = float(search["elapsed_seconds"])
        for entry in state["in_flight"]:
            trial_id = int(entry["trial"])
            self.in_flight[trial_id] = Proposal(**entry["proposal"])
            self.attempts[trial_id] = int(entry["attempts"])
        return num_records

    def _resubmit_in_flight(self) -> None:
        """Send the proposals that were in flight at the checkpoint again, with their trial ids."""
        for trial_id, proposal in sorted(self.in_flight.items()):
            if self._replay is not None and self._replay.claim(trial_id, proposal.indices):
                continue
            self.executor.submit(trial_id, proposal.indices, child_seed(self.seed, OBJECTIVE_STREAM, trial_id))

    def _checkpoint_if_due(self, started: float) -> None:
        finished, written = self._last_checkpoint
        due_by_count = (self.checkpoint_every_trials is not None
                        and self.stats.num_finished - finished >= self.checkpoint_every_trials)
        due_by_time = (self.checkpoint_every_seconds is not None
                       and time.monotonic() - written >= self.checkpoint_every_seconds)
        if due_by_count or due_by_time:
            self._write_checkpoint(started)

    def _write_checkpoint(self, started: float) -> None:
        if self.run_dir is None:
            return
        began = time.perf_counter()
        # The store is flushed but not fsynced: after a power loss that drops its last lines, a
        # resume finds the checkpoint ahead of the store and replays the store from the start.
        size = save_checkpoint(checkpoint_path(self.run_dir), self._checkpoint_state(started))
        self.checkpoint_seconds += time.perf_counter() - began
        self.num_checkpoints += 1
        self._last_checkpoint = (self.stats.num_finished, time.monotonic())
        logger.debug("Checkpoint after %d trials (%d bytes, %.1f ms).", self.stats.num_finished, size,
                     1000 * (time.perf_counter() - began))

    def _make_progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.budget.trials, initial=self.stats.num_finished, unit="trial", dynamic_ncols=True,
                    leave=False)

    def _summarize(self, wall_seconds: float, stop_reason: str) -> SearchSummary:
        stats = self.stats
        best = stats.best_indices
        found = best is not None
        return SearchSummary(
            num_trials=stats.num_finished,
            num_failed=stats.num_failed,
            num_invalid=stats.num_invalid,
            num_unique=len(stats.unique),
            best_reward=stats.best_reward if found else None,
            best_trial=stats.best_trial,
            best_indices=list(best) if best is not None else None,
            best_values=self.objective.space.decode_dict(best) if best is not None else None,
            moving_average=stats.moving_average if found else None,
            wall_seconds=wall_seconds,
            trials_per_second=stats.num_finished / wall_seconds if wall_seconds > 0 else math.inf,
            cost_seconds=stats.cost_seconds,
            stop_reason=stop_reason,
            num_reused=stats.num_reused,
            num_retries=self.num_retries,
            best_metrics=dict(stats.best_metrics) if found else None,
            agent_metrics=self._agent_metrics(),
        )

    def _agent_metrics(self) -> dict[str, float] | None:
        metrics = getattr(self.agent, "metrics", None)
        return dict(metrics()) if callable(metrics) else None


def _format_metric(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _completed_from_record(record: dict[str, Any]) -> Completed:
    """Rebuild what the executor reported for a stored trial."""
    result = TrialResult.from_record(record)
    return Completed(result.trial_id, result.evaluation, result.timing)


def _first_line(error: str | None) -> str:
    """Return the first line of an error text for a log line; the trial store keeps all of it."""
    lines = (error or "").strip().splitlines()
    return lines[0] if lines else "no error text"
