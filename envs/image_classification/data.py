"""Image datasets of the proxy task, read through the data registry, and the split into train,
validation and test subsets.

Images come back as uint8 arrays of shape (N, H, W, C) and labels as int64 arrays of shape (N,).
Decoded datasets are kept per process, so the trials of one worker read and decode each file once.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from seqopt.data import locate

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset with its official train/test split."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def _read_idx(path: Path, header_bytes: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header_bytes)


@cache
def load_fashion_mnist() -> ImageDataset:
    """Return Fashion-MNIST: 60,000 train and 10,000 test images of 28x28x1."""

    def images(filename: str) -> np.ndarray:
        # IDX image files start with a 16-byte header: magic number, count, rows, columns.
        return _read_idx(locate("fashion-mnist", filename), 16).reshape(-1, 28, 28, 1)

    def labels(filename: str) -> np.ndarray:
        return _read_idx(locate("fashion-mnist", filename), 8).astype(np.int64)

    return ImageDataset(
        name="fashion-mnist",
        train_images=images("train-images-idx3-ubyte.gz"),
        train_labels=labels("train-labels-idx1-ubyte.gz"),
        test_images=images("t10k-images-idx3-ubyte.gz"),
        test_labels=labels("t10k-labels-idx1-ubyte.gz"),
        num_classes=10,
    )


@cache
def load_cifar10() -> ImageDataset:
    """Return CIFAR-10 from its JPEG copy: 50,000 train and 10,000 test images of 32x32x3.

    The JPEG files are a lossy copy, so pixels differ slightly from the original CIFAR-10 binaries.
    Members are sorted by name, which makes the order independent of the archive's.
    """
    from PIL import Image

    archive = locate("cifar10-jpeg", "cifar10_jpg.tar.gz")
    records: list[tuple[str, int, str, np.ndarray]] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            split, class_name, _ = member.name.split("/")
            handle = tar.extractfile(member)
            if handle is None:
                continue
            image = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
            records.append((member.name, CIFAR10_CLASSES.index(class_name), split, image))
    records.sort(key=lambda record: record[0])

    def stack(split: str) -> tuple[np.ndarray, np.ndarray]:
        chosen = [r for r in records if r[2] == split]
        return np.stack([r[3] for r in chosen]), np.array([r[1] for r in chosen], dtype=np.int64)

    train_images, train_labels = stack("train")
    test_images, test_labels = stack("test")
    return ImageDataset("cifar10", train_images, train_labels, test_images, test_labels, num_classes=10)


LOADERS = {"fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}


def load_dataset(name: str) -> ImageDataset:
    """Return the dataset called ``name`` ("fashion-mnist" or "cifar10")."""
    if name not in LOADERS:
        raise ValueError(f"dataset must be one of {sorted(LOADERS)}, got {name!r}.")
    return LOADERS[name]()


@dataclass(frozen=True)
class ProxySplit:
    """Indices of the proxy task's subsets: train and validation are disjoint parts of the official
    training set, test is part of the official test set."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_indices(num_train_available: int, num_test_available: int, num_train: int, num_validation: int,
                  num_test: int | None, seed: int) -> ProxySplit:
    """Draw the proxy subsets with a generator of their own, so that every trial gets the same split.

    The validation images are carved out of the training set, as the Evo-NAS paper does with 50,000
    ImageNet training images; its reward is the validation accuracy and the test set is used only
    for reporting. ``num_test`` None takes the whole test set.
    """
    if num_train < 1 or num_validation < 1:
        raise ValueError(f"num_train and num_validation must be >= 1, got {num_train} and {num_validation}.")
    if num_train + num_validation > num_train_available:
        raise ValueError(
            f"num_train + num_validation = {num_train + num_validation} exceeds the {num_train_available} "
            "training images of the dataset; lower one of them."
        )
    if num_test is not None and not 1 <= num_test <= num_test_available:
        raise ValueError(f"num_test must be in 1..{num_test_available} or null, got {num_test}.")
    rng = np.random.Generator(np.random.PCG64(seed))
    order = rng.permutation(num_train_available)
    validation = np.sort(order[:num_validation])
    train = np.sort(order[num_validation:num_validation + num_train])
    if num_test is None:
        test = np.arange(num_test_available)
    else:
        test = np.sort(rng.permutation(num_test_available)[:num_test])
    return ProxySplit(train=train, validation=validation, test=test)
