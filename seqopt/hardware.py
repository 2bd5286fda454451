"""Hardware backends for the trainers of real models: CPU threads, one GPU per worker, or a TPU.

The search loop never reads the hardware config. A trainer calls one function at the start of
each trial and builds its model under the result:

    strategy = configure_tensorflow(cfg.hardware)   # tf.distribute.Strategy
    with strategy.scope():
        model = build(...)

    device = configure_torch(cfg.hardware)           # torch.device

Both accept the Hydra group ``conf/hardware`` (a mapping) or a ``HardwareConfig``, and calling
them again with the same config in the same process is cheap, because the result is kept.

Parallel trials on a multi-GPU host get one GPU each from their worker index: GPU
``devices[worker_index % len(devices)]``. The index is the ``worker_index`` argument or, when that
is None, the environment variable ``SEQOPT_WORKER_INDEX`` (``WORKER_INDEX_VARIABLE``), which an
executor that starts worker processes sets in each worker (``worker_environment`` returns the
variables to set). Under Ray, request ``num_gpus=1`` per trial instead: Ray then sets
``CUDA_VISIBLE_DEVICES`` so each worker sees exactly one GPU, and index 0 is the right one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import tensorflow as tf
    import torch

logger = logging.getLogger(__name__)

BACKENDS = ("cpu", "gpu", "tpu")
WORKER_INDEX_VARIABLE = "SEQOPT_WORKER_INDEX"


@dataclass(frozen=True)
class HardwareConfig:
    """Schema of the ``conf/hardware`` group.

    Attributes:
        name: backend, "cpu", "gpu" or "tpu".
        threads: intra-op threads of TensorFlow and torch per trial; None keeps the library default.
        inter_op_threads: TensorFlow inter-op threads (torch: interop threads); None keeps the default.
        devices: GPU indices (as the process sees them) that workers are spread over; None for all.
        memory_growth: let TensorFlow allocate GPU memory as needed instead of all of it at start.
        mixed_precision: compute in float16 on a GPU or bfloat16 on a TPU, keeping float32 weights.
        tpu_address: "grpc://HOST:PORT" of a TPU worker, a Cloud TPU name, or "local" on a TPU VM.
        tpu_timeout_seconds: seconds to wait for the TPU system to initialize before giving up.
    """

    name: str = "cpu"
    threads: int | None = None
    inter_op_threads: int | None = None
    devices: tuple[int, ...] | None = None
    memory_growth: bool = True
    mixed_precision: bool = False
    tpu_address: str | None = None
    tpu_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"hardware.name must be one of {list(BACKENDS)}, got {self.name!r}.")
        for field_name in ("threads", "inter_op_threads"):
            value = getattr(self, field_name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"hardware.{field_name} must be an int >= 1 or null, got {value!r}.")
        if self.devices is not None:
            devices = tuple(self.devices)
            if not devices or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in devices):
                raise ValueError(
                    f"hardware.devices must be a non-empty list of GPU indices >= 0 or null, got {self.devices!r}."
                )
            object.__setattr__(self, "devices", devices)
        if self.mixed_precision and self.name == "cpu":
            raise ValueError("hardware.mixed_precision is supported on the gpu and tpu backends only; "
                             "set it to false for the cpu backend.")
        if not self.tpu_timeout_seconds > 0:
            raise ValueError(f"hardware.tpu_timeout_seconds must be positive, got {self.tpu_timeout_seconds!r}.")

    @classmethod
    def from_config(cls, config: HardwareConfig | Mapping[str, Any] | None) -> HardwareConfig:
        """Build the config from a Hydra mapping (unknown keys rejected), or return it unchanged."""
        if config is None:
            return cls()
        if isinstance(config, HardwareConfig):
            return config
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown hardware config keys {unknown}; known keys: {sorted(known)}.")
        values = dict(config)
        if values.get("devices") is not None:
            values["devices"] = tuple(values["devices"])
        return cls(**values)


def resolve_worker_index(worker_index: int | None = None) -> int:
    """Return ``worker_index``, else ``$SEQOPT_WORKER_INDEX``, else 0."""
    if worker_index is None:
        text = os.environ.get(WORKER_INDEX_VARIABLE)
        if text is None:
            return 0
        try:
            worker_index = int(text)
        except ValueError:
            raise ValueError(f"{WORKER_INDEX_VARIABLE} must be an int >= 0, got {text!r}.") from None
    if isinstance(worker_index, bool) or worker_index < 0:
        raise ValueError(f"worker_index must be an int >= 0, got {worker_index!r}.")
    return worker_index


def select_gpu(num_visible: int, devices: tuple[int, ...] | None, worker_index: int) -> int:
    """Return the GPU index a worker uses: ``devices[worker_index % len(devices)]``."""
    candidates = devices if devices is not None else tuple(range(num_visible))
    missing = [d for d in candidates if d >= num_visible]
    if missing:
        raise ValueError(
            f"hardware.devices {list(candidates)} names GPUs {missing}, but only {num_visible} are visible "
            f"(indices 0..{num_visible - 1}); fix hardware.devices or CUDA_VISIBLE_DEVICES."
        )
    return candidates[worker_index % len(candidates)]


def worker_environment(hardware: HardwareConfig | Mapping[str, Any] | None, worker_index: int) -> dict[str, str]:
    """Return the environment variables to set in a new worker process before it starts.

    Always ``SEQOPT_WORKER_INDEX``. With the gpu backend and explicit ``hardware.devices`` also
    ``CUDA_VISIBLE_DEVICES`` set to that worker's one GPU, so that neither TensorFlow nor torch in
    the worker touches the other GPUs. Without ``devices`` the GPU count is not known before a
    library starts, and ``configure_tensorflow`` / ``configure_torch`` pick the GPU in the worker.
    """
    config = HardwareConfig.from_config(hardware)
    index = resolve_worker_index(worker_index)
    environment = {WORKER_INDEX_VARIABLE: str(index)}
    if config.name == "gpu" and config.devices is not None:
        environment["CUDA_VISIBLE_DEVICES"] = str(config.devices[index % len(config.devices)])
    return environment


# TensorFlow's thread and device settings can be made only once per process, before its runtime
# starts, so the result of the first call is kept and returned for the same config.
_tensorflow_configured: dict[tuple[HardwareConfig, int], Any] = {}


def configure_tensorflow(hardware: HardwareConfig | Mapping[str, Any] | None,
                         worker_index: int | None = None) -> tf.distribute.Strategy:
    """Apply the hardware config to TensorFlow and return the strategy to build models under.

    cpu: the thread counts, and the default strategy. gpu: one GPU chosen by the worker index
    (see the module docstring), memory growth, optional mixed float16, and a
    ``OneDeviceStrategy`` on it. tpu: ``TPUStrategy`` on ``hardware.tpu_address``.

    Raises:
        RuntimeError: gpu backend with no GPU visible to TensorFlow, or tpu backend that cannot
            reach or initialize its TPU.
        ValueError: tpu backend without ``tpu_address``.
        TimeoutError: the TPU system did not initialize within ``tpu_timeout_seconds``.
    """
    config = HardwareConfig.from_config(hardware)
    index = resolve_worker_index(worker_index)
    key = (config, index)
    if key in _tensorflow_configured:
        return _tensorflow_configured[key]
    if config.name == "tpu":
        # Checked before TensorFlow is imported, so that a missing address fails in milliseconds.
        _check_tpu_address(config)

    import tensorflow as tf

    if config.name == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise RuntimeError(
                "hardware=gpu, but TensorFlow sees no GPU. The tensorflow-cpu package has no GPU support: "
                "install the tensorflow package with CUDA (pip install 'tensorflow[and-cuda]'), check "
                "CUDA_VISIBLE_DEVICES and nvidia-smi, or run with hardware=cpu."
            )
    _set_tensorflow_threads(tf, config)

    if config.name == "cpu":
        strategy = tf.distribute.get_strategy()
    elif config.name == "gpu":
        strategy = _configure_tensorflow_gpu(tf, config, gpus, index)
    else:
        strategy = _connect_tpu(tf, config)
    _tensorflow_configured.clear()
    _tensorflow_configured[key] = strategy
    return strategy


def _set_tensorflow_threads(tf: Any, config: HardwareConfig) -> None:
    settings = (
        ("threads", config.threads, tf.config.threading.get_intra_op_parallelism_threads,
         tf.config.threading.set_intra_op_parallelism_threads),
        ("inter_op_threads", config.inter_op_threads, tf.config.threading.get_inter_op_parallelism_threads,
         tf.config.threading.set_inter_op_parallelism_threads),
    )
    for field_name, requested, get, set_ in settings:
        if requested is None or get() == requested:
            continue
        try:
            set_(requested)
        except RuntimeError:
            logger.warning("TensorFlow already runs in this process with %d %s; hardware.%s=%d applies to "
                           "new processes only.", get(), field_name, field_name, requested)


def _configure_tensorflow_gpu(tf: Any, config: HardwareConfig, gpus: list[Any], worker_index: int) -> Any:
    chosen = gpus[select_gpu(len(gpus), config.devices, worker_index)]
    try:
        tf.config.set_visible_devices([chosen], "GPU")
        tf.config.experimental.set_memory_growth(chosen, config.memory_growth)
    except RuntimeError:
        logger.warning("TensorFlow already started in this process; keeping its GPU settings, so "
                       "%s may not be the only visible GPU.", chosen.name)
    if config.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    logger.info("TensorFlow trains on %s (worker %d)", chosen.name, worker_index)
    return tf.distribute.OneDeviceStrategy("/gpu:0")


def _check_tpu_address(config: HardwareConfig) -> None:
    address = config.tpu_address
    if not address:
        # TensorFlow's resolver would otherwise look for a TPU through the cloud metadata server,
        # which waits for a long time on a machine outside Google Cloud.
        raise ValueError(
            "hardware=tpu needs hardware.tpu_address: 'grpc://HOST:8470' for a TPU worker, the Cloud TPU "
            "name, or 'local' on a TPU VM. Without a TPU, run with hardware=cpu or hardware=gpu."
        )
    if address.startswith("grpc://"):
        parts = urlsplit(address)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"hardware.tpu_address {address!r} must have the form grpc://HOST:PORT.")
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=min(5.0, config.tpu_timeout_seconds)):
                pass
        except OSError as error:
            raise RuntimeError(
                f"No TPU worker answers at hardware.tpu_address={address!r} ({error}). Check the address and "
                "that the TPU is running, or run with hardware=cpu or hardware=gpu."
            ) from error


def _connect_tpu(tf: Any, config: HardwareConfig) -> Any:
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu_address)
            if config.tpu_address != "local":
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            outcome["strategy"] = tf.distribute.TPUStrategy(resolver)
        except Exception as error:  # reported to the caller below
            outcome["error"] = error

    # TensorFlow retries an unreachable TPU for minutes; a daemon thread bounds the wait.
    thread = threading.Thread(target=connect, name="seqopt-tpu-connect", daemon=True)
    thread.start()
    thread.join(config.tpu_timeout_seconds)
    if thread.is_alive():
        raise TimeoutError(
            f"The TPU at hardware.tpu_address={config.tpu_address!r} did not initialize within "
            f"{config.tpu_timeout_seconds} s (hardware.tpu_timeout_seconds). Check the address, or run with "
            "hardware=cpu or hardware=gpu."
        )
    if "error" in outcome:
        error = outcome["error"]
        raise RuntimeError(
            f"No TPU found at hardware.tpu_address={config.tpu_address!r}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}. Run with hardware=cpu or hardware=gpu "
            "on a machine without a TPU."
        ) from error
    if config.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    return outcome["strategy"]


def configure_torch(hardware: HardwareConfig | Mapping[str, Any] | None,
                    worker_index: int | None = None) -> torch.device:
    """Apply the thread counts to torch and return the device to train on.

    Raises:
        RuntimeError: gpu backend while torch sees no CUDA device.
        ValueError: tpu backend, which torch supports only through torch_xla (not a dependency).
    """
    config = HardwareConfig.from_config(hardware)
    index = resolve_worker_index(worker_index)
    import torch

    if config.name == "tpu":
        raise ValueError("hardware=tpu is supported for TensorFlow trainers only (torch needs torch_xla, "
                         "which seqopt does not install); use hardware=cpu or hardware=gpu with torch.")
    if config.threads is not None and torch.get_num_threads() != config.threads:
        torch.set_num_threads(config.threads)
    if config.inter_op_threads is not None and torch.get_num_interop_threads() != config.inter_op_threads:
        try:
            torch.set_num_interop_threads(config.inter_op_threads)
        except RuntimeError:
            logger.warning("torch already started parallel work; hardware.inter_op_threads=%d applies to new "
                           "processes only.", config.inter_op_threads)
    if config.name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("hardware=gpu, but torch sees no CUDA device (this torch build may be CPU-only); "
                           "install a CUDA build of torch, check CUDA_VISIBLE_DEVICES, or run with hardware=cpu.")
    return torch.device("cuda", select_gpu(torch.cuda.device_count(), config.devices, index))
