"""Lazy Adam: sparse gradients update only the looked-up rows, dense gradients follow Adam."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from seqopt.envs.text_classification.lazy_adam import LazyAdam  # noqa: E402

ROWS, DIM = 8, 3


def _embedding(seed: int = 0) -> keras.layers.Embedding:
    layer = keras.layers.Embedding(ROWS, DIM, embeddings_initializer=keras.initializers.RandomNormal(seed=seed))
    layer.build((None,))
    return layer


def _sparse_step(layer: keras.layers.Embedding, optimizer: LazyAdam, ids: list[int]) -> None:
    """Take one step on loss = sum(embedding(ids) ** 2), whose gradient is IndexedSlices."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant(ids)) ** 2)
    gradients = tape.gradient(loss, layer.trainable_variables)
    assert isinstance(gradients[0], tf.IndexedSlices)
    optimizer.apply(gradients, layer.trainable_variables)


def test_untouched_rows_and_moments_stay_untouched() -> None:
    layer = _embedding()
    optimizer = LazyAdam(learning_rate=0.1)
    before = layer.embeddings.numpy().copy()

    _sparse_step(layer, optimizer, [1, 3, 3])

    after = layer.embeddings.numpy()
    momentum = optimizer._momentums[0].numpy()
    velocity = optimizer._velocities[0].numpy()
    untouched = [0, 2, 4, 5, 6, 7]
    np.testing.assert_array_equal(after[untouched], before[untouched])
    np.testing.assert_array_equal(momentum[untouched], 0.0)
    np.testing.assert_array_equal(velocity[untouched], 0.0)
    assert np.all(after[[1, 3]] != before[[1, 3]])


def test_first_sparse_step_matches_hand_computation() -> None:
    layer = _embedding(seed=1)
    learning_rate, beta_1, beta_2, epsilon = 0.1, 0.9, 0.999, 1e-7
    optimizer = LazyAdam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    weights = layer.embeddings.numpy().astype(np.float64)

    _sparse_step(layer, optimizer, [2, 5, 5])

    # Row 5 is looked up twice, so its gradient is 2 * (2 * w). float32 arithmetic: rtol 1e-4.
    gradient = {2: 2 * weights[2], 5: 4 * weights[5]}
    alpha = learning_rate * np.sqrt(1 - beta_2) / (1 - beta_1)
    for row, g in gradient.items():
        m = (1 - beta_1) * g
        v = (1 - beta_2) * g**2
        np.testing.assert_allclose(optimizer._momentums[0].numpy()[row], m, rtol=1e-4)
        np.testing.assert_allclose(optimizer._velocities[0].numpy()[row], v, rtol=1e-4)
        np.testing.assert_allclose(layer.embeddings.numpy()[row], weights[row] - alpha * m / (np.sqrt(v) + epsilon),
                                   rtol=1e-4)


def test_row_skipped_later_keeps_moments_undecayed() -> None:
    layer = _embedding(seed=2)
    optimizer = LazyAdam(learning_rate=0.05)
    _sparse_step(layer, optimizer, [0, 4])
    momentum_row_4 = optimizer._momentums[0].numpy()[4].copy()
    weights_row_4 = layer.embeddings.numpy()[4].copy()

    _sparse_step(layer, optimizer, [0, 6])

    # Dense Adam would decay row 4's moments and keep moving it; lazy Adam leaves both alone.
    np.testing.assert_array_equal(optimizer._momentums[0].numpy()[4], momentum_row_4)
    np.testing.assert_array_equal(layer.embeddings.numpy()[4], weights_row_4)


def test_dense_gradients_match_keras_adam() -> None:
    initial = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    lazy_variable = keras.Variable(initial)
    adam_variable = keras.Variable(initial)
    lazy = LazyAdam(learning_rate=0.01)
    adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-7)

    for step in range(5):
        gradient = tf.constant(np.sin(initial * (step + 1)))
        lazy.apply([gradient], [lazy_variable])
        adam.apply([gradient], [adam_variable])

    np.testing.assert_allclose(lazy_variable.numpy(), adam_variable.numpy(), rtol=1e-4, atol=1e-7)


def test_sparse_equals_dense_when_every_row_is_touched() -> None:
    sparse_layer = _embedding(seed=3)
    dense_variable = keras.Variable(sparse_layer.embeddings.numpy())
    sparse_optimizer = LazyAdam(learning_rate=0.02)
    dense_optimizer = LazyAdam(learning_rate=0.02)

    for _ in range(3):
        _sparse_step(sparse_layer, sparse_optimizer, list(range(ROWS)))
        dense_optimizer.apply([tf.convert_to_tensor(2 * dense_variable.numpy())], [dense_variable])

    np.testing.assert_allclose(sparse_layer.embeddings.numpy(), dense_variable.numpy(), rtol=1e-4, atol=1e-7)


def test_config_round_trip() -> None:
    optimizer = LazyAdam(learning_rate=0.3, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    restored = LazyAdam.from_config(optimizer.get_config())
    assert (restored.beta_1, restored.beta_2, restored.epsilon) == (0.8, 0.99, 1e-6)
    assert float(restored.learning_rate) == pytest.approx(0.3)
