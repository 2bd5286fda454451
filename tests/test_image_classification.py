import math
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from seqopt.envs.image_classification import (
    MOBILENET_V2_BLOCKS,
    Architecture,
    BlockChoice,
    ImageClassification,
    MnasNetSpace,
    NetworkConfig,
    TrainingConfig,
    learning_rate_at,
    plan_layers,
    round_filters,
)
from seqopt.envs.image_classification.data import split_indices
from seqopt.envs.image_classification.space import CHOICE_FIELDS
from seqopt.objective import Objective, Status

# MobileNetV2 (Sandler et al. 2018) as a point of the space: block 1 is its expansion-1 layer (a
# depthwise-separable convolution), the rest are inverted bottlenecks with expansion 6.
MOBILENET_V2 = Architecture(
    (BlockChoice("dconv", 3, "identity", 1.0, 0),) + (BlockChoice("mbconv6", 3, "identity", 1.0, 0),) * 6
)

# Small networks whose parameters are counted by hand below: a quarter of MobileNetV2's filters,
# no rounding to multiples of 8, no head convolution, 16x16x1 inputs, 10 classes.
TINY_NETWORK = NetworkConfig(width_multiplier=0.25, channel_divisor=1, head_filters=0, dropout=0.0)
ALL_CONV = Architecture((BlockChoice("conv", 3, "none", 1.0, -1),) * 7)
MIXED = Architecture(
    (BlockChoice("conv", 3, "none", 1.0, -1), BlockChoice("mbconv3", 5, "pool", 1.0, 0))
    + (BlockChoice("conv", 3, "none", 1.0, -1),) * 3
    + (BlockChoice("dconv", 3, "identity", 1.25, 1), BlockChoice("conv", 3, "none", 1.0, -1))
)


def tiny_objective(**overrides):
    # 64 steps of 16 images. RMSProp's mean square starts at 0 (Keras's choice) rather than 1
    # (TensorFlow 1's), because starting at 1 keeps the first few dozen updates small.
    settings = dict(
        dataset="fashion-mnist", image_size=16, num_train=1024, num_validation=500, num_test=500,
        network=dict(width_multiplier=0.5, head_filters=64, dropout=0.0),
        training=dict(epochs=1, batch_size=16, learning_rate=0.002, initial_mean_square=0.0),
        hardware=dict(name="cpu", threads=2),
    )
    settings.update(overrides)
    return ImageClassification(**settings)


# Search space


def test_space_size_matches_mnasnet_count():
    space = MnasNetSpace()
    assert space.choices_per_block == 4 * 2 * 3 * 3 * 3 == 216
    assert len(space.choice_space) == 7 * 5
    assert space.choice_space.size == 216**7
    assert f"{space.choice_space.size:.1e}" == "2.2e+16"


def test_four_layer_offsets_give_paper_count():
    space = MnasNetSpace(layer_offsets=(-1, 0, 1, 2))
    assert space.choices_per_block == 288
    assert f"{space.choice_space.size:.1e}" == "1.6e+17"


def test_decoding_covers_every_choice():
    space = MnasNetSpace()
    base = space.decode((0,) * 35)
    for position, choice in enumerate(space.choice_space.choices):
        block, field = divmod(position, len(CHOICE_FIELDS))
        for index, value in enumerate(choice.values):
            indices = [0] * 35
            indices[position] = index
            architecture = space.decode(indices)
            assert getattr(architecture.blocks[block], CHOICE_FIELDS[field]) == value
            others = [b for number, b in enumerate(architecture.blocks) if number != block]
            assert others == [b for number, b in enumerate(base.blocks) if number != block]
            assert space.encode(architecture) == tuple(indices)


def test_architecture_describe():
    lines = MOBILENET_V2.describe().splitlines()
    assert len(lines) == 7
    assert lines[0] == "block 1: dconv 3x3, skip identity, filters x1.0, layers +0"
    assert lines[6] == "block 7: mbconv6 3x3, skip identity, filters x1.0, layers +0"


def test_choice_names_and_values():
    space = MnasNetSpace()
    assert space.choice_space.names[:5] == (
        "block1_conv_op", "block1_kernel_size", "block1_skip_op", "block1_filter_multiplier", "block1_layer_offset"
    )
    values = {c.name: c.values for c in space.choice_space.choices}
    assert values["block7_conv_op"] == ("conv", "dconv", "mbconv3", "mbconv6")
    assert values["block3_kernel_size"] == (3, 5)
    assert values["block4_skip_op"] == ("pool", "identity", "none")
    assert values["block5_filter_multiplier"] == (0.75, 1.0, 1.25)
    assert values["block6_layer_offset"] == (-1, 0, 1)


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        ((0,) * 34, "length 34 but the space has 35"),
        ((0,) * 34 + (3,), r"Position 34 \('block7_layer_offset'\): index 3 is out of range"),
        ((4,) + (0,) * 34, r"Position 0 \('block1_conv_op'\): index 4 is out of range"),
        ((-1,) + (0,) * 34, "index -1 is out of range"),
        ((0.5,) + (0,) * 34, "index must be an int"),
    ],
)
def test_bad_sequences_rejected(indices, match):
    space = MnasNetSpace()
    with pytest.raises(ValueError, match=match):
        space.decode(indices)
    with pytest.raises(ValueError, match=match):
        tiny_objective().evaluate(indices, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conv_ops": ("conv", "sepconv")}, r"unknown values \['sepconv'\]"),
        ({"kernel_sizes": (3, 4)}, "odd positive ints"),
        ({"skip_ops": ()}, "at least one value"),
        ({"filter_multipliers": (1.0, 1.0)}, "must not repeat"),
        ({"layer_offsets": (-2, 0)}, "offsets >= -1"),
    ],
)
def test_bad_space_values_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MnasNetSpace(**kwargs)


# Layer plan


def test_plan_follows_layer_offsets():
    for offsets in [(-1,) * 7, (0,) * 7, (1,) * 7, (1, -1, 0, 1, -1, 0, 1)]:
        architecture = Architecture(tuple(BlockChoice("conv", 3, "none", 1.0, o) for o in offsets))
        plans = plan_layers(architecture, NetworkConfig())
        for number, (base, offset) in enumerate(zip(MOBILENET_V2_BLOCKS, offsets), start=1):
            in_block = [p for p in plans if p.block == number]
            assert len(in_block) == base.layers + offset
            assert [p.stride for p in in_block] == ([base.stride] + [1] * (len(in_block) - 1))[:len(in_block)]


def test_plan_identity_needs_stride_one_and_equal_filters():
    plans = plan_layers(MOBILENET_V2, NetworkConfig())
    shortcuts = {p.name: p.shortcut for p in plans}
    # Block 1 changes 32 to 16 filters, block 2 starts with stride 2, block 5 changes 64 to 96.
    assert shortcuts["block1_layer1"] == "none"
    assert shortcuts["block2_layer1"] == "none"
    assert shortcuts["block2_layer2"] == "identity"
    assert shortcuts["block5_layer1"] == "none"
    assert shortcuts["block5_layer2"] == "identity"
    assert sum(s == "identity" for s in shortcuts.values()) == 10  # MobileNetV2's 10 residual additions


def test_plan_filters_follow_multiplier():
    architecture = Architecture(tuple(BlockChoice("conv", 3, "none", m, 0) for m in (0.75, 1.0, 1.25, 0.75, 1.0,
                                                                                      1.25, 0.75)))
    plans = plan_layers(architecture, NetworkConfig())
    out = {p.block: p.out_filters for p in plans}
    assert out == {1: 16, 2: 24, 3: 40, 4: 48, 5: 96, 6: 200, 7: 240}


@pytest.mark.parametrize(("filters", "divisor", "expected"), [(32, 8, 32), (12, 8, 16), (4, 8, 8), (30.0, 8, 32),
                                                              (28.8, 8, 32), (4.5, 1, 5), (50.0, 1, 50)])
def test_round_filters(filters, divisor, expected):
    assert round_filters(filters, divisor) == expected


# Learning-rate schedule


def test_schedule_warmup_then_staircase():
    config = TrainingConfig(learning_rate=0.1, warmup_fraction=0.1, decay_rate=0.5, decay_every_fraction=0.2)
    rates = learning_rate_at(np.arange(100), 100, config)
    # Warm-up over 10 steps: 0.01, 0.02, ..., 0.1.
    np.testing.assert_allclose(rates[:10], 0.1 * np.arange(1, 11) / 10)
    # Then halved every 20 steps: steps 10..29 at 0.1, 30..49 at 0.05, ..., 90..99 at 0.00625.
    np.testing.assert_allclose(rates[10:30], 0.1)
    np.testing.assert_allclose(rates[30:50], 0.05)
    np.testing.assert_allclose(rates[90:], 0.00625)


def test_default_schedule_ends_like_full_schedule():
    # The full schedule decays 0.97 every 2.4 of its 395 post-warm-up epochs: 164 stages.
    config = TrainingConfig(learning_rate=1.0)
    rates = learning_rate_at(np.arange(4000), 4000, config)
    assert rates.max() == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.97**164)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 0}, "training.epochs"), ({"learning_rate": -1.0}, "training.learning_rate"),
     ({"warmup_fraction": 1.0}, "warmup_fraction"), ({"batch_size": 2.5}, "training.batch_size")],
)
def test_bad_training_config_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"width_multiplier": 0}, "width_multiplier"), ({"head_filters": -1}, "head_filters"),
     ({"dropout": 1.0}, "dropout"), ({"stem_stride": 0}, "stem_stride")],
)
def test_bad_network_config_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkConfig(**kwargs)


# Objective construction and data split


def test_objective_protocol_and_pickling():
    objective = tiny_objective()
    assert isinstance(objective, Objective)
    assert objective.space == MnasNetSpace().choice_space
    objective._data = "prepared images"
    restored = pickle.loads(pickle.dumps(objective))
    assert restored._data is None
    assert restored.training == objective.training
    assert restored.config()["training"]["batch_size"] == 16
    assert restored.config()["hardware"]["threads"] == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"dataset": "mnist"}, "dataset must be 'fashion-mnist' or 'cifar10'"),
     ({"image_size": 4}, "image_size must be an int >= 8"),
     ({"num_train": 0}, "num_train must be an int >= 1, got 0"),
     ({"num_test": 2.5}, "num_test must be an int >= 1 or null"),
     ({"network": {"width": 1.0}}, r"Unknown network keys \['width'\]"),
     ({"training": {"lr": 1.0}}, r"Unknown training keys \['lr'\]")],
)
def test_bad_objective_arguments_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_objective(**kwargs)


def test_split_is_disjoint_and_fixed():
    split = split_indices(60000, 10000, num_train=1000, num_validation=300, num_test=200, seed=0)
    assert len(split.train) == 1000
    assert len(split.validation) == 300
    assert len(split.test) == 200
    assert not set(split.train) & set(split.validation)
    again = split_indices(60000, 10000, num_train=1000, num_validation=300, num_test=200, seed=0)
    np.testing.assert_array_equal(split.validation, again.validation)
    with pytest.raises(ValueError, match="exceeds the 60000 training images"):
        split_indices(60000, 10000, num_train=59000, num_validation=2000, num_test=None, seed=0)


# Keras models (TensorFlow)


def count_searched_layers(model):
    """Return {block: number of searched layers} from the layer names block<b>_layer<i>_..."""
    layers = {tuple(layer.name.split("_")[:2]) for layer in model.layers if layer.name.startswith("block")}
    counts: dict[int, int] = {}
    for block, _ in layers:
        number = int(block.removeprefix("block"))
        counts[number] = counts.get(number, 0) + 1
    return counts


@pytest.mark.slow
def test_mobilenet_v2_matches_keras_applications():
    import keras

    from seqopt.envs.image_classification import build_model

    model = build_model(MOBILENET_V2, (224, 224, 3), 1000, NetworkConfig(), np.random.default_rng(0))
    reference = keras.applications.MobileNetV2(weights=None)
    assert model.count_params() == reference.count_params() == 3_538_984
    assert count_searched_layers(model) == {1: 1, 2: 2, 3: 3, 4: 4, 5: 3, 6: 3, 7: 1}


@pytest.mark.slow
def test_parameter_count_by_hand():
    from seqopt.envs.image_classification import build_model

    # Filters at width 0.25: stem 8; blocks 4, 6, 8, 16, 24, 40, 80. A KxK convolution from a to b
    # filters has K*K*a*b weights, a KxK depthwise convolution K*K*a, a batch norm 4 per filter
    # (2 trainable), the classifier d*10 + 10.
    # ALL_CONV: every block a 3x3 convolution with one layer fewer than MobileNetV2: blocks 1 and 7
    # vanish, and blocks 2..6 have 1, 2, 3, 2, 2 layers.
    stem = 9 * 1 * 8 + 4 * 8
    block2 = 9 * 8 * 6 + 4 * 6
    block3 = (9 * 6 * 8 + 4 * 8) + (9 * 8 * 8 + 4 * 8)
    block4 = (9 * 8 * 16 + 4 * 16) + 2 * (9 * 16 * 16 + 4 * 16)
    block5 = (9 * 16 * 24 + 4 * 24) + (9 * 24 * 24 + 4 * 24)
    block6 = (9 * 24 * 40 + 4 * 40) + (9 * 40 * 40 + 4 * 40)
    classifier = 40 * 10 + 10
    all_conv = stem + block2 + block3 + block4 + block5 + block6 + classifier
    assert all_conv == 40186
    model = build_model(ALL_CONV, (16, 16, 1), 10, TINY_NETWORK, np.random.default_rng(0))
    assert model.count_params() == all_conv
    batch_norm_filters = 8 + 6 + 2 * 8 + 3 * 16 + 2 * 24 + 2 * 40
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == all_conv - 2 * batch_norm_filters
    assert count_searched_layers(model) == {2: 1, 3: 2, 4: 3, 5: 2, 6: 2}

    # MIXED: block 2 becomes two 5x5 MBConv3 layers with pooling shortcuts; block 6 four depthwise-
    # separable 3x3 layers with 1.25 x 160 x 0.25 = 50 filters and identity residuals.
    mbconv_first = (1 * 1 * 8 * 24 + 4 * 24) + (25 * 24 + 4 * 24) + (1 * 1 * 24 * 6 + 4 * 6)
    pool_projection = 1 * 1 * 8 * 6 + 4 * 6  # 8 -> 6 filters, so the pooled shortcut is projected
    mbconv_second = (1 * 1 * 6 * 18 + 4 * 18) + (25 * 18 + 4 * 18) + (1 * 1 * 18 * 6 + 4 * 6)
    dconv_first = (9 * 24 + 4 * 24) + (24 * 50 + 4 * 50)  # stride 2: no residual
    dconv_rest = 3 * ((9 * 50 + 4 * 50) + (50 * 50 + 4 * 50))
    mixed = (all_conv - block2 - block6 - classifier + mbconv_first + pool_projection + mbconv_second
             + dconv_first + dconv_rest + 50 * 10 + 10)
    assert mixed == 30290
    model = build_model(MIXED, (16, 16, 1), 10, TINY_NETWORK, np.random.default_rng(0))
    assert model.count_params() == mixed
    assert count_searched_layers(model) == {2: 2, 3: 2, 4: 3, 5: 2, 6: 4}
    names = {layer.name for layer in model.layers}
    assert {"block2_layer1_pool", "block2_layer1_pool_conv", "block2_layer2_pool", "block6_layer2_add"} <= names
    assert "block2_layer2_pool_conv" not in names
    assert "block6_layer1_add" not in names


@pytest.mark.slow
def test_tiny_proxy_trial_above_chance():
    objective = tiny_objective()
    evaluation = objective.evaluate(objective.space.encode([
        value for block in MIXED.blocks for value in (block.conv_op, block.kernel_size, block.skip_op,
                                                      block.filter_multiplier, block.layer_offset)
    ]), np.random.default_rng(0))
    assert evaluation.status is Status.OK, evaluation.error
    assert evaluation.reward > 0.25  # 10 balanced classes: chance is 0.1
    assert evaluation.metrics["validation_accuracy"] == evaluation.reward
    assert evaluation.metrics["test_accuracy"] > 0.25
    assert evaluation.metrics["steps"] == 1024 // 16
    assert evaluation.metrics["layers"] == 13
    assert evaluation.cost_seconds == evaluation.metrics["train_seconds"] > 0


@pytest.mark.slow
def test_same_rng_same_reward():
    objective = tiny_objective(num_train=256)
    indices = tuple(objective.space.sample(np.random.default_rng(3)))
    first = objective.evaluate(indices, np.random.default_rng(7))
    second = objective.evaluate(indices, np.random.default_rng(7))
    assert first.status is Status.OK, first.error
    assert first.reward == second.reward
    assert first.metrics["train_loss"] == second.metrics["train_loss"]


@pytest.mark.slow
def test_diverging_trial_fails():
    objective = tiny_objective(num_train=256, training=dict(epochs=1, batch_size=16, learning_rate=1e20))
    evaluation = objective.evaluate((0,) * 35, np.random.default_rng(0))
    assert evaluation.status is Status.FAILED
    assert math.isnan(evaluation.reward)
    assert "training loss became" in evaluation.error
    assert evaluation.cost_seconds > 0


@pytest.mark.slow
def test_training_exception_fails():
    # Fewer training images than one batch: train_proxy raises, and the trial fails instead.
    objective = tiny_objective(num_train=8)
    evaluation = objective.evaluate((0,) * 35, np.random.default_rng(0))
    assert evaluation.status is Status.FAILED
    assert "fewer than training.batch_size=16" in evaluation.error


@pytest.mark.slow
def test_mixed_float16_step_runs():
    # The gpu backend's mixed float16 path (dynamic loss scale) runs on the CPU too. A fresh process,
    # because the Keras dtype policy is process-wide.
    code = textwrap.dedent("""
        import sys
        import keras
        import numpy as np
        keras.mixed_precision.set_global_policy("mixed_float16")
        sys.path.insert(0, "tests")
        from test_image_classification import MIXED
        from seqopt.envs.image_classification import NetworkConfig, TrainingConfig, build_model, train_proxy
        rng = np.random.default_rng(0)
        images = rng.normal(size=(256, 16, 16, 1)).astype(np.float32)
        labels = rng.integers(0, 10, 256)
        model = build_model(MIXED, (16, 16, 1), 10, NetworkConfig(width_multiplier=0.25, head_filters=32), rng)
        print("dtypes", model.get_layer("stem_conv").compute_dtype, model.get_layer("logits").compute_dtype)
        result = train_proxy(model, (images, labels), (images[:64], labels[:64]), (images[:64], labels[:64]),
                             TrainingConfig(epochs=1, batch_size=32), rng)
        print("result", result.steps, result.diverged, np.isfinite(result.train_loss))
    """)
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                               cwd=Path(__file__).resolve().parents[1], env=environment)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "dtypes float16 float32" in completed.stdout
    assert "result 8 None True" in completed.stdout
