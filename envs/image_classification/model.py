"""Build a Keras model for a decoded MnasNet-space architecture.

The network is the stem, the searched layers of the 7 blocks and the head of MobileNetV2 (Sandler
et al. 2018, arXiv:1801.04381), with every block replaced by the choices of its ``BlockChoice``.
``plan_layers`` works out every layer's filters, stride and shortcut in plain Python.
``build_model`` turns the plan into Keras layers, and it is the only part that imports TensorFlow.

Layers, with BN a batch normalization and ReLU after every BN but the last one of a layer:

- conv: KxK convolution, BN, ReLU.
- dconv: KxK depthwise convolution, BN, ReLU, 1x1 convolution, BN.
- mbconvT: 1x1 convolution to T times the input filters, BN, ReLU, KxK depthwise convolution,
  BN, ReLU, 1x1 convolution, BN (MobileNetV2's inverted bottleneck with expansion T).

Shortcuts follow MnasNet: only the first layer of a block may have stride 2, and an identity
residual is added only where the stride is 1 and the input and output filters are equal (in the
first layer of a block that changes either, "identity" means no shortcut).

NOTE: MnasNet lists pooling as a skip operation but the sources used here do not define its form.
This implementation adds it to every layer of the block as 3x3 average pooling with the layer's
stride, followed by a 1x1 convolution and BN where the filters change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from seqopt.envs.image_classification.space import (
    MBCONV_EXPANSION,
    MOBILENET_V2_BLOCKS,
    MOBILENET_V2_HEAD_FILTERS,
    MOBILENET_V2_STEM_FILTERS,
    Architecture,
)

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class NetworkConfig:
    """Size of the network around the searched choices.

    Attributes:
        width_multiplier: scales every filter count (MobileNet's alpha) but the head's.
        channel_divisor: filter counts are rounded to a multiple of this, as MobileNet does.
        stem_filters: filters of the 3x3 stem convolution before width scaling.
        stem_stride: stride of the stem; MobileNetV2 uses 2 for 224x224 images.
        head_filters: filters of the 1x1 convolution before global pooling; 0 leaves it out.
        dropout: dropout rate before the classifier.
        batch_norm_momentum: decay of the batch-norm moving statistics.
        batch_norm_epsilon: batch-norm epsilon.
        weight_decay: L2 factor on every kernel; the loss gets weight_decay * sum(w**2) / 2.
    """

    width_multiplier: float = 1.0
    channel_divisor: int = 8
    stem_filters: int = MOBILENET_V2_STEM_FILTERS
    stem_stride: int = 2
    head_filters: int = MOBILENET_V2_HEAD_FILTERS
    dropout: float = 0.2
    batch_norm_momentum: float = 0.9
    batch_norm_epsilon: float = 1e-3
    weight_decay: float = 1e-5

    def __post_init__(self) -> None:
        if not self.width_multiplier > 0:
            raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier!r}.")
        for name in ("channel_divisor", "stem_filters", "stem_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if isinstance(self.head_filters, bool) or not isinstance(self.head_filters, int) or self.head_filters < 0:
            raise ValueError(f"head_filters must be an int >= 0 (0: no head convolution), got {self.head_filters!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if not 0.0 <= self.batch_norm_momentum < 1.0:
            raise ValueError(f"batch_norm_momentum must be in [0, 1), got {self.batch_norm_momentum!r}.")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}.")


def round_filters(filters: float, divisor: int) -> int:
    """Round to the nearest multiple of ``divisor``, never below ``divisor`` or 90% of ``filters``.

    The rule of ``_make_divisible`` in ``keras.applications.MobileNetV2`` (Keras 3.15).
    """
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class LayerPlan:
    """One searched layer: where it sits and what it computes.

    Attributes:
        block: block number, 1..7.
        index: layer number within the block, from 1.
        conv_op: "conv", "dconv", "mbconv3" or "mbconv6".
        kernel_size: spatial kernel side.
        stride: 2 only for the first layer of a downsampling block.
        in_filters: input channels.
        out_filters: output channels.
        shortcut: "identity", "pool" or "none", after the stride and filter rules.
    """

    block: int
    index: int
    conv_op: str
    kernel_size: int
    stride: int
    in_filters: int
    out_filters: int
    shortcut: str

    @property
    def name(self) -> str:
        return f"block{self.block}_layer{self.index}"


def plan_layers(architecture: Architecture, network: NetworkConfig) -> list[LayerPlan]:
    """Return every searched layer of ``architecture``, from the input side."""
    divisor = network.channel_divisor
    in_filters = round_filters(network.stem_filters * network.width_multiplier, divisor)
    plans = []
    for number, (base, choice) in enumerate(zip(MOBILENET_V2_BLOCKS, architecture.blocks), start=1):
        out_filters = round_filters(base.filters * choice.filter_multiplier * network.width_multiplier, divisor)
        for index in range(1, base.layers + choice.layer_offset + 1):
            stride = base.stride if index == 1 else 1
            shortcut = choice.skip_op
            if shortcut == "identity" and (stride != 1 or in_filters != out_filters):
                shortcut = "none"
            plans.append(LayerPlan(number, index, choice.conv_op, choice.kernel_size, stride, in_filters,
                                   out_filters, shortcut))
            in_filters = out_filters
    return plans


class _SeededInitializers:
    """Initializers with distinct seeds drawn from one numpy Generator.

    A Keras initializer with a fixed seed returns the same values on every call, so every layer
    gets its own. No Keras or TensorFlow global seed is involved.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def seed(self) -> int:
        return int(self.rng.integers(2**31 - 1))

    def conv(self) -> Any:
        import keras

        # He initialization scaled by fan-out, with a truncated normal.
        return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal",
                                                  seed=self.seed())

    def dense(self) -> Any:
        import keras

        return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_out", distribution="uniform", seed=self.seed())


def build_model(architecture: Architecture, input_shape: tuple[int, int, int], num_classes: int,
                network: NetworkConfig, rng: np.random.Generator) -> keras.Model:
    """Build the Keras model of ``architecture``, which maps normalized float images to logits.

    ``rng`` draws the seed of every initializer and of the dropout layer.
    """
    import keras
    from keras import layers

    initializers = _SeededInitializers(rng)
    regularizer = keras.regularizers.L2(network.weight_decay / 2) if network.weight_decay > 0 else None

    def batch_norm(name: str) -> Any:
        return layers.BatchNormalization(momentum=network.batch_norm_momentum, epsilon=network.batch_norm_epsilon,
                                         name=name)

    def conv(x: Any, filters: int, kernel_size: int, stride: int, name: str) -> Any:
        return layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False,
                             kernel_initializer=initializers.conv(), kernel_regularizer=regularizer, name=name)(x)

    def depthwise(x: Any, kernel_size: int, stride: int, name: str) -> Any:
        return layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same", use_bias=False,
                                      depthwise_initializer=initializers.conv(), depthwise_regularizer=regularizer,
                                      name=name)(x)

    inputs = keras.Input(shape=input_shape, name="image")
    stem_filters = round_filters(network.stem_filters * network.width_multiplier, network.channel_divisor)
    x = conv(inputs, stem_filters, 3, network.stem_stride, "stem_conv")
    x = layers.ReLU(name="stem_relu")(batch_norm("stem_bn")(x))

    for plan in plan_layers(architecture, network):
        name = plan.name
        y = x
        if plan.conv_op == "conv":
            y = conv(y, plan.out_filters, plan.kernel_size, plan.stride, f"{name}_conv")
            y = layers.ReLU(name=f"{name}_relu")(batch_norm(f"{name}_bn")(y))
        else:
            if plan.conv_op in MBCONV_EXPANSION:
                y = conv(y, plan.in_filters * MBCONV_EXPANSION[plan.conv_op], 1, 1, f"{name}_expand_conv")
                y = layers.ReLU(name=f"{name}_expand_relu")(batch_norm(f"{name}_expand_bn")(y))
            y = depthwise(y, plan.kernel_size, plan.stride, f"{name}_depthwise_conv")
            y = layers.ReLU(name=f"{name}_depthwise_relu")(batch_norm(f"{name}_depthwise_bn")(y))
            y = conv(y, plan.out_filters, 1, 1, f"{name}_project_conv")
            y = batch_norm(f"{name}_project_bn")(y)

        if plan.shortcut == "identity":
            y = layers.Add(name=f"{name}_add")([x, y])
        elif plan.shortcut == "pool":
            shortcut = layers.AveragePooling2D(3, strides=plan.stride, padding="same", name=f"{name}_pool")(x)
            if plan.in_filters != plan.out_filters:
                shortcut = conv(shortcut, plan.out_filters, 1, 1, f"{name}_pool_conv")
                shortcut = batch_norm(f"{name}_pool_bn")(shortcut)
            y = layers.Add(name=f"{name}_add")([shortcut, y])
        x = y

    if network.head_filters > 0:
        x = conv(x, network.head_filters, 1, 1, "head_conv")
        x = layers.ReLU(name="head_relu")(batch_norm("head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if network.dropout > 0:
        x = layers.Dropout(network.dropout, seed=initializers.seed(), name="dropout")(x)
    # Logits in float32 even under a mixed-precision policy, so the loss is computed in float32.
    outputs = layers.Dense(num_classes, kernel_initializer=initializers.dense(), kernel_regularizer=regularizer,
                           dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="mnasnet_space_model")
