import os

import pytest

from seqopt import Budget, Search
from seqopt.agents import RandomSearch
from seqopt.executors import InlineExecutor, RayExecutor
from seqopt.executors.testing import FaultyObjective
from seqopt.seeding import AGENT_STREAM, OBJECTIVE_STREAM, child_generator, child_seed
from seqopt.store import read_records

ray = pytest.importorskip("ray")

SEED = 11


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _run(objective, executor, run_dir, trials: int, **options) -> list[dict]:
    agent = RandomSearch(objective.space, seed=child_seed(SEED, AGENT_STREAM))
    Search(objective, agent, budget=Budget(trials=trials), seed=SEED, run_dir=run_dir, executor=executor,
           **options).run()
    return read_records(run_dir)


def _by_trial(records: list[dict]) -> dict[int, tuple]:
    return {r["trial"]: (tuple(r["indices"]), r["status"], r["reward"], (r["error"] or "").split("\n")[0])
            for r in records}


@pytest.mark.slow
def test_ray_results_match_inline(local_ray, tmp_path):
    objective = FaultyObjective(n=5, raise_rate=0.15, nan_rate=0.15)
    inline = _run(objective, InlineExecutor(), tmp_path / "inline", trials=30)
    distributed = _run(objective, RayExecutor(max_in_flight=3), tmp_path / "ray", trials=30)
    assert len(distributed) == 30
    assert _by_trial(distributed) == _by_trial(inline)
    assert ray.is_initialized()  # an executor never shuts down a Ray instance it did not start


@pytest.mark.slow
def test_ray_killed_worker_and_timeout_become_failed_trials(local_ray, tmp_path):
    objective = FaultyObjective(n=5, hang_rate=0.15, kill_rate=0.15, hang_seconds=60)
    records = _run(objective, RayExecutor(max_in_flight=2), tmp_path, trials=16, trial_timeout=1.0)
    assert sorted(r["trial"] for r in records) == list(range(16))
    faults = {r["trial"]: objective.draw_fault(child_generator(SEED, OBJECTIVE_STREAM, r["trial"])) for r in records}
    assert set(faults.values()) == {None, "hang", "kill"}
    for record in records:
        fault = faults[record["trial"]]
        if fault is None:
            assert record["status"] == "ok"
        elif fault == "hang":
            assert "trial timed out after 1 s" in record["error"]
        else:
            assert "Ray task failed" in record["error"]
            assert "WorkerCrashedError" in record["error"]


def test_ray_executor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_in_flight must be an int >= 1, got 0"):
        RayExecutor(max_in_flight=0)
    with pytest.raises(ValueError, match="num_gpus_per_trial must be a number >= 0, got -1"):
        RayExecutor(num_gpus_per_trial=-1)


def test_ray_resources_follow_hardware_config():
    gpu = RayExecutor(hardware={"name": "gpu", "threads": 4})
    assert (gpu.num_cpus_per_trial, gpu.num_gpus_per_trial) == (4.0, 1.0)
    cpu = RayExecutor(hardware={"name": "cpu", "threads": None})
    assert (cpu.num_cpus_per_trial, cpu.num_gpus_per_trial) == (1.0, 0.0)
    explicit = RayExecutor(num_cpus_per_trial=0.5, num_gpus_per_trial=0.25, hardware={"name": "gpu"})
    assert (explicit.num_cpus_per_trial, explicit.num_gpus_per_trial) == (0.5, 0.25)
