"""Run one image-classification proxy trial on a GPU with the gpu hardware backend.

Prints the GPU TensorFlow trains on, the trial's seconds (training, and build plus training plus
evaluation) and its validation and test accuracy. When TensorFlow sees no GPU (for example with
the tensorflow-cpu package), it exits with status 1 and a message naming what to install or check.

Run: python benchmarks/gpu_check.py [--env image_fashion_mnist] [--mixed-precision]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# MobileNetV2 as a point of the space (block 1 a depthwise-separable layer, the rest inverted
# bottlenecks with expansion 6), so every run trains the same, well-known network.
MOBILENET_V2_VALUES = ["dconv", 3, "identity", 1.0, 0] + ["mbconv6", 3, "identity", 1.0, 0] * 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="image_fashion_mnist",
                        help="env config of the trial: image_fashion_mnist (default), image_cifar10, "
                             "image_fashion_mnist_small")
    parser.add_argument("--mixed-precision", action="store_true", help="compute in float16 (hardware.mixed_precision)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trial's generator (default 0)")
    args = parser.parse_args()

    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from seqopt.hardware import configure_tensorflow

    overrides = [f"env={args.env}", "hardware=gpu", f"hardware.mixed_precision={str(args.mixed_precision).lower()}"]
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose("config", overrides=overrides)
    try:
        strategy = configure_tensorflow(cfg.hardware)
    except RuntimeError as error:
        print(f"GPU check failed: {error}", file=sys.stderr)
        return 1

    import tensorflow as tf

    visible = tf.config.get_visible_devices("GPU")
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in visible]
    print(f"TensorFlow {tf.__version__} trains on {', '.join(names)} "
          f"(strategy devices {list(strategy.extended.worker_devices)})")

    objective = instantiate(cfg.env)
    started = time.perf_counter()
    evaluation = objective.evaluate(objective.space.encode(MOBILENET_V2_VALUES),
                                    np.random.Generator(np.random.PCG64(args.seed)))
    total = time.perf_counter() - started
    if not evaluation.usable:
        print(f"The trial failed: {evaluation.error}", file=sys.stderr)
        return 1
    metrics = evaluation.metrics
    print(f"env {args.env}, mixed precision {args.mixed_precision}: {metrics['parameters']} parameters, "
          f"{metrics['steps']} steps")
    print(f"seconds: training {metrics['train_seconds']:.1f}, build + training + evaluation {total:.1f}")
    print(f"validation accuracy {evaluation.reward:.4f}, test accuracy {metrics['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
