"""The image classification objective: the validation accuracy of a briefly trained MnasNet-space model."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from seqopt.envs.image_classification.data import load_dataset, split_indices
from seqopt.envs.image_classification.model import NetworkConfig, build_model, plan_layers
from seqopt.envs.image_classification.space import MnasNetSpace
from seqopt.envs.image_classification.training import TrainingConfig, train_proxy
from seqopt.hardware import HardwareConfig, configure_tensorflow
from seqopt.objective import Evaluation


@dataclass
class _PreparedData:
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    input_shape: tuple[int, int, int]
    num_classes: int


def _as_config(cls: type[Any], value: Any, name: str) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"Unknown {name} keys {unknown}; known keys: {sorted(known)}.")
        return cls(**value)
    raise TypeError(f"{name} must be a mapping or a {cls.__name__}, got {type(value).__name__}.")


class ImageClassification:
    """Architecture search on an image proxy task over the MnasNet factorized hierarchical space.

    Each evaluation builds the decoded network, trains it for ``training.epochs`` epochs on
    ``num_train`` training images and returns the accuracy on ``num_validation`` other training
    images as the reward. Test accuracy, parameter counts and timings go to the metrics; the
    training seconds are the cost. A NaN or infinite training loss, or an exception while building
    or training, gives a failed Evaluation with the error text. An invalid index sequence raises
    ValueError, and a missing or corrupt dataset file raises the data registry's error.

    Args:
        dataset: "fashion-mnist" or "cifar10", read through ``seqopt.data.locate``.
        image_size: side of the square images fed to the network, resized bilinearly; None keeps
            the dataset's size (28 or 32).
        num_train: training images per trial.
        num_validation: images carved from the official training set as the validation split.
        num_test: images of the official test set to report test accuracy on; None for all.
        data_seed: seed of the split, fixed for the whole search so rewards stay comparable.
        network: ``NetworkConfig`` or its fields as a mapping.
        training: ``TrainingConfig`` or its fields as a mapping.
        space: ``MnasNetSpace`` or its value lists as a mapping; None for the MnasNet values.
        hardware: ``seqopt.hardware.HardwareConfig`` or the Hydra ``hardware`` group.
    """

    def __init__(
        self,
        dataset: str = "fashion-mnist",
        image_size: int | None = None,
        num_train: int = 10000,
        num_validation: int = 2000,
        num_test: int | None = 2000,
        data_seed: int = 0,
        network: NetworkConfig | Mapping[str, Any] | None = None,
        training: TrainingConfig | Mapping[str, Any] | None = None,
        space: MnasNetSpace | Mapping[str, Any] | None = None,
        hardware: HardwareConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if dataset not in ("fashion-mnist", "cifar10"):
            raise ValueError(f"dataset must be 'fashion-mnist' or 'cifar10', got {dataset!r}.")
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                       or image_size < 8):
            raise ValueError(f"image_size must be an int >= 8 or null, got {image_size!r}.")
        for name, value in (("num_train", num_train), ("num_validation", num_validation)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if num_test is not None and (isinstance(num_test, bool) or not isinstance(num_test, int) or num_test < 1):
            raise ValueError(f"num_test must be an int >= 1 or null, got {num_test!r}.")
        self.dataset = dataset
        self.image_size = image_size
        self.num_train = num_train
        self.num_validation = num_validation
        self.num_test = num_test
        self.data_seed = data_seed
        self.network: NetworkConfig = _as_config(NetworkConfig, network, "network")
        self.training: TrainingConfig = _as_config(TrainingConfig, training, "training")
        self.hardware = HardwareConfig.from_config(hardware)
        if isinstance(space, MnasNetSpace):
            self.mnasnet_space = space
        else:
            self.mnasnet_space = MnasNetSpace(**dict(space or {}))
        self.space = self.mnasnet_space.choice_space
        self._data: _PreparedData | None = None

    def __repr__(self) -> str:
        return (f"ImageClassification(dataset={self.dataset!r}, image_size={self.image_size}, "
                f"num_train={self.num_train}, epochs={self.training.epochs})")

    def __getstate__(self) -> dict[str, Any]:
        # Workers prepare their own copy of the images instead of receiving them pickled.
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def prepare_data(self) -> _PreparedData:
        """Load, split, resize and normalize the images once per process."""
        if self._data is not None:
            return self._data
        source = load_dataset(self.dataset)
        split = split_indices(len(source.train_images), len(source.test_images), self.num_train,
                              self.num_validation, self.num_test, self.data_seed)
        train_images = self._resize(source.train_images[split.train])
        # Per-channel statistics of the training subset only, so no validation image leaks in.
        mean = train_images.mean(axis=(0, 1, 2), keepdims=True)
        std = train_images.std(axis=(0, 1, 2), keepdims=True) + 1e-6

        def normalize(images: np.ndarray) -> np.ndarray:
            return ((images - mean) / std).astype(np.float32)

        self._data = _PreparedData(
            train=(normalize(train_images), source.train_labels[split.train]),
            validation=(normalize(self._resize(source.train_images[split.validation])),
                        source.train_labels[split.validation]),
            test=(normalize(self._resize(source.test_images[split.test])), source.test_labels[split.test]),
            input_shape=(*train_images.shape[1:3], train_images.shape[3]),
            num_classes=source.num_classes,
        )
        return self._data

    def _resize(self, images: np.ndarray) -> np.ndarray:
        images = images.astype(np.float32) / 255.0
        if self.image_size is None or self.image_size == images.shape[1]:
            return images
        import tensorflow as tf

        return tf.image.resize(images, (self.image_size, self.image_size), method="bilinear").numpy()

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator) -> Evaluation:
        architecture = self.mnasnet_space.decode(indices)
        # Hardware first: TensorFlow accepts thread and device settings only before it starts, and
        # resizing the images starts it. A backend that cannot start raises instead of failing each trial.
        strategy = configure_tensorflow(self.hardware)
        data = self.prepare_data()
        plans = plan_layers(architecture, self.network)
        metrics: dict[str, Any] = {"layers": len(plans)}
        started = time.perf_counter()
        try:
            import keras

            keras.backend.clear_session(free_memory=True)
            with strategy.scope():
                model = build_model(architecture, data.input_shape, data.num_classes, self.network, rng)
            metrics["parameters"] = int(model.count_params())
            metrics["trainable_parameters"] = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
            metrics["build_seconds"] = time.perf_counter() - started
            with strategy.scope():
                result = train_proxy(model, data.train, data.validation, data.test, self.training, rng, strategy)
        except Exception as error:
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            return Evaluation.failed(f"proxy training raised {text}", cost_seconds=time.perf_counter() - started,
                                     metrics=metrics)
        metrics.update(train_seconds=result.seconds, train_cpu_seconds=result.cpu_seconds,
                       evaluate_seconds=result.evaluate_seconds, steps=result.steps)
        if result.diverged is not None:
            return Evaluation.failed(result.diverged, cost_seconds=result.seconds, metrics=metrics)
        metrics.update(
            validation_accuracy=result.validation_accuracy,
            test_accuracy=result.test_accuracy,
            train_accuracy=result.train_accuracy,
            train_loss=result.train_loss,
        )
        if not math.isfinite(result.train_loss):
            return Evaluation.failed(f"training loss of the last epoch is {result.train_loss}",
                                     cost_seconds=result.seconds, metrics=metrics)
        return Evaluation(reward=result.validation_accuracy, metrics=metrics, cost_seconds=result.seconds)

    def config(self) -> dict[str, Any]:
        """Return the objective's settings as plain data, for reports."""
        return {
            "dataset": self.dataset,
            "image_size": self.image_size,
            "num_train": self.num_train,
            "num_validation": self.num_validation,
            "num_test": self.num_test,
            "data_seed": self.data_seed,
            "network": asdict(self.network),
            "training": asdict(self.training),
            "hardware": asdict(self.hardware),
        }
