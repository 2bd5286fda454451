"""Lazy Adam: Adam whose moment estimates and weights change only at the rows a sparse gradient touches.

"Evolutionary-Neural Hybrid Agents for Architecture Search" (Maziarz et al., arXiv:1811.09828)
trains the deep tower with Adagrad or "lazy Adam", TensorFlow 1's ``LazyAdamOptimizer``, which
computes the moving averages only on the current batch. Keras 3 has no such optimizer and the
tensorflow-addons version does not import with TensorFlow 2.21, so this module implements it.

For a dense gradient the update is Adam's (Kingma and Ba, "Adam: A Method for Stochastic
Optimization", arXiv:1412.6980). For a ``tf.IndexedSlices`` gradient, the gradient of an
embedding lookup, only the looked-up rows are updated:

    m[rows] = beta_1 * m[rows] + (1 - beta_1) * g
    v[rows] = beta_2 * v[rows] + (1 - beta_2) * g ** 2
    w[rows] -= lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m[rows] / (sqrt(v[rows]) + epsilon)

with t the optimizer's step count. Every other row keeps its weights and both moments, so a step
costs time in proportion to the batch's distinct tokens rather than to the vocabulary.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="seqopt")
class LazyAdam(keras.optimizers.Optimizer):
    """Adam with row-wise (lazy) updates for sparse gradients.

    Args:
        learning_rate: step size.
        beta_1: decay of the first-moment estimate.
        beta_2: decay of the second-moment estimate.
        epsilon: added to the root of the second moment for stability.
        **kwargs: any other argument of ``keras.optimizers.Optimizer`` (``clipnorm``, ``name``, ...).
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, name: str = "lazy_adam", **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self._momentums = self.add_optimizer_variables(variables, "momentum")
        self._velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]

        if not isinstance(gradient, tf.IndexedSlices):
            gradient = tf.cast(gradient, dtype)
            self.assign(m, beta_1 * m + (1 - beta_1) * gradient)
            self.assign(v, beta_2 * v + (1 - beta_2) * tf.square(gradient))
            self.assign_sub(variable, alpha * m / (tf.sqrt(v) + self.epsilon))
            return

        # A row looked up twice in one batch appears twice in the slices. Its parts are summed first
        # because the moments must see the row's whole gradient once.
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), positions, tf.shape(rows)[0])
        m_rows = beta_1 * tf.gather(_tensor(m), rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(_tensor(v), rows) + (1 - beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


def _tensor(variable: Any) -> Any:
    """Return the tf.Variable behind a Keras variable, for ``tf.gather``."""
    return variable.value if isinstance(variable, keras.Variable) else variable
