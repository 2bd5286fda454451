"""Reference baseline of the text classification tasks: TF-IDF features and logistic regression.

A searched wide-and-deep model should beat this; the benchmark prints both side by side. The
regularization strength C is picked on the validation split from a small grid, and the test ROC-AUC
of that choice is reported, the same protocol as the search (best by validation, scored on test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqopt.envs.text_classification.datasets import TextDataset
from seqopt.envs.text_classification.metrics import roc_auc

C_GRID = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class BaselineResult:
    """Figures of the TF-IDF baseline on one dataset."""

    dataset: str
    best_c: float
    validation_roc_auc: float
    test_roc_auc: float
    seconds: float


def tfidf_baseline(dataset: TextDataset, c_grid: tuple[float, ...] = C_GRID,
                   max_features: int = 50_000) -> BaselineResult:
    """Fit TF-IDF (unigrams and bigrams, sublinear term frequency) plus logistic regression for each C.

    Returns the figures of the C with the best validation ROC-AUC.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=max_features)
    train = vectorizer.fit_transform(dataset.split_texts("train"))
    validation = vectorizer.transform(dataset.split_texts("validation"))
    test = vectorizer.transform(dataset.split_texts("test"))
    train_labels = dataset.split_labels("train")

    best: tuple[float, float, float] | None = None
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(train, train_labels)
        validation_auc = roc_auc(dataset.split_labels("validation"), _full_probabilities(model, validation,
                                                                                          dataset.num_classes))
        if best is None or validation_auc > best[1]:
            test_auc = roc_auc(dataset.split_labels("test"), _full_probabilities(model, test, dataset.num_classes))
            best = (c, validation_auc, test_auc)
    assert best is not None
    return BaselineResult(dataset.name, best[0], best[1], best[2], time.perf_counter() - started)


def _full_probabilities(model: Any, features: Any, num_classes: int) -> np.ndarray:
    """Return probabilities over every class, with zeros for classes absent from the training split."""
    probabilities = np.zeros((features.shape[0], num_classes))
    probabilities[:, model.classes_] = model.predict_proba(features)
    return probabilities
