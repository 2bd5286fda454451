"""NAS-Bench-101: hash, pruning, the record format and the objective on a small file written here."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from seqopt import Budget, Search, Status
from seqopt.agents import RandomSearch
from seqopt.data import MissingDataError
from seqopt.envs.nasbench101 import (
    EDGE_SLOTS,
    Cell,
    EvaluationData,
    ModelMetrics,
    NASBench101,
    RecordFormatError,
    Row,
    cell_from_indices,
    cell_hash,
    graph_hash,
    indices_from_cell,
    invalid_reason,
    load_table,
    prune,
    read_table,
    write_rows,
)
from seqopt.envs.nasbench101.records import crc32c, frame_tfrecord, iter_tfrecords

IN, OUT = "input", "output"
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

# The Inception-like cell of the NAS-Bench-101 README, and the isomorphic form in which the
# official table stores it (vertex order differs).
README_MATRIX = np.array([[0, 1, 1, 1, 0, 1, 0],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 1, 0, 0],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 0]])
README_OPS = (IN, C1, C3, C3, C3, MP, OUT)
STORED_MATRIX = np.array([[0, 1, 1, 1, 1, 0, 0],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 1, 0],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 0]])
STORED_OPS = (IN, C3, C1, MP, C3, C3, OUT)
# The hash published for this cell in Google's unified_functional_hashing NAS-Bench-101 tests.
README_HASH = "28cfc7874f6d200472e1a9dcd8650aa0"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def test_hash_of_chain_by_hand() -> None:
    # input -> conv3x3 -> output; labels -1, 0, -2; (out-degree, in-degree, label) per vertex.
    h = [_md5("(1, 0, -1)"), _md5("(1, 1, 0)"), _md5("(0, 1, -2)")]
    for _ in range(3):
        h = [_md5("|" + h[1] + "|" + h[0]), _md5(h[0] + "|" + h[2] + "|" + h[1]), _md5(h[1] + "||" + h[2])]
    expected = _md5(str(sorted(h)))
    matrix = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert graph_hash(matrix, [-1, 0, -2]) == expected
    assert cell_hash(Cell(matrix, (IN, C3, OUT))) == expected


def test_hash_of_readme_cell_is_published_value() -> None:
    assert cell_hash(Cell(README_MATRIX, README_OPS)) == README_HASH
    assert cell_hash(Cell(STORED_MATRIX, STORED_OPS)) == README_HASH


def test_hash_is_invariant_to_vertex_order() -> None:
    labels = Cell(README_MATRIX, README_OPS).labels
    for middle in itertools.permutations(range(1, 6)):
        order = [0, *middle, 6]  # new vertex i is old vertex order[i]
        matrix = README_MATRIX[np.ix_(order, order)]
        assert graph_hash(matrix, [labels[i] for i in order]) == README_HASH


def test_hash_differs_for_other_cells() -> None:
    base = Cell(README_MATRIX, README_OPS)
    seen = {cell_hash(base)}
    for vertex in range(1, 6):
        for op in (C3, C1, MP):
            if op == README_OPS[vertex]:
                continue
            ops = list(README_OPS)
            ops[vertex] = op
            changed = cell_hash(Cell(README_MATRIX, tuple(ops)))
            assert changed != README_HASH, (vertex, op)
            seen.add(changed)
    for source, target in zip(*np.nonzero(README_MATRIX)):
        matrix = README_MATRIX.copy()
        matrix[source, target] = 0
        _, reason = invalid_reason(Cell(matrix, README_OPS))
        if reason is None:
            assert cell_hash(Cell(matrix, README_OPS)) != README_HASH, (source, target)
    assert len(seen) > 5
    chain_a = cell_hash(Cell(np.eye(4, k=1, dtype=int), (IN, C3, C1, OUT)))
    chain_b = cell_hash(Cell(np.eye(4, k=1, dtype=int), (IN, C1, C3, OUT)))
    assert chain_a != chain_b


def test_pruning_removes_dangling_vertices() -> None:
    matrix = np.zeros((7, 7), dtype=int)
    matrix[0, 1] = matrix[1, 6] = 1  # input -> 1 -> output
    matrix[0, 2] = 1  # vertex 2 reaches nothing
    matrix[3, 6] = 1  # vertex 3 is not reachable from the input
    matrix[4, 5] = 1  # vertices 4 and 5 are isolated from both
    cell = Cell(matrix, (IN, C1, C3, C3, MP, MP, OUT))
    pruned = prune(cell)
    assert pruned is not None
    assert pruned.operations == (IN, C1, OUT)
    assert pruned.matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert cell_hash(cell) == cell_hash(Cell(np.eye(3, k=1, dtype=int), (IN, C1, OUT)))


def test_disconnected_cell_is_invalid() -> None:
    matrix = np.zeros((7, 7), dtype=int)
    matrix[0, 1] = matrix[2, 6] = 1
    pruned, reason = invalid_reason(Cell(matrix, (IN, C3, C3, C3, C3, C3, OUT)))
    assert pruned is None
    assert reason == "the input is not connected to the output"
    with pytest.raises(ValueError, match="invalid NAS-Bench-101 cell"):
        cell_hash(Cell(matrix, (IN, C3, C3, C3, C3, C3, OUT)))


def test_edge_limit_applies_after_pruning() -> None:
    matrix = np.zeros((7, 7), dtype=int)
    for source, target in [(0, 1), (0, 2), (0, 3), (0, 4), (1, 6), (2, 6), (3, 6), (4, 6), (1, 2), (2, 3)]:
        matrix[source, target] = 1
    _, reason = invalid_reason(Cell(matrix, (IN, C3, C3, C3, C3, C3, OUT)))
    assert reason == "10 edges after pruning, more than the limit of 9"
    matrix[0, 5] = 1  # a dangling vertex's edge is pruned away and does not count
    matrix[4, 6] = 0
    matrix[4, 5] = 1
    pruned, reason = invalid_reason(Cell(matrix, (IN, C3, C3, C3, C3, C3, OUT)))
    assert reason is None
    assert pruned is not None and pruned.num_edges == 8


def test_encoding_round_trip() -> None:
    indices = indices_from_cell(Cell(README_MATRIX, README_OPS))
    assert len(indices) == 26
    cell = cell_from_indices(indices)
    assert cell.matrix.tolist() == README_MATRIX.tolist()
    assert cell.operations == README_OPS


def test_cell_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="upper-triangular"):
        Cell(np.ones((3, 3), dtype=int), (IN, C3, OUT))
    with pytest.raises(ValueError, match="Unknown cell operations"):
        Cell(np.eye(3, k=1, dtype=int), (IN, "conv5x5", OUT))
    with pytest.raises(ValueError, match="26 entries"):
        cell_from_indices([0] * 25)


# --- Record format -------------------------------------------------------------------------------

def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def _metrics(final_time: float, valid: float, test: float, parameters: int) -> ModelMetrics:
    return ModelMetrics(
        evaluation_data=[EvaluationData(0.0, 0.0, 0.1, 0.1, 0.1),
                         EvaluationData(54.0, final_time / 2, 0.8, valid - 0.05, test - 0.05),
                         EvaluationData(108.0, final_time, 1.0, valid, test, "gs://bucket/model.ckpt-1")],
        trainable_parameters=parameters, total_time=final_time * 1.2)


def test_model_metrics_match_protobuf_library() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="model_metrics_check.proto", package="nasbench", syntax="proto2")
    evaluation = file.message_type.add(name="EvaluationData")
    for number, name in enumerate(["current_epoch", "training_time", "train_accuracy", "validation_accuracy",
                                   "test_accuracy"], start=1):
        evaluation.field.add(name=name, number=number, type=proto.TYPE_DOUBLE, label=proto.LABEL_OPTIONAL)
    evaluation.field.add(name="checkpoint_path", number=6, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    metrics = file.message_type.add(name="ModelMetrics")
    metrics.field.add(name="evaluation_data", number=1, type=proto.TYPE_MESSAGE,
                      type_name=".nasbench.EvaluationData", label=proto.LABEL_REPEATED)
    metrics.field.add(name="trainable_parameters", number=2, type=proto.TYPE_INT32, label=proto.LABEL_OPTIONAL)
    metrics.field.add(name="total_time", number=3, type=proto.TYPE_DOUBLE, label=proto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics"))

    ours = _metrics(1155.85302734375, 0.9376001358032227, 0.9311898946762085, 2694282)
    official = message_class.FromString(ours.encode())
    assert official.trainable_parameters == 2694282
    assert official.evaluation_data[2].validation_accuracy == 0.9376001358032227
    assert official.evaluation_data[2].checkpoint_path == "gs://bucket/model.ckpt-1"
    assert ModelMetrics.decode(official.SerializeToString()) == ours

    official.trainable_parameters = -5
    assert ModelMetrics.decode(official.SerializeToString()).trainable_parameters == -5


@pytest.mark.slow
def test_tfrecord_framing_matches_tensorflow(tmp_path: Path) -> None:
    import tensorflow as tf

    payloads = [b"", b"x", b"record three" * 100]
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(b"".join(frame_tfrecord(p) for p in payloads))
    assert [bytes(r) for r in tf.data.TFRecordDataset(str(ours)).as_numpy_iterator()] == payloads
    theirs = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for payload in payloads:
            writer.write(payload)
    assert list(iter_tfrecords(theirs, check_crc=True)) == payloads


def test_truncated_and_foreign_files_are_rejected(tmp_path: Path) -> None:
    good = frame_tfrecord(b"payload")
    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(good + good[:-3])
    with pytest.raises(RecordFormatError, match="truncated"):
        list(iter_tfrecords(truncated))
    foreign = tmp_path / "foreign.tfrecord"
    foreign.write_bytes(b"this is a text file, not records\n")
    with pytest.raises(RecordFormatError, match="not a TFRecord file"):
        list(iter_tfrecords(foreign))
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(good[:-6] + b"X" + good[-5:])
    with pytest.raises(RecordFormatError, match="bad payload checksum"):
        list(iter_tfrecords(corrupt, check_crc=True))


# --- A small file in the official format ---------------------------------------------------------

CHAIN = Cell(np.eye(3, k=1, dtype=int), (IN, C3, OUT))
RUNS = {  # cell -> three (training seconds, validation accuracy, test accuracy) runs
    "readme": [(1155.85302734375, 0.9376001358032227, 0.9311898946762085), (1160.0, 0.9400, 0.9350),
               (1150.0, 0.9390, 0.9330)],
    "chain": [(300.0, 0.80, 0.79), (310.0, 0.82, 0.81), (305.0, 0.81, 0.80)],
}


def _small_rows() -> list[Row]:
    rows = []
    for key, cell in (("readme", Cell(STORED_MATRIX, STORED_OPS)), ("chain", CHAIN)):
        for seconds, valid, test in RUNS[key]:
            rows.append(Row(cell_hash(cell), 108, cell.matrix, list(cell.operations),
                            _metrics(seconds, valid, test, 2694282 if key == "readme" else 1000)))
    # A 4-epoch record of the chain, which the 108-epoch table must leave out.
    rows.append(Row(cell_hash(CHAIN), 4, CHAIN.matrix, list(CHAIN.operations), _metrics(10.0, 0.3, 0.3, 1000)))
    return rows


@pytest.fixture
def small_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(tmp_path / "cache"))
    path = tmp_path / "small.tfrecord"
    write_rows(path, _small_rows())
    return path


def test_reader_keeps_108_epoch_runs(small_file: Path) -> None:
    table = read_table(small_file)
    assert len(table) == 2
    row = table.row_of[README_HASH]
    assert table.num_repeats[row] == 3
    assert table.training_time[row].tolist() == [r[0] for r in RUNS["readme"]]
    assert table.validation_accuracy[row].tolist() == [r[1] for r in RUNS["readme"]]
    assert table.test_accuracy[row].tolist() == [r[2] for r in RUNS["readme"]]
    assert table.trainable_parameters[row] == 2694282
    assert table.operations(row) == list(STORED_OPS)
    assert table.adjacency[row].tolist() == STORED_MATRIX.tolist()
    assert read_table(small_file, epochs=4).validation_accuracy.tolist() == [[0.3]]
    with pytest.raises(RecordFormatError, match=r"no record with 36 epochs; epoch budgets found: \[4, 108\]"):
        read_table(small_file, epochs=36)


def test_table_cache_is_reused_and_invalidated(small_file: Path, tmp_path: Path) -> None:
    first = load_table(small_file)
    cached = list((tmp_path / "cache" / "nas-bench-101").glob("*.npz"))
    assert len(cached) == 1
    second = load_table(small_file)
    for name, values in first.arrays().items():
        np.testing.assert_array_equal(values, second.arrays()[name])
    write_rows(small_file, _small_rows()[:3])  # only the README cell now
    os.utime(small_file, ns=(1, 1))
    assert len(load_table(small_file)) == 1


def test_objective_samples_a_repeat(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file), mode="sample")
    indices = indices_from_cell(Cell(README_MATRIX, README_OPS))
    for seed in range(6):
        evaluation = objective.evaluate(indices, np.random.default_rng(seed))
        repeat = int(np.random.default_rng(seed).integers(3))
        seconds, valid, test = RUNS["readme"][repeat]
        assert evaluation.metrics["hash"] == README_HASH
        assert evaluation.metrics["repeat"] == repeat
        assert evaluation.reward == valid
        assert evaluation.cost_seconds == seconds
        assert evaluation.metrics["test_accuracy"] == test
        assert evaluation.metrics["mean_test_accuracy"] == pytest.approx(np.mean([r[2] for r in RUNS["readme"]]))
        assert evaluation.metrics["test_regret"] == pytest.approx(0.0)


def test_objective_pickles_without_table(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file))
    data = pickle.dumps(objective)
    assert len(data) < 20_000
    copy = pickle.loads(data)
    indices = indices_from_cell(Cell(README_MATRIX, README_OPS))
    assert copy.evaluate(indices, np.random.default_rng(1)) == objective.evaluate(indices, np.random.default_rng(1))


def test_objective_mean_mode(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file), mode="mean")
    chain = [int(edge in ((0, 1), (1, 6))) for edge in EDGE_SLOTS]  # vertices 2-5 are pruned away
    evaluation = objective.evaluate((*chain, 0, 2, 2, 2, 2))
    assert evaluation.metrics["repeat"] == -1
    assert evaluation.reward == pytest.approx(0.81)
    assert evaluation.cost_seconds == pytest.approx(305.0)
    best_mean_test = np.mean([r[2] for r in RUNS["readme"]])
    assert evaluation.metrics["test_regret"] == pytest.approx(best_mean_test - 0.80)


def test_invalid_cell_costs_nothing(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file), invalid_reward=-1.0)
    evaluation = objective.evaluate(tuple([0] * 21 + [0] * 5), np.random.default_rng(0))
    assert evaluation.status is Status.INVALID
    assert evaluation.reward == -1.0
    assert evaluation.cost_seconds == 0.0
    assert evaluation.metrics["invalid_reason"] == "the input is not connected to the output"


def test_valid_cell_missing_from_table_fails(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file))
    direct = [int(edge == (0, 6)) for edge in EDGE_SLOTS]  # input -> output: valid, but not in the small file
    evaluation = objective.evaluate((*direct, 0, 0, 0, 0, 0), np.random.default_rng(0))
    assert evaluation.status is Status.FAILED
    assert "not in" in (evaluation.error or "")


def test_resample_policy_is_bounded(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file), invalid_policy="resample", max_resamples=3)
    rng = np.random.default_rng(0)
    disconnected = tuple([0] * 26)
    statuses = set()
    for _ in range(300):
        evaluation = objective.evaluate(disconnected, rng)
        statuses.add(evaluation.status)
        assert 1 <= evaluation.metrics["resamples"] <= 3
        if evaluation.status is Status.INVALID:
            assert "no valid cell in 3 redraws" in evaluation.metrics["invalid_reason"]
            assert evaluation.cost_seconds == 0.0
        else:
            assert invalid_reason(cell_from_indices(evaluation.metrics["evaluated_indices"]))[1] is None
    assert Status.INVALID in statuses
    assert Status.FAILED in statuses  # valid redraws that the small file lacks

    never = NASBench101(path=str(small_file), invalid_policy="resample", max_resamples=0)
    assert never.evaluate(disconnected, rng).status is Status.INVALID


def test_budget_charges_training_time(small_file: Path) -> None:
    objective = NASBench101(path=str(small_file))
    search = Search(objective, RandomSearch(objective.space, seed=0), budget=Budget(trials=300), seed=0)
    search.run()
    charged = 0.0
    for result in search.history:
        evaluation = result.evaluation
        if evaluation.status is Status.OK:
            row = objective.table.row_of[evaluation.metrics["hash"]]
            assert evaluation.cost_seconds == objective.table.training_time[row, evaluation.metrics["repeat"]]
        else:
            assert evaluation.cost_seconds == 0.0
        charged += evaluation.cost_seconds
    assert search.stats.cost_seconds == pytest.approx(charged)


def test_bad_arguments_name_the_rule(small_file: Path) -> None:
    with pytest.raises(ValueError, match="invalid_policy must be one of"):
        NASBench101(path=str(small_file), invalid_policy="retry")
    with pytest.raises(ValueError, match="max_resamples must be an int >= 0"):
        NASBench101(path=str(small_file), max_resamples=-1)
    with pytest.raises(ValueError, match="invalid_reward must be a finite number"):
        NASBench101(path=str(small_file), invalid_reward=math.nan)
    with pytest.raises(FileNotFoundError, match="seqopt-data download nas-bench-101"):
        NASBench101(path=str(small_file.with_name("absent.tfrecord")))


def test_missing_official_file_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQOPT_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(MissingDataError) as raised:
        NASBench101()
    message = str(raised.value)
    assert str(tmp_path / "cache" / "nas-bench-101" / "nasbench_only108.tfrecord") in message
    assert "seqopt-data download nas-bench-101" in message
    assert "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord" in message


def test_env_passes_checkers(small_file: Path) -> None:
    env = gym.make("seqopt/NASBench101-v0", path=str(small_file))
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.reset(seed=0)
    for action in indices_from_cell(Cell(README_MATRIX, README_OPS)):
        _, reward, terminated, _, info = env.step(action)
    assert terminated
    assert info["metrics"]["hash"] == README_HASH
    assert reward in [r[1] for r in RUNS["readme"]]
