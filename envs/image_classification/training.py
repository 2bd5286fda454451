"""Proxy training: a few epochs of the MnasNet schedule, compressed to the proxy's length.

Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828),
Section 6.4, trains each searched model for 5 epochs "using aggressive schedules for learning rate
and weight decay". Its final model trains for 400 epochs with RMSProp (decay 0.9, momentum 0.9),
batch-norm momentum 0.9997 and weight decay 1e-5. The learning rate rises linearly from 0 to 0.256
over 5 epochs, then decays by 0.97 every 2.4 epochs. The proxy keeps that shape with the time
axis scaled: warm-up over 5/400 of the steps, one decay by 0.97 every 2.4/400 of the steps, so the
last step ends near 0.7% of the peak, as the full schedule does.

The training step is a hand-written ``tf.function`` rather than ``keras.Model.fit``, because
tracing dominates a proxy trial of a few hundred steps: the first epoch of ``fit`` with a Keras
RMSprop took 28.6 s against 9.4 s for this step, on one 20-layer model (a busy 2-core machine,
measured once). The update is that of TensorFlow's
``tf.compat.v1.train.RMSPropOptimizer``: the ``ResourceApplyRMSProp`` kernel, with the mean
square initialized to ones and epsilon inside the square root.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class TrainingConfig:
    """Optimizer, schedule and length of one proxy training run.

    Attributes:
        epochs: passes over the training subset.
        batch_size: images per step; the last incomplete batch of an epoch is dropped.
        learning_rate: peak learning rate of the schedule.
        warmup_fraction: share of the steps over which the learning rate rises linearly from 0.
        decay_rate: factor of each exponential decay stage.
        decay_every_fraction: share of the steps between two decay stages.
        rmsprop_decay: RMSProp's moving-average decay of squared gradients.
        momentum: RMSProp momentum.
        epsilon: RMSProp epsilon, added to the mean square inside the square root.
        initial_mean_square: start value of RMSProp's mean square; TensorFlow 1 starts at 1.0, which
            keeps the first steps small, and Keras at 0.0.
        eval_batch_size: images per forward pass when computing validation and test accuracy.
        jit_compile: compile the training step with XLA.
    """

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.01
    warmup_fraction: float = 5 / 400
    decay_rate: float = 0.97
    decay_every_fraction: float = 2.4 / 400
    rmsprop_decay: float = 0.9
    momentum: float = 0.9
    epsilon: float = 1e-3
    initial_mean_square: float = 1.0
    eval_batch_size: int = 500
    jit_compile: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"training.{name} must be an int >= 1, got {value!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"training.learning_rate must be positive, got {self.learning_rate!r}.")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"training.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}.")
        if not 0.0 < self.decay_rate <= 1.0:
            raise ValueError(f"training.decay_rate must be in (0, 1], got {self.decay_rate!r}.")
        if not self.decay_every_fraction > 0:
            raise ValueError(f"training.decay_every_fraction must be positive, got {self.decay_every_fraction!r}.")


def learning_rate_at(step: int | np.ndarray, total_steps: int, config: TrainingConfig) -> np.ndarray:
    """Return the learning rate at ``step`` (0-based) of a run of ``total_steps`` steps.

    Linear warm-up from 0 to ``learning_rate`` over ``warmup_fraction * total_steps`` steps, then
    a staircase decay by ``decay_rate`` every ``decay_every_fraction * total_steps`` steps.
    """
    step = np.asarray(step, dtype=np.float64)
    peak = config.learning_rate
    warmup_steps = config.warmup_fraction * total_steps
    decay_steps = max(1.0, config.decay_every_fraction * total_steps)
    warm = peak * (step + 1.0) / max(warmup_steps, 1.0)
    decayed = peak * config.decay_rate ** np.floor(np.maximum(step - warmup_steps, 0.0) / decay_steps)
    return np.where(step < warmup_steps, warm, decayed)


@dataclass
class TrainingResult:
    """Outcome of one proxy training run.

    Attributes:
        train_loss: mean cross-entropy of the last epoch, without the weight-decay term.
        train_accuracy: accuracy on the training batches of the last epoch.
        validation_accuracy: accuracy on the validation subset after training.
        test_accuracy: accuracy on the test subset after training.
        seconds: wall-clock seconds of the training steps, tracing included.
        cpu_seconds: CPU seconds of this process (all threads) over the same span; on a busy
            machine it varies less than ``seconds``.
        evaluate_seconds: wall-clock seconds of the validation and test passes.
        steps: optimizer steps taken.
        diverged: where the loss became NaN or infinite, or None.
    """

    train_loss: float
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float
    seconds: float
    cpu_seconds: float
    evaluate_seconds: float
    steps: int
    diverged: str | None = None


class _TrainStep:
    """The traced training step: forward, loss, gradients, all-reduce across replicas, RMSProp update."""

    def __init__(self, model: keras.Model, config: TrainingConfig, strategy: Any) -> None:
        import keras
        import tensorflow as tf

        self.model = model
        self.config = config
        self.strategy = strategy
        self.variables = [v.value for v in model.trainable_variables]
        with strategy.scope():
            self.mean_squares = [
                tf.Variable(tf.fill(tf.shape(v), tf.cast(config.initial_mean_square, v.dtype)), trainable=False)
                for v in self.variables
            ]
            self.moments = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        # float16 activations need a dynamic loss scale so that small gradients do not flush to
        # zero. The start value and growth interval are those of keras.optimizers.LossScaleOptimizer.
        self.scale_loss = keras.mixed_precision.global_policy().compute_dtype == "float16"
        with strategy.scope():
            self.loss_scale = tf.Variable(2.0**15, trainable=False)
            self.finite_steps = tf.Variable(0, trainable=False)
        self.call = tf.function(self._distributed_step, jit_compile=config.jit_compile, reduce_retracing=True)

    def _replica_step(self, images: Any, labels: Any, learning_rate: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            cross_entropy = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            loss = (cross_entropy + tf.add_n(self.model.losses)) if self.model.losses else cross_entropy
            if self.scale_loss:
                loss = loss * self.loss_scale
        gradients = tape.gradient(loss, self.variables)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            gradients = context.all_reduce(tf.distribute.ReduceOp.MEAN, gradients)
        if self.scale_loss:
            gradients = [g / self.loss_scale for g in gradients]
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
            tf.cond(finite, lambda: self._apply(gradients, learning_rate), lambda: tf.no_op())
            self._update_loss_scale(finite)
        else:
            self._apply(gradients, learning_rate)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels),
                                        tf.float32))
        return cross_entropy, correct

    def _apply(self, gradients: list[Any], learning_rate: Any) -> Any:
        import tensorflow as tf

        config = self.config
        updates = []
        for variable, gradient, mean_square, moment in zip(self.variables, gradients, self.mean_squares,
                                                           self.moments):
            updates.append(tf.raw_ops.ResourceApplyRMSProp(
                var=variable.handle, ms=mean_square.handle, mom=moment.handle,
                lr=tf.cast(learning_rate, variable.dtype), rho=tf.cast(config.rmsprop_decay, variable.dtype),
                momentum=tf.cast(config.momentum, variable.dtype), epsilon=tf.cast(config.epsilon, variable.dtype),
                grad=tf.cast(gradient, variable.dtype)))
        return tf.group(updates)

    def _update_loss_scale(self, finite: Any) -> None:
        import tensorflow as tf

        def grow() -> Any:
            grown = tf.cond(self.finite_steps >= 2000, lambda: self.loss_scale * 2.0, lambda: self.loss_scale)
            self.finite_steps.assign(tf.where(self.finite_steps >= 2000, 0, self.finite_steps + 1))
            return self.loss_scale.assign(grown)

        def shrink() -> Any:
            self.finite_steps.assign(0)
            return self.loss_scale.assign(tf.maximum(self.loss_scale / 2.0, 1.0))

        tf.cond(finite, grow, shrink)

    def _distributed_step(self, images: Any, labels: Any, learning_rate: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        cross_entropy, correct = self.strategy.run(self._replica_step, args=(images, labels, learning_rate))
        return (self.strategy.reduce(tf.distribute.ReduceOp.MEAN, cross_entropy, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

    def __call__(self, images: np.ndarray, labels: np.ndarray, learning_rate: float) -> tuple[float, float]:
        import tensorflow as tf

        replicas = self.strategy.num_replicas_in_sync
        if replicas > 1:
            # NOTE: the multi-replica path (TPUStrategy) has not run on a TPU here; single-replica
            # strategies (cpu, one GPU) are the tested ones.
            # Each replica takes its own slice of the batch; train_proxy checks that it divides evenly.
            size = len(images) // replicas

            def distribute(array: np.ndarray) -> Any:
                return self.strategy.experimental_distribute_values_from_function(
                    lambda context: array[context.replica_id_in_sync_group * size:][:size])

            batch_images, batch_labels = distribute(images), distribute(labels)
        else:
            batch_images, batch_labels = tf.constant(images), tf.constant(labels)
        cross_entropy, correct = self.call(batch_images, batch_labels, tf.constant(learning_rate, tf.float32))
        return float(cross_entropy), float(correct)


def train_proxy(model: keras.Model, train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], config: TrainingConfig, rng: np.random.Generator,
                strategy: Any = None) -> TrainingResult:
    """Train ``model`` on ``train`` and measure its accuracy on ``validation`` and ``test``.

    Images are float32 arrays (N, H, W, C) and labels int arrays (N,). ``rng`` draws the order of
    the training images in every epoch. ``strategy`` is the one the model was built under (None:
    TensorFlow's default). Training stops at the first NaN or infinite batch loss, and ``diverged``
    then reports the epoch and step.
    """
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    images, labels = train
    if len(images) < config.batch_size:
        raise ValueError(f"The training subset has {len(images)} images, fewer than training.batch_size="
                         f"{config.batch_size}; lower the batch size or raise num_train.")
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"training.batch_size={config.batch_size} must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas of the hardware backend.")
    labels = labels.astype(np.int32)
    steps_per_epoch = len(images) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    rates = learning_rate_at(np.arange(total_steps), total_steps, config)
    train_step = _TrainStep(model, config, strategy)

    step = 0
    loss_sum = correct_sum = 0.0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for epoch in range(config.epochs):
        order = rng.permutation(len(images))
        loss_sum = correct_sum = 0.0
        for batch in range(steps_per_epoch):
            chosen = order[batch * config.batch_size:(batch + 1) * config.batch_size]
            loss, correct = train_step(images[chosen], labels[chosen], float(rates[step]))
            step += 1
            if not math.isfinite(loss):
                seconds = time.perf_counter() - started
                cpu_seconds = time.process_time() - cpu_started
                where = f"training loss became {loss} at epoch {epoch + 1}, step {batch + 1} of {steps_per_epoch}"
                return TrainingResult(math.nan, math.nan, math.nan, math.nan, seconds, cpu_seconds, 0.0, step, where)
            loss_sum += loss
            correct_sum += correct
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started

    started = time.perf_counter()
    validation_accuracy = accuracy(model, validation, config.eval_batch_size, strategy)
    test_accuracy = accuracy(model, test, config.eval_batch_size, strategy)
    evaluate_seconds = time.perf_counter() - started
    return TrainingResult(
        train_loss=loss_sum / steps_per_epoch,
        train_accuracy=correct_sum / (steps_per_epoch * config.batch_size),
        validation_accuracy=validation_accuracy,
        test_accuracy=test_accuracy,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        evaluate_seconds=evaluate_seconds,
        steps=step,
    )


def accuracy(model: keras.Model, data: tuple[np.ndarray, np.ndarray], batch_size: int, strategy: Any = None) -> float:
    """Return the top-1 accuracy of ``model`` on ``data`` with batch-norm in inference mode."""
    images, labels = data
    correct = 0
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        # A multi-replica strategy (a TPU) runs the forward pass through strategy.run.
        import tensorflow as tf

        predict = tf.function(lambda x: strategy.run(lambda y: model(y, training=False), args=(x,)))
        for start in range(0, len(images), batch_size):
            logits = strategy.gather(predict(images[start:start + batch_size]), axis=0)
            correct += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == labels[start:start + batch_size]))
        return correct / len(images)
    # Eager forward passes: tracing a prediction function would cost more than the passes themselves.
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size], training=False)
        correct += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == labels[start:start + batch_size]))
    return correct / len(images)
