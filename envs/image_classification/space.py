"""The factorized hierarchical search space of MnasNet, without squeeze-and-excitation.

Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search for Mobile" (arXiv:1807.11626),
as searched in Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search"
(arXiv:1811.09828), Section 6.4.

The network is MobileNetV2 split into 7 blocks. Each block repeats one searched layer, and every
block has its own five choices:

- ConvOp: regular convolution, depthwise-separable convolution, or a mobile inverted bottleneck
  (MBConv) with expansion 3 or 6;
- kernel size: 3x3 or 5x5;
- SkipOp: a pooling shortcut, an identity residual, or no shortcut;
- output filters: 0.75, 1.0 or 1.25 times the MobileNetV2 block's filters;
- number of layers: the MobileNetV2 block's count -1, +0 or +1.

That is 4 * 2 * 3 * 3 * 3 = 216 combinations per block and 216**7 (about 2.2e16) networks. The
Evo-NAS paper states 1.6e17 networks without squeeze-and-excitation, which is 288**7: one of its
three-valued choices must have had a fourth value, and the paper does not say which. Any of the
value lists can be changed through the constructor, for example ``layer_offsets=(-1, 0, 1, 2)``
gives 288 per block and that count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seqopt.spaces import Choice, ChoiceSpace

NUM_BLOCKS = 7

CONV_OPS: tuple[str, ...] = ("conv", "dconv", "mbconv3", "mbconv6")
KERNEL_SIZES: tuple[int, ...] = (3, 5)
SKIP_OPS: tuple[str, ...] = ("pool", "identity", "none")
FILTER_MULTIPLIERS: tuple[float, ...] = (0.75, 1.0, 1.25)
LAYER_OFFSETS: tuple[int, ...] = (-1, 0, 1)

# Expansion ratio of each ConvOp's inner layer; "conv" and "dconv" have none.
MBCONV_EXPANSION = {"mbconv3": 3, "mbconv6": 6}

# Names of the per-block choices, in the order a sequence lists them.
CHOICE_FIELDS: tuple[str, ...] = ("conv_op", "kernel_size", "skip_op", "filter_multiplier", "layer_offset")


@dataclass(frozen=True)
class BaseBlock:
    """One block of the reference network, MobileNetV2 (Sandler et al. 2018, arXiv:1801.04381), Table 2.

    Attributes:
        expansion: expansion ratio t of its bottleneck layers.
        filters: output channels c.
        layers: number of repeated layers n.
        stride: stride s of the block's first layer; the other layers have stride 1.
    """

    expansion: int
    filters: int
    layers: int
    stride: int


# MobileNetV2 from its stem to its head: a 3x3 stem convolution with 32 filters and stride 2, the
# seven bottleneck blocks below, then a 1x1 convolution to 1280 filters.
MOBILENET_V2_STEM_FILTERS = 32
MOBILENET_V2_BLOCKS: tuple[BaseBlock, ...] = (
    BaseBlock(1, 16, 1, 1),
    BaseBlock(6, 24, 2, 2),
    BaseBlock(6, 32, 3, 2),
    BaseBlock(6, 64, 4, 2),
    BaseBlock(6, 96, 3, 1),
    BaseBlock(6, 160, 3, 2),
    BaseBlock(6, 320, 1, 1),
)
MOBILENET_V2_HEAD_FILTERS = 1280


@dataclass(frozen=True)
class BlockChoice:
    """The searched layer of one block and how often it repeats.

    Attributes:
        conv_op: "conv", "dconv", "mbconv3" or "mbconv6".
        kernel_size: side of the square spatial kernel.
        skip_op: "pool", "identity" or "none".
        filter_multiplier: output filters relative to the MobileNetV2 block.
        layer_offset: number of layers relative to the MobileNetV2 block.
    """

    conv_op: str
    kernel_size: int
    skip_op: str
    filter_multiplier: float
    layer_offset: int


@dataclass(frozen=True)
class Architecture:
    """A decoded sequence: one ``BlockChoice`` per block, from the input side."""

    blocks: tuple[BlockChoice, ...]

    def describe(self) -> str:
        """Format the architecture as one short line per block."""
        lines = []
        for number, block in enumerate(self.blocks, start=1):
            lines.append(
                f"block {number}: {block.conv_op} {block.kernel_size}x{block.kernel_size}, skip {block.skip_op}, "
                f"filters x{block.filter_multiplier}, layers {block.layer_offset:+d}"
            )
        return "\n".join(lines)


def _check_values(name: str, values: Sequence[Any], allowed: Sequence[Any] | None = None) -> tuple[Any, ...]:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must list at least one value, got {values!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat a value, got {values!r}.")
    if allowed is not None:
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"{name} contains unknown values {unknown}; allowed values: {list(allowed)}.")
    return values


class MnasNetSpace:
    """The 7-block factorized hierarchical space and its decoding into an ``Architecture``.

    Args:
        conv_ops: ConvOp values, a subset of ("conv", "dconv", "mbconv3", "mbconv6").
        kernel_sizes: odd kernel sizes.
        skip_ops: SkipOp values, a subset of ("pool", "identity", "none").
        filter_multipliers: positive multiples of the MobileNetV2 block's filters.
        layer_offsets: offsets added to the MobileNetV2 block's number of layers. A block whose
            count becomes 0 is left out. Only blocks 1 and 7 can reach 0, and because both have
            stride 1, leaving them out keeps every feature-map size.
    """

    def __init__(
        self,
        conv_ops: Sequence[str] = CONV_OPS,
        kernel_sizes: Sequence[int] = KERNEL_SIZES,
        skip_ops: Sequence[str] = SKIP_OPS,
        filter_multipliers: Sequence[float] = FILTER_MULTIPLIERS,
        layer_offsets: Sequence[int] = LAYER_OFFSETS,
    ) -> None:
        self.conv_ops = _check_values("conv_ops", conv_ops, CONV_OPS)
        self.skip_ops = _check_values("skip_ops", skip_ops, SKIP_OPS)
        self.kernel_sizes = _check_values("kernel_sizes", kernel_sizes)
        for size in self.kernel_sizes:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
                raise ValueError(f"kernel_sizes must be odd positive ints, got {size!r} in {self.kernel_sizes}.")
        self.filter_multipliers = tuple(float(m) for m in _check_values("filter_multipliers", filter_multipliers))
        for multiplier in self.filter_multipliers:
            if not multiplier > 0:
                raise ValueError(f"filter_multipliers must be positive, got {multiplier!r}.")
        self.layer_offsets = _check_values("layer_offsets", layer_offsets)
        for offset in self.layer_offsets:
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise ValueError(f"layer_offsets must be ints, got {offset!r} in {self.layer_offsets}.")
            smallest = min(block.layers for block in MOBILENET_V2_BLOCKS)
            if smallest + offset < 0:
                raise ValueError(
                    f"layer_offsets value {offset} would give a block with {smallest + offset} layers; "
                    f"use offsets >= {-smallest}."
                )

        per_block = {
            "conv_op": self.conv_ops,
            "kernel_size": self.kernel_sizes,
            "skip_op": self.skip_ops,
            "filter_multiplier": self.filter_multipliers,
            "layer_offset": self.layer_offsets,
        }
        choices = [
            Choice(f"block{number}_{field}", per_block[field])
            for number in range(1, NUM_BLOCKS + 1)
            for field in CHOICE_FIELDS
        ]
        self.choice_space = ChoiceSpace(choices)

    def __repr__(self) -> str:
        return (
            f"MnasNetSpace(conv_ops={self.conv_ops}, kernel_sizes={self.kernel_sizes}, skip_ops={self.skip_ops}, "
            f"filter_multipliers={self.filter_multipliers}, layer_offsets={self.layer_offsets})"
        )

    @property
    def choices_per_block(self) -> int:
        """Number of distinct settings of one block (216 with the default values)."""
        return int(self.choice_space.cardinalities[: len(CHOICE_FIELDS)].prod())

    def decode(self, indices: Sequence[int]) -> Architecture:
        """Turn an index sequence into an Architecture.

        Raises:
            ValueError: from ``ChoiceSpace.validate``, naming the first bad position, on a wrong
                length or an index out of range.
        """
        values = self.choice_space.decode(indices)
        width = len(CHOICE_FIELDS)
        blocks = []
        for start in range(0, len(values), width):
            conv_op, kernel_size, skip_op, filter_multiplier, layer_offset = values[start:start + width]
            blocks.append(BlockChoice(conv_op, kernel_size, skip_op, filter_multiplier, layer_offset))
        return Architecture(tuple(blocks))

    def encode(self, architecture: Architecture) -> tuple[int, ...]:
        """Turn an Architecture back into its index sequence."""
        if len(architecture.blocks) != NUM_BLOCKS:
            raise ValueError(f"architecture must have {NUM_BLOCKS} blocks, got {len(architecture.blocks)}.")
        values: list[Any] = []
        for block in architecture.blocks:
            values.extend(getattr(block, field) for field in CHOICE_FIELDS)
        return self.choice_space.encode(values)
