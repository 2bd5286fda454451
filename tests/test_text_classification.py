"""Text classification search: space, datasets, features, model choices, trials, configs, baseline."""

import math
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from seqopt.data.files import MissingDataError
from seqopt.envs.text_classification import (
    DATASETS,
    ModelConfig,
    TextClassification,
    load_dataset,
    roc_auc,
    text_search_space,
    tfidf_baseline,
)
from seqopt.envs.text_classification.datasets import load_sms_spam
from seqopt.envs.text_classification.features import build_token_features, glove_matrix, tokenize
from seqopt.objective import Status

needs_data = pytest.mark.skipif(not os.environ.get("SEQOPT_DATA_MIRROR"), reason="SEQOPT_DATA_MIRROR is not set")

BASE_VALUES = dict(
    embedding_module="glove-50d", fine_tune_embeddings=True, use_convolution=True, convolution_activation="relu",
    convolution_batch_norm=False, convolution_max_ngram_length=2, convolution_dropout_rate=0.1,
    convolution_filters=32, hidden_layers=1, hidden_size=64, hidden_activation="relu",
    hidden_normalization="none", hidden_dropout_rate=0.1, deep_optimizer="lazy_adam", lazy_adam_batch_size=128,
    deep_learning_rate=0.01, deep_l2_weight=0.0, wide_learning_rate=0.05, wide_l1_weight=0.0,
    training_samples=100_000,
)


def _config(**changes: object) -> ModelConfig:
    return ModelConfig.from_values({**BASE_VALUES, **changes})


def _indices(config: ModelConfig) -> tuple[int, ...]:
    space = text_search_space()
    return space.encode([getattr(config, name) for name in space.names])


# --- search space -----------------------------------------------------------------------------

def test_space_has_table_8_choices() -> None:
    space = text_search_space()
    assert len(space) == 20
    assert space.cardinalities.tolist() == [3, 2, 2, 6, 2, 2, 5, 3, 5, 3, 6, 3, 7, 2, 2, 6, 4, 6, 4, 6]
    values = space.decode_dict(tuple(0 for _ in space.names))
    assert values["training_samples"] == 100_000
    assert space.choices[space.names.index("hidden_layers")].values == (0, 1, 2, 3, 5)


def test_config_rejects_bad_value() -> None:
    with pytest.raises(ValueError, match=r"'hidden_size'.*value 100 is not allowed.*\[64, 128, 256\]"):
        _config(hidden_size=100)


def test_config_rejects_missing_and_unknown_names() -> None:
    values = {**BASE_VALUES, "dropout": 0.1}
    del values["hidden_size"]
    with pytest.raises(ValueError, match=r"missing \['hidden_size'\], unknown \['dropout'\]"):
        ModelConfig.from_values(values)


@needs_data
def test_objective_rejects_bad_indices() -> None:
    objective = TextClassification("sms_spam")
    with pytest.raises(ValueError, match=r"Position 0 \('embedding_module'\): index 7 is out of range"):
        objective.evaluate((7,) + (0,) * 19, np.random.default_rng(0))


def test_inactive_choices_follow_documented_rules() -> None:
    sentence = _config(embedding_module="minilm-l6-384", hidden_layers=0, deep_optimizer="adagrad")
    assert set(sentence.inactive_choices()) == {
        "fine_tune_embeddings", "use_convolution", "convolution_activation", "convolution_batch_norm",
        "convolution_max_ngram_length", "convolution_dropout_rate", "convolution_filters", "hidden_size",
        "hidden_activation", "hidden_normalization", "hidden_dropout_rate", "lazy_adam_batch_size"}
    assert _config().inactive_choices() == []
    assert _config(deep_optimizer="adagrad").batch_size == 128
    assert _config(lazy_adam_batch_size=256).batch_size == 256


# --- objective arguments and data -------------------------------------------------------------

def test_objective_rejects_unknown_dataset() -> None:
    with pytest.raises(ValueError, match=r"Unknown text classification dataset 'smsspam'.*Did you mean 'sms_spam'"):
        TextClassification("smsspam")


@pytest.mark.parametrize(("argument", "value"), [("sample_scale", 0.0), ("max_train_examples", 0),
                                                 ("max_tokens", -1), ("max_vocabulary", 2)])
def test_objective_rejects_bad_argument(argument: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"{argument} must be"):
        TextClassification("sms_spam", **{argument: value})  # type: ignore[arg-type]


def test_missing_dataset_names_file_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQOPT_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(MissingDataError, match=r"sms-spam-collection/SMSSpamCollection.*was not found"):
        load_sms_spam()
    with pytest.raises(MissingDataError, match=r"20-newsgroups/20news-bydate-train.tar.gz.*was not found"):
        TextClassification("20newsgroups")


# Classes and documents per task after the conversion that DATASETS documents.
EXPECTED = {
    "sms_spam": (2, 5574), "mcdonalds": (9, 1471), "reuters": (72, 10789), "brown": (15, 500),
    "20newsgroups": (20, 18846), "consumer_complaints": (13, 1532), "news_aggregator": (4, 12962),
}


@needs_data
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("reuters", "20newsgroups") else n
                                  for n in sorted(EXPECTED)])
def test_loader_classes_and_disjoint_split(name: str) -> None:
    dataset = load_dataset(name)
    num_classes, num_documents = EXPECTED[name]
    assert dataset.num_classes == num_classes
    assert len(dataset.texts) == num_documents
    splits = [set(dataset.splits[s].tolist()) for s in ("train", "validation", "test")]
    assert not splits[0] & splits[1]
    assert not splits[0] & splits[2]
    assert not splits[1] & splits[2]
    assert sum(len(s) for s in splits) == num_documents
    assert all(len(s) > 0 for s in splits)
    assert set(DATASETS) == set(EXPECTED)


@needs_data
def test_random_split_is_fixed_by_split_seed() -> None:
    first, again, other = load_sms_spam(0), load_sms_spam(0), load_sms_spam(1)
    np.testing.assert_array_equal(first.splits["test"], again.splits["test"])
    assert not np.array_equal(first.splits["test"], other.splits["test"])
    assert len(first.splits["train"]) == round(0.8 * 5574)


# --- features and metrics ---------------------------------------------------------------------

def test_tokenize_and_token_features() -> None:
    assert tokenize("Win a PRIZE, now!") == ["win", "a", "prize", ",", "now", "!"]
    features = build_token_features(["a b a c", "b zz"], ["a b a c"], max_vocabulary=10, max_tokens=3,
                                    max_wide_tokens=10)
    assert features.vocabulary == ("<pad>", "<unk>", "a", "b", "c")
    np.testing.assert_array_equal(features.deep_ids, [[2, 3, 2], [3, 1, 0]])
    np.testing.assert_array_equal(features.wide_ids, [[2, 3, 4], [3, 1, 0]])


@needs_data
def test_glove_matrix_known_vector() -> None:
    matrix = glove_matrix(("<pad>", "<unk>", "the", "qqqxyzzy"))
    np.testing.assert_allclose(matrix[2, :3], [0.418, 0.24968, -0.41242], atol=2e-3)
    assert not matrix[[0, 1, 3]].any()


def test_roc_auc_known_answers() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])) == 1.0
    assert roc_auc(np.array([0, 1]), np.array([[0.2, 0.8], [0.7, 0.3]])) == 0.0
    # Class 0 separates perfectly (AUC 1) and class 1 wins 2.5 of its 4 pairs (AUC 0.625). Class 2
    # has no example in the labels, so it is left out of the macro average.
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    assert roc_auc(labels, probabilities) == pytest.approx(0.8125)


# --- model choices ----------------------------------------------------------------------------

tf = pytest.importorskip("tensorflow")


def _towers(config: ModelConfig, vocabulary: int = 30, classes: int = 3):  # type: ignore[no-untyped-def]
    from seqopt.envs.text_classification.model import DeepTower

    matrix = np.random.default_rng(5).normal(size=(vocabulary, 50)).astype(np.float32)
    deep = DeepTower(config, classes, matrix if config.uses_tokens else None, np.random.default_rng(7))
    if config.uses_tokens:
        inputs = np.random.default_rng(3).integers(1, vocabulary, size=(6, 9)).astype(np.int32)
        inputs[0, 4:] = 0
    else:
        dim = 512 if config.embedding_module == "use-multilingual-512" else 384
        inputs = np.random.default_rng(3).normal(size=(6, dim)).astype(np.float32)
    return deep, deep(inputs, training=True).numpy()


@pytest.mark.parametrize(("choice", "other"), [
    ("convolution_activation", "tanh"), ("convolution_batch_norm", True), ("convolution_max_ngram_length", 3),
    ("convolution_dropout_rate", 0.4), ("convolution_filters", 64), ("use_convolution", False),
    ("hidden_layers", 3), ("hidden_size", 128), ("hidden_activation", "sigmoid"),
    ("hidden_normalization", "layer_norm"), ("hidden_normalization", "batch_norm"), ("hidden_dropout_rate", 0.5),
])
def test_model_choice_changes_deep_tower(choice: str, other: object) -> None:
    _, base_output = _towers(_config())
    _, changed_output = _towers(_config(**{choice: other}))
    assert base_output.shape == changed_output.shape == (6, 3)
    assert not np.allclose(base_output, changed_output)


def test_convolution_layers_follow_choices() -> None:
    deep, _ = _towers(_config(convolution_max_ngram_length=3, convolution_filters=64, convolution_batch_norm=True))
    assert [c.kernel.shape for c in deep.convolutions] == [(1, 50, 64), (2, 50, 64), (3, 50, 64)]
    assert len(deep.convolution_norms) == 3
    deep, _ = _towers(_config(use_convolution=False))
    assert deep.convolutions == []


def test_hidden_layers_follow_choices() -> None:
    deep, _ = _towers(_config(hidden_layers=5, hidden_size=256, hidden_normalization="layer_norm"))
    assert [d.kernel.shape[1] for d in deep.hidden_dense] == [256] * 5
    assert len(deep.hidden_norms) == 5
    deep, _ = _towers(_config(hidden_layers=0))
    assert deep.hidden_dense == []
    assert deep.logits.kernel.shape == (2 * 32, 3)  # two n-gram widths of 32 filters straight to the logits


def test_fine_tune_decides_embedding_trainable() -> None:
    tuned, _ = _towers(_config(fine_tune_embeddings=True))
    frozen, _ = _towers(_config(fine_tune_embeddings=False))
    assert any("embedding" in v.path for v in tuned.trainable_variables)
    assert not any("embedding" in v.path for v in frozen.trainable_variables)


@pytest.mark.parametrize(("module", "dim"), [("use-multilingual-512", 512), ("minilm-l6-384", 384)])
def test_sentence_module_skips_embedding_and_convolution(module: str, dim: int) -> None:
    deep, output = _towers(_config(embedding_module=module, hidden_layers=0))
    assert deep.embedding is None
    assert deep.convolutions == []
    assert deep.logits.kernel.shape == (dim, 3)
    assert output.shape == (6, 3)


def test_training_choices_set_optimizers_and_steps() -> None:
    from seqopt.envs.text_classification.lazy_adam import LazyAdam
    from seqopt.envs.text_classification.trainer import make_optimizers, training_steps

    deep, wide = make_optimizers(_config(deep_learning_rate=0.05, wide_learning_rate=0.5, wide_l1_weight=0.01))
    assert isinstance(deep, LazyAdam)
    assert float(deep.learning_rate) == pytest.approx(0.05)
    assert float(wide.learning_rate) == pytest.approx(0.5)
    assert wide.l1_regularization_strength == pytest.approx(0.01)
    deep, _ = make_optimizers(_config(deep_optimizer="adagrad"))
    assert type(deep).__name__ == "Adagrad"
    assert training_steps(_config(training_samples=200_000, lazy_adam_batch_size=256), 0.01) == 8
    assert training_steps(_config(training_samples=100_000, deep_optimizer="adagrad"), 0.01) == 8


def test_l2_penalty_covers_kernels_only() -> None:
    deep, _ = _towers(_config(hidden_layers=1))
    expected = sum(float(np.sum(layer.kernel.numpy() ** 2))
                   for layer in (*deep.convolutions, *deep.hidden_dense, deep.logits))
    assert float(deep.l2_penalty()) == pytest.approx(expected, rel=1e-5)


# --- trials on real data ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_sms() -> TextClassification:
    return TextClassification("sms_spam", sample_scale=0.01, max_train_examples=400, max_eval_examples=200,
                              hardware={"name": "cpu", "threads": 2})


@needs_data
@pytest.mark.slow
def test_trial_trains_and_scores_sms_spam(small_sms: TextClassification) -> None:
    config = _config(use_convolution=False, training_samples=200_000)
    evaluation = small_sms.evaluate(_indices(config), np.random.default_rng(0))
    assert evaluation.status is Status.OK, evaluation.error
    assert 0.5 < evaluation.reward <= 1.0
    assert 0.5 < evaluation.metrics["test_roc_auc"] <= 1.0
    assert evaluation.metrics["steps"] == 16
    assert evaluation.cost_seconds > 0

    again = small_sms.evaluate(_indices(config), np.random.default_rng(0))
    assert again.reward == evaluation.reward
    assert again.metrics["final_loss"] == evaluation.metrics["final_loss"]


@needs_data
@pytest.mark.slow
def test_convolution_trial_with_adagrad(small_sms: TextClassification) -> None:
    config = _config(deep_optimizer="adagrad", convolution_batch_norm=True, hidden_normalization="batch_norm")
    evaluation = small_sms.evaluate(_indices(config), np.random.default_rng(1))
    assert evaluation.status is Status.OK, evaluation.error
    assert 0.5 < evaluation.reward <= 1.0


class _PoisonedEmbedding(TextClassification):
    """SMS Spam whose GloVe rows are NaN, so the training loss becomes NaN."""

    def _build_trial_data(self, embedding_module: str):  # type: ignore[no-untyped-def]
        data = super()._build_trial_data(embedding_module)
        assert data.embedding_matrix is not None
        matrix = data.embedding_matrix.copy()
        matrix[2:] = np.nan
        return replace(data, embedding_matrix=matrix)


@needs_data
@pytest.mark.slow
def test_nan_loss_becomes_failed_trial() -> None:
    objective = _PoisonedEmbedding("sms_spam", sample_scale=0.01, max_train_examples=300, max_eval_examples=100)
    evaluation = objective.evaluate(_indices(_config(use_convolution=False)), np.random.default_rng(0))
    assert evaluation.status is Status.FAILED
    assert math.isnan(evaluation.reward)
    assert "DivergedError" in evaluation.error
    assert "not finite" in evaluation.error or "nan" in evaluation.error


@needs_data
@pytest.mark.slow
def test_sentence_encoder_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(tmp_path))
    objective = TextClassification("sms_spam", sample_scale=0.005, max_train_examples=120, max_eval_examples=60)
    config = _config(embedding_module="use-multilingual-512", hidden_layers=0)
    evaluation = objective.evaluate(_indices(config), np.random.default_rng(0))
    assert evaluation.status is Status.OK, evaluation.error
    assert 0.5 < evaluation.reward <= 1.0
    assert "use_convolution" in evaluation.metrics["inactive_choices"]
    assert len(list((tmp_path / "text-embeddings").glob("use-multilingual-512-*.npy"))) == 1


@needs_data
def test_objective_pickles_without_prepared_data(small_sms: TextClassification) -> None:
    small_sms._trial_data["glove-50d"] = "prepared"  # type: ignore[assignment]
    restored = pickle.loads(pickle.dumps(small_sms))
    assert restored._trial_data == {}
    assert restored.dataset == "sms_spam"
    assert restored.space == small_sms.space
    del small_sms._trial_data["glove-50d"]


def test_import_seqopt_does_not_import_tensorflow() -> None:
    code = "import sys, seqopt; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]


# --- configs and baseline ---------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("experiment", ["text_paper", "text_small_evo_nas", "text_small_neural",
                                        "text_small_evolution"])
def test_experiment_configs_compose(experiment: str) -> None:
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("seqopt.conf", version_base=None):
        cfg = compose("config", overrides=[f"experiment={experiment}", "env.dataset=mcdonalds"])
    objective = instantiate(cfg.env)
    assert isinstance(objective, TextClassification)
    assert objective.dataset == "mcdonalds"
    assert objective.hardware is not None and objective.hardware["name"] == "cpu"
    assert cfg.executor._target_ == "seqopt.executors.ProcessExecutor"
    assert cfg.budget.wall_seconds in (600, 7200)


@needs_data
def test_tfidf_baseline_on_sms_subset() -> None:
    dataset = TextClassification("sms_spam", max_train_examples=1000).load()
    result = tfidf_baseline(dataset, c_grid=(10.0,))
    assert result.best_c == 10.0
    assert 0.95 < result.test_roc_auc <= 1.0
    assert 0.95 < result.validation_roc_auc <= 1.0
