"""The text classification architecture search of "Evolutionary-Neural Hybrid Agents for
Architecture Search" (Maziarz et al., arXiv:1811.09828), Section 6.3, as a seqopt objective.

Each trial decodes a sequence of the Table 8 space into a wide-and-deep model, trains it on the
training split and returns the validation ROC-AUC as the reward, with the test ROC-AUC among the
metrics. TensorFlow is imported inside ``evaluate`` only, so importing seqopt stays light.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from seqopt.data.files import locate
from seqopt.envs.text_classification.datasets import (
    DATASETS,
    DEFAULT_SPLIT_SEED,
    SPLITS,
    TextDataset,
    check_dataset_name,
    load_dataset,
)
from seqopt.envs.text_classification.features import (
    GLOVE_FILES,
    SENTENCE_MODULES,
    TOKEN_MODULE,
    TrialData,
    build_token_features,
    glove_matrix,
    sentence_vectors,
)
from seqopt.envs.text_classification.space import ModelConfig, text_search_space
from seqopt.objective import Evaluation

logger = logging.getLogger(__name__)


def _check_positive_int(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        allowed = "an int >= 1 or None" if allow_none else "an int >= 1"
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")


class TextClassification:
    """Train and score one wide-and-deep text classifier per trial.

    Args:
        dataset: task name, one of ``DATASETS`` (sms_spam, mcdonalds, reuters, brown, 20newsgroups,
            consumer_complaints, news_aggregator).
        sample_scale: multiplies the "number of training samples" choice (1e5 to 5e6 examples in the
            paper). 1.0 is the paper's budget; a smaller value shortens every trial alike, which is
            how a 2-CPU machine affords a search.
        max_train_examples: keep a seeded random subset of this many training documents; None keeps all.
        max_eval_examples: keep at most this many validation and test documents each; None keeps all.
        max_vocabulary: tokens of the vocabulary (most frequent in the training split first),
            padding and unknown included.
        max_tokens: tokens of a document the deep tower reads.
        max_wide_tokens: distinct tokens of a document the wide tower reads.
        split_seed: seed of the dataset's fixed split and of the subsets; keep it fixed across runs.
        hardware: the ``conf/hardware`` mapping (backend and threads); None for TensorFlow's defaults.

    Raises:
        ValueError: on an unknown dataset or an invalid argument.
        seqopt.data.files.MissingDataError: when a file of the dataset or of GloVe is in neither
            the mirror nor the cache, so that a search fails before its first trial.
    """

    def __init__(self, dataset: str = "sms_spam", sample_scale: float = 1.0, max_train_examples: int | None = None,
                 max_eval_examples: int | None = None, max_vocabulary: int = 20_000, max_tokens: int = 256,
                 max_wide_tokens: int = 512, split_seed: int = DEFAULT_SPLIT_SEED,
                 hardware: Mapping[str, Any] | None = None) -> None:
        self.dataset = check_dataset_name(dataset)
        if isinstance(sample_scale, bool) or not isinstance(sample_scale, (int, float)) or not sample_scale > 0:
            raise ValueError(f"sample_scale must be a positive number, got {sample_scale!r}.")
        _check_positive_int("max_train_examples", max_train_examples, allow_none=True)
        _check_positive_int("max_eval_examples", max_eval_examples, allow_none=True)
        _check_positive_int("max_tokens", max_tokens)
        _check_positive_int("max_wide_tokens", max_wide_tokens)
        if isinstance(max_vocabulary, bool) or not isinstance(max_vocabulary, int) or max_vocabulary < 3:
            raise ValueError(f"max_vocabulary must be an int >= 3 (padding, unknown and one token), "
                             f"got {max_vocabulary!r}.")
        self.sample_scale = float(sample_scale)
        self.max_train_examples = max_train_examples
        self.max_eval_examples = max_eval_examples
        self.max_vocabulary = max_vocabulary
        self.max_tokens = max_tokens
        self.max_wide_tokens = max_wide_tokens
        self.split_seed = split_seed
        self.hardware = dict(hardware) if hardware is not None else None
        info = DATASETS[self.dataset]
        for filename in info.files:
            locate(info.registry_name, filename)
        for filename in GLOVE_FILES:
            locate("glove-6b-50d", filename)
        self.space = text_search_space()
        self._lock = threading.Lock()
        self._trial_data: dict[str, TrialData] = {}

    def __repr__(self) -> str:
        return f"TextClassification(dataset={self.dataset!r}, sample_scale={self.sample_scale})"

    # Prepared arrays stay behind when the objective is shipped to a worker process; each worker
    # builds its own on its first trial.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_trial_data"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def load(self) -> TextDataset:
        """Return the dataset, cut to ``max_train_examples`` and ``max_eval_examples`` if set."""
        full = load_dataset(self.dataset, self.split_seed)
        rng = np.random.default_rng(self.split_seed)
        limits = {"train": self.max_train_examples, "validation": self.max_eval_examples,
                  "test": self.max_eval_examples}
        splits = {}
        for split in SPLITS:
            indices, limit = full.splits[split], limits[split]
            if limit is not None and len(indices) > limit:
                indices = np.sort(rng.choice(indices, size=limit, replace=False))
            splits[split] = indices
        if all(len(splits[s]) == len(full.splits[s]) for s in SPLITS):
            return full
        return TextDataset(full.name, full.texts, full.labels, full.class_names, splits)

    def trial_data(self, embedding_module: str) -> TrialData:
        """Return the model inputs for one embedding module, built once per process."""
        with self._lock:
            if embedding_module not in self._trial_data:
                self._trial_data[embedding_module] = self._build_trial_data(embedding_module)
            return self._trial_data[embedding_module]

    def _build_trial_data(self, embedding_module: str) -> TrialData:
        dataset = self.load()
        used = np.concatenate([dataset.splits[s] for s in SPLITS])
        texts = [dataset.texts[i] for i in used]
        tokens = build_token_features(texts, dataset.split_texts("train"), self.max_vocabulary, self.max_tokens,
                                      self.max_wide_tokens)
        if embedding_module == TOKEN_MODULE:
            deep, matrix = tokens.deep_ids, glove_matrix(tokens.vocabulary)
        elif embedding_module in SENTENCE_MODULES:
            threads = (self.hardware or {}).get("threads")
            deep, matrix = sentence_vectors(embedding_module, texts, threads=threads), None
        else:
            raise ValueError(f"Unknown embedding module {embedding_module!r}.")

        rows, start = {}, 0
        for split in SPLITS:
            rows[split] = np.arange(start, start + len(dataset.splits[split]))
            start += len(dataset.splits[split])
        return TrialData(
            deep_inputs={s: deep[rows[s]] for s in SPLITS},
            wide_inputs={s: tokens.wide_ids[rows[s]] for s in SPLITS},
            labels={s: dataset.labels[dataset.splits[s]] for s in SPLITS},
            num_classes=dataset.num_classes,
            vocabulary_size=tokens.vocabulary_size,
            embedding_matrix=matrix,
        )

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator) -> Evaluation:
        """Train the model of ``indices`` and return its validation ROC-AUC as the reward.

        A NaN or infinite loss, or any error while training, gives a failed Evaluation with the
        error text; an invalid index sequence raises ValueError.
        """
        config = ModelConfig.from_indices(self.space.validate(indices))
        started = time.perf_counter()
        metrics: dict[str, Any] = {"inactive_choices": config.inactive_choices()}
        try:
            data = self.trial_data(config.embedding_module)
            from seqopt.envs.text_classification.trainer import train_and_evaluate

            figures = train_and_evaluate(config, data, rng, self.sample_scale, self.hardware)
        except Exception as error:
            logger.debug("Text trial failed", exc_info=True)
            return Evaluation.failed(f"{type(error).__name__}: {error}", cost_seconds=time.perf_counter() - started,
                                     metrics=metrics)
        finally:
            _release_keras_state()
        metrics.update(figures)
        return Evaluation(reward=figures["validation_roc_auc"], metrics=metrics,
                          cost_seconds=time.perf_counter() - started)


def _release_keras_state() -> None:
    """Drop Keras's global graph state so that a worker's memory does not grow trial after trial."""
    import sys

    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session()
