"""The search loop: propose, evaluate, record, observe, until the budget is spent."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seqopt.agents.base import Agent
from seqopt.executors.base import Completed, Executor
from seqopt.executors.inline import InlineExecutor
from seqopt.objective import Objective, Status
from seqopt.seeding import OBJECTIVE_STREAM, child_seed
from seqopt.store import TRIALS_FILENAME, TrialStore
from seqopt.trial import Proposal, TrialResult

logger = logging.getLogger(__name__)
trial_logger = logging.getLogger("seqopt.trials")

SUMMARY_FILENAME = "summary.json"


@dataclass
class Budget:
    """When a search stops; the first limit reached ends it. None means no limit.

    Attributes:
        trials: number of trials to run.
        wall_seconds: wall-clock seconds of the search.
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
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ValueError(f"budget.{name} must be a positive number or null, got {value!r}.")


@dataclass
class SearchStats:
    """Running figures of a search, updated as each trial finishes."""

    window: int = 50
    num_finished: int = 0
    num_failed: int = 0
    num_invalid: int = 0
    cost_seconds: float = 0.0
    best_reward: float = -math.inf
    best_trial: int | None = None
    best_indices: tuple[int, ...] | None = None
    recent: deque[float] = field(default_factory=deque)
    recent_sum: float = 0.0
    unique: set[int] = field(default_factory=set)  # hashes of the sequences seen, to count unique ones

    def update(self, result: TrialResult) -> None:
        self.num_finished += 1
        self.cost_seconds += result.evaluation.cost_seconds
        self.unique.add(hash(result.indices))
        status = result.evaluation.status
        if status is Status.FAILED:
            self.num_failed += 1
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

    @property
    def moving_average(self) -> float:
        return self.recent_sum / len(self.recent) if self.recent else math.nan


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

    def format(self) -> str:
        lines = [
            f"Search finished ({self.stop_reason}): {self.num_trials} trials "
            f"({self.num_unique} unique, {self.num_failed} failed, {self.num_invalid} invalid) "
            f"in {self.wall_seconds:.2f} s, {self.trials_per_second:.1f} trials/s.",
        ]
        if self.best_reward is None:
            lines.append("No trial returned a usable reward.")
        else:
            lines.append(f"Best reward {self.best_reward:.6g} at trial {self.best_trial}.")
            lines.append(f"Best sequence: {self.best_values}")
            lines.append(f"Reward moving average (last 50): {self.moving_average:.6g}")
        return "\n".join(lines)


class Search:
    """Run an agent against an objective until the budget is spent.

    Each iteration fills the executor's free slots with new proposals, waits for finished trials,
    appends each to the trial store (flushed at once), then lets the agent observe them. The
    number of trials in flight is ``max(executor.capacity, agent.batch_size)``.

    Args:
        objective: the problem.
        agent: the agent; seeded by the caller (see ``seqopt.seeding``).
        budget: when to stop.
        seed: the run's seed; each trial's objective generator derives from it and the trial id.
        run_dir: folder of the trial store and summary; None keeps the history in memory only.
        executor: where trials run; default inline.
        progress: show a tqdm progress bar.
        window: trials in the reward moving average.
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
    ) -> None:
        if agent.space != objective.space:
            raise ValueError(f"Agent space {agent.space!r} differs from objective space {objective.space!r}.")
        self.objective = objective
        self.agent = agent
        self.budget = budget or Budget()
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.executor = executor or InlineExecutor()
        self.progress = progress
        self.stats = SearchStats(window=window)
        self.history: list[TrialResult] = []
        self.keep_history = run_dir is None
        self.next_trial_id = 0
        self.in_flight: dict[int, Proposal] = {}

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

    def run(self) -> SearchSummary:
        store = TrialStore(self.run_dir / TRIALS_FILENAME) if self.run_dir is not None else None
        bar = self._make_progress_bar()
        started = time.monotonic()
        stop_reason = "trial budget spent"
        self.executor.start(self.objective)
        capacity = max(self.executor.capacity, self.agent.batch_size)
        try:
            while True:
                reason = self._budget_left(started)
                if reason is None:
                    self._submit(capacity - len(self.in_flight))
                elif not self.in_flight:
                    stop_reason = reason
                    break

                completed = self.executor.wait()
                results = [self._finish(c, store) for c in completed]
                self.agent.observe(results)
                if bar is not None:
                    bar.update(len(results))
                    bar.set_postfix(best=f"{self.stats.best_reward:.4g}", refresh=False)
        finally:
            self.executor.shutdown()
            if store is not None:
                store.close()
            if bar is not None:
                bar.close()

        summary = self._summarize(time.monotonic() - started, stop_reason)
        if self.run_dir is not None:
            with open(self.run_dir / SUMMARY_FILENAME, "w", encoding="utf-8") as f:
                json.dump(asdict(summary), f, indent=2, default=str)
        return summary

    def _submit(self, free_slots: int) -> None:
        if self.budget.trials is not None:
            free_slots = min(free_slots, self.budget.trials - self.next_trial_id)
        if free_slots <= 0:
            return
        for proposal in self.agent.propose(free_slots):
            trial_id = self.next_trial_id
            self.next_trial_id += 1
            self.in_flight[trial_id] = proposal
            self.executor.submit(trial_id, proposal.indices, child_seed(self.seed, OBJECTIVE_STREAM, trial_id))

    def _finish(self, completed: Completed, store: TrialStore | None) -> TrialResult:
        proposal = self.in_flight.pop(completed.trial_id)
        result = TrialResult(completed.trial_id, proposal, completed.evaluation, completed.timing)
        self.stats.update(result)
        if store is not None:
            record = result.to_record(self.objective.space.decode(proposal.indices))
            record["total_cost_seconds"] = self.stats.cost_seconds
            store.append_record(record)
        if self.keep_history:
            self.history.append(result)

        evaluation = result.evaluation
        if evaluation.status is Status.FAILED:
            logger.warning("Trial %d failed: %s", result.trial_id, evaluation.error)
        else:
            trial_logger.info("Trial %d reward %.6g (%s) best %.6g (trial %s)", result.trial_id, evaluation.reward,
                              evaluation.status.value, self.stats.best_reward, self.stats.best_trial)
        return result

    def _make_progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.budget.trials, unit="trial", dynamic_ncols=True, leave=False)

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
        )
