"""The text classification search space of "Evolutionary-Neural Hybrid Agents for Architecture
Search" (Maziarz et al., arXiv:1811.09828), Table 8: 20 choices that define a wide-and-deep model.

The values are the table's, except the input embedding modules, which are offline stand-ins for
the paper's TF-Hub modules (see ``features``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqopt.envs.text_classification.features import EMBEDDING_MODULES, TOKEN_MODULE
from seqopt.spaces import Choice, ChoiceSpace

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "swish", "sigmoid", "tanh")
LEARNING_RATES = (1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5)
REGULARIZATION_WEIGHTS = (0.0, 1e-4, 1e-3, 0.01)
# Adagrad's batch size: the paper gives a batch size choice only for lazy Adam.
ADAGRAD_BATCH_SIZE = 128

TEXT_CHOICES: tuple[Choice, ...] = (
    Choice("embedding_module", EMBEDDING_MODULES),
    Choice("fine_tune_embeddings", (True, False)),
    Choice("use_convolution", (True, False)),
    Choice("convolution_activation", ACTIVATIONS),
    Choice("convolution_batch_norm", (True, False)),
    Choice("convolution_max_ngram_length", (2, 3)),
    Choice("convolution_dropout_rate", (0.0, 0.1, 0.2, 0.3, 0.4)),
    Choice("convolution_filters", (32, 64, 128)),
    Choice("hidden_layers", (0, 1, 2, 3, 5)),
    Choice("hidden_size", (64, 128, 256)),
    Choice("hidden_activation", ACTIVATIONS),
    Choice("hidden_normalization", ("none", "batch_norm", "layer_norm")),
    Choice("hidden_dropout_rate", (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)),
    Choice("deep_optimizer", ("adagrad", "lazy_adam")),
    Choice("lazy_adam_batch_size", (128, 256)),
    Choice("deep_learning_rate", LEARNING_RATES),
    Choice("deep_l2_weight", REGULARIZATION_WEIGHTS),
    Choice("wide_learning_rate", LEARNING_RATES),
    Choice("wide_l1_weight", REGULARIZATION_WEIGHTS),
    Choice("training_samples", (100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000)),
)


def text_search_space() -> ChoiceSpace:
    """Return the 20-choice space of Table 8 (about 1.2e10 sequences)."""
    return ChoiceSpace(TEXT_CHOICES)


@dataclass(frozen=True)
class ModelConfig:
    """One wide-and-deep model: the decoded values of a sequence of ``text_search_space()``.

    Field names are the choice names; see ``TEXT_CHOICES`` for the allowed values.
    """

    embedding_module: str
    fine_tune_embeddings: bool
    use_convolution: bool
    convolution_activation: str
    convolution_batch_norm: bool
    convolution_max_ngram_length: int
    convolution_dropout_rate: float
    convolution_filters: int
    hidden_layers: int
    hidden_size: int
    hidden_activation: str
    hidden_normalization: str
    hidden_dropout_rate: float
    deep_optimizer: str
    lazy_adam_batch_size: int
    deep_learning_rate: float
    deep_l2_weight: float
    wide_learning_rate: float
    wide_l1_weight: float
    training_samples: int

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> ModelConfig:
        """Build a config from ``{choice name: value}``, checking every value against the space.

        Raises:
            ValueError: naming the choice, the value and the allowed values, or the missing and
                unknown names.
        """
        space = text_search_space()
        missing = [name for name in space.names if name not in values]
        unknown = [name for name in values if name not in space.names]
        if missing or unknown:
            raise ValueError(f"Model values must name every choice of the text search space; missing {missing}, "
                             f"unknown {unknown}.")
        space.encode([values[name] for name in space.names])
        return cls(**values)

    @classmethod
    def from_indices(cls, indices: tuple[int, ...]) -> ModelConfig:
        """Build a config from an index sequence of ``text_search_space()``."""
        return cls(**text_search_space().decode_dict(indices))

    @property
    def uses_tokens(self) -> bool:
        """True when the embedding module embeds tokens (so convolution and fine-tuning apply)."""
        return self.embedding_module == TOKEN_MODULE

    @property
    def batch_size(self) -> int:
        return self.lazy_adam_batch_size if self.deep_optimizer == "lazy_adam" else ADAGRAD_BATCH_SIZE

    def inactive_choices(self) -> list[str]:
        """Return the choices whose value does not change this model.

        A sentence encoder has no token sequence to convolve and is frozen; without convolution
        its five settings are unused; without hidden layers their size, activation, normalization
        and dropout are unused; Adagrad ignores the lazy Adam batch size.
        """
        inactive = []
        if not self.uses_tokens:
            inactive += ["fine_tune_embeddings", "use_convolution"]
        if not (self.uses_tokens and self.use_convolution):
            inactive += ["convolution_activation", "convolution_batch_norm", "convolution_max_ngram_length",
                         "convolution_dropout_rate", "convolution_filters"]
        if self.hidden_layers == 0:
            inactive += ["hidden_size", "hidden_activation", "hidden_normalization", "hidden_dropout_rate"]
        if self.deep_optimizer != "lazy_adam":
            inactive.append("lazy_adam_batch_size")
        return inactive
