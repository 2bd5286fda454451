import os
import time

import numpy as np
import pytest

from seqopt import Budget, ChoiceSpace, FunctionObjective, Search
from seqopt.agents import RandomSearch
from seqopt.executors import InlineExecutor, ProcessExecutor
from seqopt.executors.testing import FaultyObjective, WorkerProbe
from seqopt.seeding import AGENT_STREAM, OBJECTIVE_STREAM, child_generator, child_seed
from seqopt.store import read_records

SEED = 11


def _run(objective, executor, run_dir, trials: int, **options) -> list[dict]:
    agent = RandomSearch(objective.space, seed=child_seed(SEED, AGENT_STREAM))
    Search(objective, agent, budget=Budget(trials=trials), seed=SEED, run_dir=run_dir, executor=executor,
           **options).run()
    return read_records(run_dir)


def _by_trial(records: list[dict]) -> dict[int, tuple]:
    return {r["trial"]: (tuple(r["indices"]), r["status"], r["reward"], (r["error"] or "").split("\n")[0])
            for r in records}


def _expected_fault(objective: FaultyObjective, trial_id: int) -> str | None:
    return objective.draw_fault(child_generator(SEED, OBJECTIVE_STREAM, trial_id))


@pytest.mark.slow
def test_process_results_match_inline(tmp_path):
    objective = FaultyObjective(n=5, raise_rate=0.15, nan_rate=0.15)
    inline = _run(objective, InlineExecutor(), tmp_path / "inline", trials=40)
    parallel = _run(objective, ProcessExecutor(workers=3), tmp_path / "process", trials=40)
    assert len(parallel) == 40
    assert _by_trial(parallel) == _by_trial(inline)
    assert {r["status"] for r in inline} == {"ok", "failed"}


@pytest.mark.slow
def test_process_failures_recorded_and_search_completes(tmp_path):
    objective = FaultyObjective(n=5, raise_rate=0.1, nan_rate=0.1, hang_rate=0.1, kill_rate=0.1, block_rate=0.1,
                                hang_seconds=60)
    started = time.monotonic()
    records = _run(objective, ProcessExecutor(workers=2, timeout_grace_seconds=0.5), tmp_path, trials=30,
                   trial_timeout=1.0)
    assert time.monotonic() - started < 60  # hangs were cut short, not waited out

    assert sorted(r["trial"] for r in records) == list(range(30))
    expected_errors = {
        "raise": "RuntimeError: injected failure",
        "nan": "objective returned a non-finite reward nan",
        "hang": "trial timed out after 1 s",
        "kill": "died (killed by signal SIGKILL) while evaluating the trial",
        "block": "trial timed out after 1 s (trial_timeout=1); raise trial_timeout if it needs longer; the trial "
                 "did not stop at the limit, so its worker was killed 0.5 s later",
    }
    seen = set()
    for record in records:
        fault = _expected_fault(objective, record["trial"])
        if fault is None:
            assert record["status"] == "ok", record
            continue
        seen.add(fault)
        assert record["status"] == "failed"
        assert record["reward"] is None
        assert expected_errors[fault] in record["error"]
        if fault == "hang":  # SIGALRM stopped it, so its worker lives on
            assert "killed" not in record["error"]
    assert seen == set(expected_errors)  # this seed draws every kind of fault


@pytest.mark.slow
def test_killed_worker_is_retried(tmp_path):
    objective = FaultyObjective(n=5, kill_rate=0.3, once_dir=str(tmp_path))
    records = _run(objective, ProcessExecutor(workers=2), tmp_path / "run", trials=12, retries=1)
    killed = [r for r in records if _expected_fault(objective, r["trial"]) == "kill"]
    assert killed
    assert all(r["status"] == "ok" for r in records)
    assert all(r["attempts"] == 2 for r in killed)
    assert all("attempts" not in r for r in records if r not in killed)


def test_inline_timeout_interrupts_evaluation(tmp_path):
    objective = FaultyObjective(n=4, hang_rate=1.0, hang_seconds=60)
    started = time.monotonic()
    records = _run(objective, InlineExecutor(), tmp_path, trials=2, trial_timeout=0.2)
    assert time.monotonic() - started < 10
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert "trial timed out after 0.2 s (trial_timeout=0.2)" in records[0]["error"]


@pytest.mark.slow
def test_worker_environment_and_imports(tmp_path):
    objective = WorkerProbe(4)
    parent_threads = os.environ.get("OMP_NUM_THREADS")
    records = _run(objective, ProcessExecutor(workers=2, threads_per_worker=3), tmp_path, trials=8)
    metrics = [r["metrics"] for r in records]
    assert {m["threads"] for m in metrics} == {"3"}
    assert {m["worker_index"] for m in metrics} <= {"0", "1"}
    assert {m["pid"] for m in metrics}.isdisjoint({os.getpid()})
    # A learn-to-count worker never needs TensorFlow, SB3 or torch, so it must not pay for importing them.
    assert all(m["heavy_modules"] == [] for m in metrics)
    assert os.environ.get("OMP_NUM_THREADS") == parent_threads  # the search process is left as it was


def test_wait_without_pending_returns_at_once():
    executor = ProcessExecutor(workers=1)
    executor.start(FaultyObjective(4))
    try:
        started = time.monotonic()
        assert executor.wait() == []
        assert time.monotonic() - started < 1
    finally:
        executor.shutdown()


def _double(values):
    return 2.0 * values["x"]


def test_unpicklable_objective_is_rejected_with_a_fix():
    space = ChoiceSpace.from_dict({"x": [0, 1]})
    executor = ProcessExecutor(workers=1)
    with pytest.raises(TypeError, match=r"cannot be pickled for worker processes.*module level.*executor=inline"):
        executor.start(FunctionObjective(space, lambda values: 1.0))
    executor.shutdown()


class _FailsToLoad:
    """Pickles fine but raises when a worker unpickles it."""

    space = ChoiceSpace.from_dict({"x": [0, 1]})

    def __reduce__(self):
        return (os.stat, ("/nonexistent/seqopt-objective",))


def test_unloadable_objective_stops_search():
    executor = ProcessExecutor(workers=1)
    executor.start(_FailsToLoad())
    executor.submit(0, (0,), np.random.SeedSequence(0))
    with pytest.raises(RuntimeError, match=r"(?s)could not load the objective.*FileNotFoundError"):
        executor.wait(timeout=60)
    executor.shutdown()


@pytest.mark.parametrize(("argument", "value", "message"), [
    ("workers", 0, "workers must be an int >= 1, got 0"),
    ("threads_per_worker", 1.5, "threads_per_worker must be an int >= 1, got 1.5"),
    ("start_timeout", -1, "start_timeout must be a positive number of seconds, got -1"),
])
def test_process_executor_rejects_bad_arguments(argument, value, message):
    with pytest.raises(ValueError, match=message):
        ProcessExecutor(**{argument: value})


def test_trial_timeout_must_be_positive(tmp_path):
    objective = FaultyObjective(4)
    with pytest.raises(ValueError, match="trial_timeout must be a positive number of seconds or None, got 0"):
        Search(objective, RandomSearch(objective.space, seed=0), trial_timeout=0)


def test_wait_with_zero_timeout_collects_finished_trials():
    executor = ProcessExecutor(workers=1)
    executor.start(FaultyObjective(4))
    try:
        executor.wait_until_ready()
        executor.submit(0, (0, 1, 2, 3), np.random.SeedSequence(0))
        deadline = time.monotonic() + 60
        finished = []
        while not finished and time.monotonic() < deadline:
            finished = executor.wait(timeout=0.0)
            time.sleep(0.01)
        assert [c.trial_id for c in finished] == [0]
        assert finished[0].evaluation.reward == 1.0
    finally:
        executor.shutdown()


@pytest.mark.slow
def test_evo_nas_with_outstanding_proposals(tmp_path):
    # Evo-NAS trains on whichever trials finish first, while other proposals are still running.
    from hydra import compose, initialize_config_module

    from seqopt.cli import run_search

    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose("config", overrides=[
            "agent=evo_nas_pqt", "agent.population_size=10", "agent.sample_size=3", "env.n=5",
            "env._target_=seqopt.executors.testing.FaultyObjective", "+env.delay_seconds=0.02",
            "+env.raise_rate=0.1", "executor=process", "executor.workers=3", "budget.trials=45", "progress=false",
        ])
    summary = run_search(cfg, tmp_path)
    records = read_records(tmp_path)
    assert summary.num_trials == 45
    assert sorted(r["trial"] for r in records) == list(range(45))
    assert "mutation" in {r["origin"] for r in records}
    assert any(r["status"] == "failed" for r in records)
    assert len({r["batch"] for r in records}) > 45 // 3  # observed in many small batches, not in rounds of W
