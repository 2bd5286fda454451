"""ROC-AUC, the reward of the text classification search (validation) and its final figure (test).

"Evolutionary-Neural Hybrid Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828),
Appendix C.3, prefers ROC-AUC to accuracy because it is a less noisy reward.
"""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Return the ROC-AUC of class probabilities ``(n, classes)`` against class indices ``(n,)``.

    Two classes: the AUC of the second class's probability. More classes: the unweighted mean of
    the one-vs-rest AUCs over the classes that have both positive and negative examples in
    ``labels``. A class absent from a small split has no defined AUC, and Reuters and Consumer
    Complaints have classes with one or two documents.

    Raises:
        ValueError: on mismatched shapes, or when no class has both positives and negatives.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(labels) != len(probabilities):
        raise ValueError(f"probabilities must have shape (len(labels), classes) = ({len(labels)}, classes), "
                         f"got {probabilities.shape}.")
    num_classes = probabilities.shape[1]
    if num_classes == 2:
        if len(np.unique(labels)) < 2:
            raise ValueError("ROC-AUC needs both classes among the labels; the split has only one.")
        return float(roc_auc_score(labels == 1, probabilities[:, 1]))
    scores = []
    for c in range(num_classes):
        positives = labels == c
        if 0 < positives.sum() < len(labels):
            scores.append(roc_auc_score(positives, probabilities[:, c]))
    if not scores:
        raise ValueError("ROC-AUC needs a class with both positive and negative examples; the split has none.")
    return float(np.mean(scores))
