import json
import logging
import math

import numpy as np

from seqopt.objective import Evaluation
from seqopt.store import TRIALS_FILENAME, TrialStore, read_records, read_results
from seqopt.trial import Proposal, TrialResult


def _result(trial_id: int, reward: float = 0.5) -> TrialResult:
    return TrialResult(trial_id, Proposal((trial_id, 1)), Evaluation(reward=reward))


def _write(path, count: int) -> None:
    with TrialStore(path) as store:
        for trial_id in range(count):
            store.append(_result(trial_id))


def test_each_line_is_flushed_at_once(tmp_path):
    path = tmp_path / TRIALS_FILENAME
    store = TrialStore(path)
    store.append(_result(0))
    # Readable before close: a crash right now loses nothing that was appended.
    assert [r["trial"] for r in read_records(path)] == [0]
    store.close()


def test_truncated_last_line_is_skipped_with_warning(tmp_path, caplog):
    path = tmp_path / TRIALS_FILENAME
    _write(path, 3)
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"trial":3,"indices":[3,')
    with caplog.at_level(logging.WARNING, logger="seqopt.store"):
        records = read_records(tmp_path)
    assert [r["trial"] for r in records] == [0, 1, 2]
    assert "no newline" in caplog.text


def test_complete_json_without_newline_is_still_skipped(tmp_path):
    # A write cut just before its newline parses, but the store cannot tell it from a write in progress.
    path = tmp_path / TRIALS_FILENAME
    _write(path, 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert [r["trial"] for r in read_records(path)] == [0]


def test_reopening_drops_truncated_line_before_appending(tmp_path, caplog):
    path = tmp_path / TRIALS_FILENAME
    _write(path, 2)
    path.write_bytes(path.read_bytes() + b'{"trial":2,"ind')
    with caplog.at_level(logging.WARNING, logger="seqopt.store"):
        store = TrialStore(path)
    store.append(_result(7))
    store.close()
    assert "truncated line of 15 bytes" in caplog.text
    assert [r["trial"] for r in read_records(path)] == [0, 1, 7]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_corrupt_middle_line_is_skipped(tmp_path, caplog):
    path = tmp_path / TRIALS_FILENAME
    _write(path, 1)
    with open(path, "a", encoding="utf-8") as f:
        f.write("not json\n")
        f.write('["a list, not a record"]\n')
    _write_more = TrialStore(path)
    _write_more.append(_result(1))
    _write_more.close()
    with caplog.at_level(logging.WARNING, logger="seqopt.store"):
        assert [r["trial"] for r in read_records(path)] == [0, 1]
    assert "unreadable line 2" in caplog.text
    assert "line 3" in caplog.text


def test_non_finite_metrics_are_stored_as_null(tmp_path):
    path = tmp_path / TRIALS_FILENAME
    evaluation = Evaluation(reward=1.0, metrics={"loss": math.nan, "curve": np.array([0.5, np.inf]),
                                                 "accuracy": np.float32(0.75)})
    with TrialStore(path) as store:
        store.append(TrialResult(0, Proposal((0,)), evaluation))
    (record,) = read_records(path)
    assert record["metrics"] == {"loss": None, "curve": [0.5, None], "accuracy": 0.75}
    assert "NaN" not in path.read_text()


def test_failed_trial_round_trips(tmp_path):
    path = tmp_path / TRIALS_FILENAME
    with TrialStore(path) as store:
        store.append(TrialResult(4, Proposal((1, 2), parent=3, mask=(True, False), origin="mutation"),
                                 Evaluation.failed("worker died")))
    (result,) = read_results(path)
    assert result.trial_id == 4
    assert math.isnan(result.reward)
    assert result.evaluation.error == "worker died"
    assert result.proposal == Proposal((1, 2), parent=3, mask=(True, False), origin="mutation")
