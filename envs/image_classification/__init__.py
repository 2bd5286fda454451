"""Image classification architecture search over the MnasNet factorized hierarchical space.

Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828),
Section 6.4, on the space of Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search
for Mobile" (arXiv:1807.11626), without squeeze-and-excitation. TensorFlow is imported only when a
model is built or trained, never by importing this package.
"""

from seqopt.envs.image_classification.model import LayerPlan, NetworkConfig, build_model, plan_layers, round_filters
from seqopt.envs.image_classification.objective import ImageClassification
from seqopt.envs.image_classification.space import (
    MOBILENET_V2_BLOCKS,
    Architecture,
    BaseBlock,
    BlockChoice,
    MnasNetSpace,
)
from seqopt.envs.image_classification.training import TrainingConfig, accuracy, learning_rate_at, train_proxy

__all__ = [
    "MOBILENET_V2_BLOCKS",
    "Architecture",
    "BaseBlock",
    "BlockChoice",
    "ImageClassification",
    "LayerPlan",
    "MnasNetSpace",
    "NetworkConfig",
    "TrainingConfig",
    "accuracy",
    "build_model",
    "learning_rate_at",
    "plan_layers",
    "round_filters",
    "train_proxy",
]
