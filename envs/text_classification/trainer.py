"""Train one wide-and-deep model and score it by ROC-AUC, as one trial of the text search of
"Evolutionary-Neural Hybrid Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828).

The deep tower trains with Adagrad or lazy Adam and an L2 penalty on its kernels. The wide tower
trains with FTRL and L1 regularization (McMahan et al., "Ad Click Prediction: a View from the
Trenches", KDD 2013). Both minimize the same softmax cross-entropy of the summed logits. A trial takes
``ceil(training_samples * sample_scale / batch_size)`` steps of mini-batches drawn epoch by epoch
in a seeded order.

Importing this module imports TensorFlow; the objective imports it only inside a trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqopt.envs.text_classification.features import TrialData
from seqopt.envs.text_classification.lazy_adam import LazyAdam
from seqopt.envs.text_classification.metrics import roc_auc
from seqopt.envs.text_classification.model import DeepTower, WideTower, count_parameters
from seqopt.envs.text_classification.space import ModelConfig
from seqopt.hardware import configure_tensorflow

# Steps between checks of the training loss for NaN; each check waits for the step to finish.
NAN_CHECK_EVERY = 25
PREDICT_BATCH_SIZE = 1024


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def make_optimizers(config: ModelConfig) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """Return the deep tower's optimizer (Adagrad or lazy Adam) and the wide tower's FTRL with L1."""
    deep: keras.optimizers.Optimizer
    if config.deep_optimizer == "lazy_adam":
        deep = LazyAdam(learning_rate=config.deep_learning_rate)
    else:
        deep = keras.optimizers.Adagrad(learning_rate=config.deep_learning_rate)
    wide = keras.optimizers.Ftrl(learning_rate=config.wide_learning_rate,
                                 l1_regularization_strength=config.wide_l1_weight)
    return deep, wide


def training_steps(config: ModelConfig, sample_scale: float) -> int:
    """Return the number of mini-batch steps: the scaled training samples over the batch size, rounded up."""
    return max(1, math.ceil(config.training_samples * sample_scale / config.batch_size))


def _batches(num_examples: int, batch_size: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Return ``steps`` index batches of equal size, reshuffling the training set at each epoch.

    The last incomplete batch of an epoch is dropped, so every step has one shape and one trace.
    A training set smaller than ``batch_size`` is used whole as every batch.
    """
    batch_size = min(batch_size, num_examples)
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(num_examples)
        batches.extend(order[start:start + batch_size] for start in range(0, num_examples - batch_size + 1, batch_size))
    return batches[:steps]


def train_and_evaluate(config: ModelConfig, data: TrialData, rng: np.random.Generator, sample_scale: float = 1.0,
                       hardware: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train ``config`` on the training split and return its validation and test figures.

    Returns:
        A dict with ``validation_roc_auc``, ``test_roc_auc``, ``validation_accuracy``,
        ``test_accuracy``, ``final_loss``, ``steps``, ``parameters`` and ``train_seconds``.

    Raises:
        DivergedError: when the training loss is not finite at a check.
    """
    started = time.perf_counter()
    strategy = configure_tensorflow(hardware)
    batch_size = min(config.batch_size, len(data.labels["train"]))
    steps = training_steps(config, sample_scale)
    train_x, train_wide, train_y = data.deep_inputs["train"], data.wide_inputs["train"], data.labels["train"]

    with strategy.scope():
        deep = DeepTower(config, data.num_classes, data.embedding_matrix, rng)
        wide = WideTower(data.vocabulary_size, data.num_classes)
        deep(train_x[:1])
        wide(train_wide[:1])
        deep_optimizer, wide_optimizer = make_optimizers(config)
        deep_optimizer.build(deep.trainable_variables)
        wide_optimizer.build(wide.trainable_variables)
    deep_variables = list(deep.trainable_variables)
    wide_variables = list(wide.trainable_variables)
    global_batch = batch_size * strategy.num_replicas_in_sync

    def replica_step(deep_x: tf.Tensor, wide_x: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = deep(deep_x, training=True) + wide(wide_x, training=True)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            data_loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            # The L2 term reaches only the deep tower's variables; FTRL applies the wide tower's L1.
            loss = data_loss + config.deep_l2_weight * deep.l2_penalty()
        gradients = tape.gradient(loss, deep_variables + wide_variables)
        deep_optimizer.apply(gradients[: len(deep_variables)], deep_variables)
        wide_optimizer.apply(gradients[len(deep_variables):], wide_variables)
        return data_loss

    # NOTE: under a strategy of several replicas each replica gets the whole batch, so results are
    # right but not faster. The tests exercise only the CPU backend.
    @tf.function(reduce_retracing=True)
    def train_step(deep_x: tf.Tensor, wide_x: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        losses = strategy.run(replica_step, args=(deep_x, wide_x, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    loss_value = math.nan
    for step, batch in enumerate(_batches(len(train_y), batch_size, steps, rng), start=1):
        loss = train_step(train_x[batch], train_wide[batch], train_y[batch])
        if step % NAN_CHECK_EVERY == 0 or step == steps:
            loss_value = float(loss)
            if not math.isfinite(loss_value):
                raise DivergedError(f"training loss became {loss_value} at step {step} of {steps}")

    # Prediction runs eagerly: a few large batches cost less than tracing another function.
    figures: dict[str, Any] = {}
    for split in ("validation", "test"):
        inputs, wide_inputs = data.deep_inputs[split], data.wide_inputs[split]
        probabilities = np.concatenate([
            tf.nn.softmax(deep(inputs[start:start + PREDICT_BATCH_SIZE], training=False)
                          + wide(wide_inputs[start:start + PREDICT_BATCH_SIZE], training=False)).numpy()
            for start in range(0, len(inputs), PREDICT_BATCH_SIZE)])
        if not np.all(np.isfinite(probabilities)):
            raise DivergedError(f"the model's {split} probabilities are not finite after {steps} steps")
        figures[f"{split}_roc_auc"] = roc_auc(data.labels[split], probabilities)
        figures[f"{split}_accuracy"] = float(np.mean(np.argmax(probabilities, axis=1) == data.labels[split]))

    figures.update(final_loss=loss_value, steps=steps, parameters=count_parameters(deep) + count_parameters(wide),
                   train_seconds=time.perf_counter() - started)
    return figures
