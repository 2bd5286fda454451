"""The two-tower wide-and-deep text classifier of "Evolutionary-Neural Hybrid Agents for Architecture
Search" (Maziarz et al., arXiv:1811.09828), Section 6.3, in Keras 3 on TensorFlow.

The deep tower embeds the text (a pre-trained module), optionally convolves its token sequence,
stacks fully connected layers and ends in a linear layer of one logit per class. The wide tower is
a linear function of the bag of words: one weight per (token, class), summed over the distinct
tokens of the document. The model's logits are the sum of both towers' logits, and a softmax turns
them into class probabilities.

Importing this module imports TensorFlow; the objective imports it only inside a trial.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqopt.envs.text_classification.features import PAD_ID
from seqopt.envs.text_classification.space import ModelConfig

_ACTIVATIONS = {
    "relu": keras.activations.relu,
    "relu6": keras.activations.relu6,
    "leaky_relu": keras.activations.leaky_relu,
    "swish": keras.activations.silu,
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
}


def _seeds(rng: np.random.Generator) -> Iterator[int]:
    """Yield an endless stream of int seeds for Keras initializers and dropout layers."""
    while True:
        yield int(rng.integers(2**31 - 1))


class DeepTower(keras.Model):
    """Embedding, optional convolution, hidden layers and a linear layer to the class logits.

    Inputs: ``token_ids`` int32 ``(batch, tokens)`` for the token module, or ``vectors`` float32
    ``(batch, dim)`` for a sentence encoder.

    Args:
        config: the model's choices.
        num_classes: logits per document.
        embedding_matrix: initial token embeddings ``(vocabulary, dim)``; None for a sentence encoder.
        rng: seeds every initializer and dropout layer of the tower.
    """

    def __init__(self, config: ModelConfig, num_classes: int, embedding_matrix: np.ndarray | None,
                 rng: np.random.Generator) -> None:
        super().__init__(name="deep")
        seeds = _seeds(rng)
        self.config = config
        self.embedding: keras.layers.Embedding | None = None
        self.convolutions: list[keras.layers.Conv1D] = []
        self.convolution_norms: list[keras.layers.BatchNormalization] = []
        self.convolution_dropout: keras.layers.Dropout | None = None

        if config.uses_tokens:
            if embedding_matrix is None:
                raise ValueError(f"The {config.embedding_module!r} module needs an embedding_matrix, got None.")
            self.embedding = keras.layers.Embedding(
                embedding_matrix.shape[0], embedding_matrix.shape[1],
                embeddings_initializer=keras.initializers.Constant(embedding_matrix),
                trainable=config.fine_tune_embeddings, name="embedding")
            if config.use_convolution:
                # One convolution per n-gram length 1..max, each max-pooled over the tokens and
                # concatenated: the usual n-gram CNN for text classification.
                for width in range(1, config.convolution_max_ngram_length + 1):
                    self.convolutions.append(keras.layers.Conv1D(
                        config.convolution_filters, width, padding="same", use_bias=not config.convolution_batch_norm,
                        kernel_initializer=keras.initializers.GlorotUniform(next(seeds)), name=f"conv{width}"))
                    if config.convolution_batch_norm:
                        self.convolution_norms.append(keras.layers.BatchNormalization(name=f"conv{width}_norm"))
                self.convolution_dropout = keras.layers.Dropout(config.convolution_dropout_rate, seed=next(seeds))

        # Three parallel lists, not a list of tuples: Keras tracks the layers of lists only.
        self.hidden_dense: list[keras.layers.Dense] = []
        self.hidden_norms: list[keras.layers.Layer] = []
        self.hidden_dropout: list[keras.layers.Dropout] = []
        for layer in range(config.hidden_layers):
            self.hidden_dense.append(keras.layers.Dense(
                config.hidden_size, kernel_initializer=keras.initializers.GlorotUniform(next(seeds)),
                name=f"hidden{layer}"))
            if config.hidden_normalization == "batch_norm":
                self.hidden_norms.append(keras.layers.BatchNormalization(name=f"hidden{layer}_norm"))
            elif config.hidden_normalization == "layer_norm":
                self.hidden_norms.append(keras.layers.LayerNormalization(name=f"hidden{layer}_norm"))
            self.hidden_dropout.append(keras.layers.Dropout(config.hidden_dropout_rate, seed=next(seeds)))
        self.logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.GlorotUniform(next(seeds)),
                                         name="logits")

    def call(self, inputs: Any, training: bool = False) -> Any:
        features = self._embed(inputs, training) if self.embedding is not None else inputs
        for index, dense in enumerate(self.hidden_dense):
            features = dense(features)
            if self.hidden_norms:
                features = self.hidden_norms[index](features, training=training)
            features = _ACTIVATIONS[self.config.hidden_activation](features)
            features = self.hidden_dropout[index](features, training=training)
        return self.logits(features)

    def _embed(self, token_ids: Any, training: bool) -> Any:
        assert self.embedding is not None
        mask = tf.cast(tf.not_equal(token_ids, PAD_ID), tf.float32)[:, :, None]  # (B, T, 1)
        embedded = self.embedding(token_ids) * mask  # (B, T, D)
        if not self.convolutions:
            # sqrt-n combiner of the TF-Hub text-embedding modules: sum / sqrt(number of tokens).
            count = tf.reduce_sum(mask, axis=1)  # (B, 1)
            return tf.reduce_sum(embedded, axis=1) / tf.sqrt(tf.maximum(count, 1.0))

        pooled = []
        for index, convolution in enumerate(self.convolutions):
            features = convolution(embedded)  # (B, T, F)
            if self.convolution_norms:
                features = self.convolution_norms[index](features, training=training)
            features = _ACTIVATIONS[self.config.convolution_activation](features)
            # Padding positions must not win the max: push them far below any activation.
            features = features + (mask - 1.0) * 1e9
            pooled.append(tf.reduce_max(features, axis=1))  # (B, F)
        features = tf.concat(pooled, axis=-1)
        # A document of padding only would pool to -1e9; zero it.
        features = tf.where(features < -1e8, tf.zeros_like(features), features)
        assert self.convolution_dropout is not None
        return self.convolution_dropout(features, training=training)

    def l2_penalty(self) -> Any:
        """Return the sum of squared dense and convolution kernels (not the embedding table, not biases).

        The embedding table is left out because its penalty would give every row a gradient at every
        step, which would make lazy Adam's sparse updates dense.
        """
        kernels = [layer.kernel for layer in (*self.convolutions, *self.hidden_dense, self.logits)]
        return tf.add_n([tf.reduce_sum(tf.square(kernel)) for kernel in kernels])


class WideTower(keras.Model):
    """Linear logits of the bag of words: ``logits[c] = sum over distinct tokens t of W[t, c]``.

    Input: ``wide_ids`` int32 ``(batch, width)``, the distinct token ids of each document, 0-padded.
    The weights start at zero, as a linear model trained with FTRL does.
    """

    def __init__(self, vocabulary_size: int, num_classes: int) -> None:
        super().__init__(name="wide")
        self.weights_per_token = keras.layers.Embedding(vocabulary_size, num_classes,
                                                        embeddings_initializer="zeros", name="wide_weights")

    def call(self, wide_ids: Any, training: bool = False) -> Any:
        mask = tf.cast(tf.not_equal(wide_ids, PAD_ID), tf.float32)[:, :, None]  # (B, W, 1)
        return tf.reduce_sum(self.weights_per_token(wide_ids) * mask, axis=1)  # (B, C)


def count_parameters(model: keras.Model) -> int:
    """Return the number of trainable scalars of a built model."""
    return int(sum(math.prod(v.shape) for v in model.trainable_variables))
