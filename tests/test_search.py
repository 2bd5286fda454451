import json
import math

import pytest

from seqopt import Budget, ChoiceSpace, Evaluation, FunctionObjective, Search
from seqopt.agents import AgingEvolution, RandomSearch
from seqopt.envs import LearnToCount
from seqopt.seeding import AGENT_STREAM, child_seed
from seqopt.store import read_records


def _run(tmp_path, seed: int, name: str, trials: int = 300, n: int = 8):
    objective = LearnToCount(n)
    agent = AgingEvolution(objective.space, population_size=40, sample_size=8, seed=child_seed(seed, AGENT_STREAM))
    run_dir = tmp_path / name
    summary = Search(objective, agent, budget=Budget(trials=trials), seed=seed, run_dir=run_dir).run()
    records = read_records(run_dir / "trials.jsonl")
    for record in records:
        record.pop("timing", None)
    return summary, records


def test_same_seed_same_store(tmp_path):
    _, first = _run(tmp_path, seed=3, name="a")
    _, second = _run(tmp_path, seed=3, name="b")
    assert len(first) == 300
    assert first == second


def test_different_seed_differs(tmp_path):
    _, first = _run(tmp_path, seed=3, name="a")
    _, second = _run(tmp_path, seed=4, name="b")
    assert [r["indices"] for r in first] != [r["indices"] for r in second]


def test_store_records_and_summary(tmp_path):
    summary, records = _run(tmp_path, seed=0, name="run", trials=120)
    assert [r["trial"] for r in records] == list(range(120))
    best = max(records, key=lambda r: r["reward"])
    assert summary.best_reward == pytest.approx(best["reward"])
    assert summary.best_trial == best["trial"]
    assert summary.best_values == {f"a{i + 1}": v for i, v in enumerate(best["values"])}
    assert summary.num_trials == 120
    assert summary.trials_per_second > 0
    last50 = [r["reward"] for r in records[-50:]]
    assert summary.moving_average == pytest.approx(sum(last50) / 50)
    first = records[0]
    assert first["values"] == [i + 1 for i in first["indices"]]
    assert first["status"] == "ok"
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["best_reward"] == pytest.approx(summary.best_reward)


def test_search_without_run_dir_keeps_history():
    objective = LearnToCount(4)
    search = Search(objective, RandomSearch(objective.space, seed=0), budget=Budget(trials=25), seed=0)
    summary = search.run()
    assert len(search.history) == 25
    assert summary.num_trials == 25
    assert summary.best_reward == max(r.reward for r in search.history)


def _flaky(values):
    if values["x"] == 2:
        raise RuntimeError("simulated training crash")
    if values["x"] == 1:
        return math.nan
    return float(values["x"])


def test_failed_trials_recorded_and_search_continues(tmp_path):
    objective = FunctionObjective(ChoiceSpace.from_dict({"x": [0, 1, 2, 3]}), _flaky)
    agent = RandomSearch(objective.space, seed=0)
    summary = Search(objective, agent, budget=Budget(trials=60), seed=0, run_dir=tmp_path).run()
    records = read_records(tmp_path)
    assert len(records) == 60
    by_value = {r["values"][0]: r for r in records}
    assert by_value[2]["status"] == "failed"
    assert "simulated training crash" in by_value[2]["error"]
    assert by_value[1]["status"] == "failed"
    assert "non-finite reward" in by_value[1]["error"]
    assert by_value[1]["reward"] is None
    assert summary.best_reward == 3.0
    assert summary.num_failed == sum(r["status"] == "failed" for r in records)


def test_cost_budget_stops_search():
    space = ChoiceSpace.from_dict({"x": [0, 1]})
    objective = FunctionObjective(space, lambda values: Evaluation(reward=1.0, cost_seconds=10.0))
    search = Search(objective, RandomSearch(space, seed=0), budget=Budget(trials=None, cost_seconds=95.0), seed=0)
    summary = search.run()
    assert summary.num_trials == 10
    assert summary.cost_seconds == 100.0
    assert summary.stop_reason == "cost budget spent"


def test_budget_needs_a_limit():
    with pytest.raises(ValueError, match="at least one limit"):
        Budget(trials=None)
    with pytest.raises(ValueError, match=r"budget.trials must be a positive number or null, got 0"):
        Budget(trials=0)


def test_agent_and_objective_spaces_must_match():
    with pytest.raises(ValueError, match="differs from objective space"):
        Search(LearnToCount(4), RandomSearch(LearnToCount(5).space))


def test_total_cost_seconds_accumulates(tmp_path):
    space = ChoiceSpace.from_dict({"x": [0, 1]})
    objective = FunctionObjective(space, lambda values: Evaluation(reward=1.0, cost_seconds=2.5))
    Search(objective, RandomSearch(space, seed=0), budget=Budget(trials=4), seed=0, run_dir=tmp_path).run()
    assert [r["total_cost_seconds"] for r in read_records(tmp_path)] == [2.5, 5.0, 7.5, 10.0]


def test_summary_names_best_trial_metrics():
    space = ChoiceSpace.from_dict({"x": [0, 1, 2]})
    objective = FunctionObjective(
        space, lambda values: Evaluation(reward=values["x"], metrics={"label": f"x{values['x']}"})
    )
    summary = Search(objective, RandomSearch(space, seed=0), budget=Budget(trials=30), seed=0).run()
    assert summary.best_metrics == {"label": "x2"}
    assert "Best trial metrics: label=x2" in summary.format()
