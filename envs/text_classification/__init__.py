"""Text classification architecture search over the wide-and-deep space of "Evolutionary-Neural
Hybrid Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828), Section 6.3 and
Appendix C, on seven real datasets. TensorFlow is imported only when a trial trains a model
(``trainer``, ``model`` and ``lazy_adam``), never by importing this package.
"""

from seqopt.envs.text_classification.baseline import BaselineResult, tfidf_baseline
from seqopt.envs.text_classification.datasets import DATASETS, DatasetInfo, TextDataset, load_dataset
from seqopt.envs.text_classification.features import EMBEDDING_MODULES, SENTENCE_MODULES, TOKEN_MODULE
from seqopt.envs.text_classification.metrics import roc_auc
from seqopt.envs.text_classification.objective import TextClassification
from seqopt.envs.text_classification.space import TEXT_CHOICES, ModelConfig, text_search_space

__all__ = [
    "DATASETS",
    "EMBEDDING_MODULES",
    "SENTENCE_MODULES",
    "TEXT_CHOICES",
    "TOKEN_MODULE",
    "BaselineResult",
    "DatasetInfo",
    "ModelConfig",
    "TextClassification",
    "TextDataset",
    "load_dataset",
    "roc_auc",
    "text_search_space",
    "tfidf_baseline",
]
