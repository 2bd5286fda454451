import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

import seqopt.conf
from seqopt import Budget, Search
from seqopt.agents import AgingEvolution
from seqopt.checkpoint import CHECKPOINT_FILENAME, CheckpointError, load_checkpoint
from seqopt.cli import run_search
from seqopt.executors import InlineExecutor, ProcessExecutor
from seqopt.executors.testing import FaultyObjective
from seqopt.search import SearchAborted
from seqopt.seeding import AGENT_STREAM, child_seed
from seqopt.store import read_records

# Composes the config from its overrides and runs it into a folder: the search that gets killed.
RUN_SCRIPT = """
import sys
from hydra import compose, initialize_config_module
from seqopt.cli import run_search
with initialize_config_module(config_module="seqopt.conf", version_base=None):
    cfg = compose("config", overrides=sys.argv[2:])
run_search(cfg, sys.argv[1])
"""

# A learn-to-count search with injected exceptions and NaN rewards, retried once.
FAULTY_ENV = ["env._target_=seqopt.executors.testing.FaultyObjective", "env.n=6", "+env.raise_rate=0.05",
              "+env.nan_rate=0.05"]
COMMON = ["progress=false", "seed=5", "retries=1", "max_failure_rate=null", *FAULTY_ENV]


def _records_without_timing(run_dir: Path) -> list[dict]:
    records = read_records(run_dir)
    for record in records:
        record.pop("timing", None)
    return records


def _compose(overrides: list[str]):
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        return compose("config", overrides=overrides)


def _run_script(run_dir: Path, overrides: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN_SCRIPT, str(run_dir), *overrides], capture_output=True,
                          text=True, timeout=600)


def _assert_killed_and_resumed_like_uninterrupted(tmp_path: Path, overrides: list[str], kill_after: int,
                                                  cut_last_line: bool = False) -> None:
    killed = _run_script(tmp_path / "resumed", [*overrides, f"+env.kill_after={kill_after}"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = read_records(tmp_path / "resumed")
    assert partial
    assert (tmp_path / "resumed" / CHECKPOINT_FILENAME).exists()
    if cut_last_line:  # as if the kill had hit the middle of the next line's write
        with open(tmp_path / "resumed" / "trials.jsonl", "ab") as store:
            store.write(b'{"trial":%d,"indices":[1,' % len(partial))

    run_search(_compose([*overrides, "resume=true"]), tmp_path / "resumed")
    run_search(_compose(overrides), tmp_path / "uninterrupted")

    resumed = _records_without_timing(tmp_path / "resumed")
    uninterrupted = _records_without_timing(tmp_path / "uninterrupted")
    assert len(partial) < len(resumed) == len(uninterrupted)
    assert resumed == uninterrupted
    assert any(r.get("attempts") == 2 for r in resumed)
    assert any(r["status"] == "failed" for r in resumed)


@pytest.mark.slow
@pytest.mark.parametrize(("capacity", "kill_after", "dedup"), [(1, 137, False), (4, 150, False), (1, 120, True)])
def test_kill_9_aging_evolution_resumes_identically(tmp_path, capacity, kill_after, dedup):
    overrides = [*COMMON, "agent=aging_evolution", "agent.population_size=20", "agent.sample_size=5",
                 "budget.trials=260", "checkpoint.every_trials=40", f"executor.capacity={capacity}",
                 f"dedup={str(dedup).lower()}"]
    _assert_killed_and_resumed_like_uninterrupted(tmp_path, overrides, kill_after)


@pytest.mark.slow
def test_kill_9_evo_nas_resumes_identically(tmp_path):
    if not (Path(seqopt.conf.__file__).parent / "agent" / "evo_nas_pqt.yaml").exists():
        pytest.skip("conf/agent/evo_nas_pqt.yaml is not installed")
    overrides = [*COMMON, "agent=evo_nas_pqt", "agent.population_size=20", "agent.sample_size=5",
                 "budget.trials=150", "checkpoint.every_trials=25"]
    _assert_killed_and_resumed_like_uninterrupted(tmp_path, overrides, kill_after=87)


@pytest.mark.slow
def test_kill_9_of_cli_resumes_identically(tmp_path):
    overrides = [*COMMON, "env.n=5", "+env.delay_seconds=0.004", "agent.population_size=20", "agent.sample_size=5",
                 "budget.trials=300", "checkpoint.every_trials=40"]
    command = [sys.executable, "-m", "seqopt.cli", *overrides]
    process = subprocess.Popen([*command, f"hydra.run.dir={tmp_path / 'resumed'}"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "resumed" / "trials.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if store.exists() and store.stat().st_size > 100 * 200:  # about 100 trials of about 200 bytes
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the search ended before it could be killed"
    assert len(read_records(store)) < 300

    resumed = subprocess.run([*command, "resume=true", f"hydra.run.dir={tmp_path / 'resumed'}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "300 trials" in resumed.stdout
    run_search(_compose(overrides), tmp_path / "uninterrupted")
    assert _records_without_timing(tmp_path / "resumed") == _records_without_timing(tmp_path / "uninterrupted")


def _search(run_dir, trials: int = 120, seed: int = 5, **options) -> Search:
    objective = options.pop("objective", None) or FaultyObjective(n=5, raise_rate=0.1, nan_rate=0.1)
    agent = AgingEvolution(objective.space, population_size=20, sample_size=5, seed=child_seed(seed, AGENT_STREAM))
    return Search(objective, agent, budget=Budget(trials=trials), seed=seed, run_dir=run_dir, **options)


def test_longer_budget_continues_a_finished_run(tmp_path):
    _search(tmp_path / "a", trials=80, checkpoint_every_trials=30).run()
    summary = _search(tmp_path / "a", trials=130, resume=True).run()
    _search(tmp_path / "b", trials=130).run()
    assert summary.num_trials == 130
    assert _records_without_timing(tmp_path / "a") == _records_without_timing(tmp_path / "b")


def test_store_without_checkpoint_is_replayed_from_the_start(tmp_path):
    _search(tmp_path / "a", trials=70).run()
    (tmp_path / "a" / CHECKPOINT_FILENAME).unlink()
    _search(tmp_path / "a", trials=110, resume=True).run()
    _search(tmp_path / "b", trials=110).run()
    assert _records_without_timing(tmp_path / "a") == _records_without_timing(tmp_path / "b")


def test_resume_empty_folder_starts_run(tmp_path):
    summary = _search(tmp_path / "new", trials=20, resume=True).run()
    assert summary.num_trials == 20


def test_existing_store_without_resume_rejected(tmp_path):
    _search(tmp_path, trials=10).run()
    with pytest.raises(FileExistsError, match=r"already contains a trial store\. Pass resume=True"):
        _search(tmp_path, trials=20).run()


def test_resume_with_other_seed_rejected(tmp_path):
    _search(tmp_path, trials=30).run()
    with pytest.raises(CheckpointError, match="written with seed=5, but this search has seed=6"):
        _search(tmp_path, trials=40, seed=6, resume=True).run()


def test_pickle_checkpoint_in_run_folder_is_rejected(tmp_path):
    _search(tmp_path, trials=30).run()
    marker = tmp_path / "code-ran"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # a pickle that runs a shell command
    (tmp_path / CHECKPOINT_FILENAME).write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a zip archive"):
        _search(tmp_path, trials=40, resume=True).run()
    assert not marker.exists()


@pytest.mark.slow
def test_truncated_store_line_is_tolerated_on_resume(tmp_path):
    overrides = [*COMMON, "agent.population_size=20", "agent.sample_size=5", "budget.trials=120",
                 "checkpoint.every_trials=25"]
    _assert_killed_and_resumed_like_uninterrupted(tmp_path, overrides, kill_after=70, cut_last_line=True)


def test_checkpoint_ahead_of_store_replays_the_store(tmp_path):
    _search(tmp_path / "a", trials=60).run()
    store = tmp_path / "a" / "trials.jsonl"
    lines = store.read_bytes().splitlines(keepends=True)
    store.write_bytes(b"".join(lines[:-5]))  # lines lost before they reached the disk
    _search(tmp_path / "a", trials=90, resume=True).run()
    _search(tmp_path / "b", trials=90).run()
    assert _records_without_timing(tmp_path / "a") == _records_without_timing(tmp_path / "b")


def test_retries_turn_transient_failures_into_results(tmp_path):
    objective = FaultyObjective(n=5, raise_rate=0.3, once_dir=str(tmp_path))
    summary = _search(tmp_path / "run", trials=40, objective=objective, retries=1).run()
    records = read_records(tmp_path / "run")
    assert summary.num_failed == 0
    assert summary.num_retries == sum(r.get("attempts", 1) - 1 for r in records) > 0

    again = FaultyObjective(n=5, raise_rate=0.3, once_dir=str(tmp_path / "run"))
    without_retries = _search(tmp_path / "none", trials=40, objective=again, retries=0).run()
    assert without_retries.num_failed == summary.num_retries


def test_max_failure_rate_stops_then_resume_finishes(tmp_path):
    failing = FaultyObjective(n=5, raise_rate=0.6)
    with pytest.raises(SearchAborted, match=r"finished trials failed \(\d+%\), more than max_failure_rate=0.3") as info:
        _search(tmp_path / "a", trials=100, objective=failing, max_failure_rate=0.3, failure_rate_min_trials=10).run()
    assert info.value.summary.stop_reason == "aborted: too many failed trials"
    assert info.value.summary.num_trials == len(read_records(tmp_path / "a")) < 100
    assert "Last error: RuntimeError: injected failure" in str(info.value)

    _search(tmp_path / "a", trials=100, objective=failing, resume=True).run()
    _search(tmp_path / "b", trials=100, objective=failing).run()
    assert _records_without_timing(tmp_path / "a") == _records_without_timing(tmp_path / "b")


def test_dedup_reuses_stored_results(tmp_path):
    objective = FaultyObjective(n=3)  # 27 sequences, so a search of 150 trials repeats many
    summary = _search(tmp_path, trials=150, objective=objective, dedup=True).run()
    records = read_records(tmp_path)
    by_trial = {r["trial"]: r for r in records}
    reused = [r for r in records if "reused_from" in r]
    assert summary.num_reused == len(reused) > 0
    assert objective.num_evaluations == 150 - len(reused) == summary.num_unique
    for record in reused:
        source = by_trial[record["reused_from"]]
        assert record["indices"] == source["indices"]
        assert record["reward"] == source["reward"]
        assert record["cost_seconds"] == 0.0


@pytest.mark.slow
def test_process_executor_resume_resubmits_in_flight_trials(tmp_path):
    overrides = ["progress=false", "seed=5", "env._target_=seqopt.executors.testing.FaultyObjective", "env.n=5",
                 "+env.delay_seconds=0.05", "+env.hang_rate=0.3", "+env.hang_seconds=0.2",
                 "executor=process", "executor.workers=3",
                 "agent.population_size=10", "agent.sample_size=3", "budget.trials=150", "checkpoint.every_trials=10"]
    process = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(tmp_path), *overrides],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "trials.jsonl"
    path = tmp_path / CHECKPOINT_FILENAME
    # Kill once a checkpoint records trials in flight. Equal trial times would keep the three workers
    # in lockstep, so a checkpoint (taken after a collection) could find none in flight. The "hangs"
    # of 0.2 s in 30 % of the trials break the lockstep, and a checkpoint without any is skipped.
    # The budget leaves the kill far from the end, whose last checkpoint has nothing in flight.
    deadline = time.monotonic() + 120
    in_flight: set[int] = set()
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and store.exists() and store.read_bytes().count(b"\n") >= 15:
            in_flight = {entry["trial"] for entry in load_checkpoint(path)["in_flight"]}
            if in_flight:
                os.kill(process.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    assert process.wait(timeout=60) == -signal.SIGKILL
    before = read_records(store)
    in_flight = {entry["trial"] for entry in load_checkpoint(path)["in_flight"]}  # the checkpoint resumed from
    assert in_flight

    run_search(_compose([*overrides, "resume=true"]), tmp_path)
    after = read_records(store)
    assert sorted(r["trial"] for r in after) == list(range(150))
    assert after[:len(before)] == before
    assert in_flight <= {r["trial"] for r in after}


def test_resume_switches_executor(tmp_path):
    # A resumed run may switch executors: the store, not the executor, defines what happened.
    _search(tmp_path, trials=30, executor=InlineExecutor()).run()
    summary = _search(tmp_path, trials=40, executor=ProcessExecutor(workers=1), resume=True).run()
    assert summary.num_trials == 40
    assert [r["trial"] for r in read_records(tmp_path)] == list(range(40))


def test_cli_resume_with_changed_agent_is_one_line(tmp_path):
    # Without a checkpoint the store is replayed, and the changed agent proposes other sequences.
    # The CLI reports that mismatch in one line instead of a traceback.
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "seqopt.cli", "progress=false", "env.n=5", "agent.population_size=10",
               "agent.sample_size=3", f"hydra.run.dir={run_dir}"]
    first = subprocess.run([*command, "budget.trials=40"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (run_dir / CHECKPOINT_FILENAME).unlink()
    resumed = subprocess.run([*command, "budget.trials=60", "agent.mutation_probability=0.9", "resume=true"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 1
    assert resumed.stderr.startswith("seqopt: error: Trial ")
    assert "resume with the original settings" in resumed.stderr
    assert "Traceback" not in resumed.stderr
