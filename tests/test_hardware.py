import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from seqopt.hardware import (
    WORKER_INDEX_VARIABLE,
    HardwareConfig,
    configure_tensorflow,
    configure_torch,
    resolve_worker_index,
    select_gpu,
    worker_environment,
)

REPOSITORY = Path(__file__).resolve().parents[1]


def run_python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, where TensorFlow has not started yet."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPOSITORY, env=environment)


def closed_local_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Config


@pytest.mark.parametrize("name", ["cpu", "gpu", "tpu"])
def test_hydra_configs_compose(name):
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[f"hardware={name}"])
    config = HardwareConfig.from_config(cfg.hardware)
    assert config.name == name


def test_gpu_config_devices_become_tuple():
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        cfg = compose(config_name="config", overrides=["hardware=gpu", "hardware.devices=[0,2]"])
    assert HardwareConfig.from_config(cfg.hardware).devices == (0, 2)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"name": "fpga"}, r"hardware.name must be one of \['cpu', 'gpu', 'tpu'\], got 'fpga'"),
        ({"threads": 0}, "hardware.threads must be an int >= 1 or null, got 0"),
        ({"inter_op_threads": 1.5}, "hardware.inter_op_threads"),
        ({"name": "gpu", "devices": []}, "hardware.devices must be a non-empty list"),
        ({"name": "gpu", "devices": [-1]}, "hardware.devices"),
        ({"mixed_precision": True}, "supported on the gpu and tpu backends only"),
        ({"thread": 2}, r"Unknown hardware config keys \['thread'\]"),
        ({"name": "tpu", "tpu_timeout_seconds": 0}, "tpu_timeout_seconds must be positive"),
    ],
)
def test_bad_config_rejected(config, match):
    with pytest.raises(ValueError, match=match):
        HardwareConfig.from_config(config)


# Worker to device


def test_select_gpu_round_robin():
    assert [select_gpu(4, None, index) for index in range(6)] == [0, 1, 2, 3, 0, 1]
    assert [select_gpu(4, (1, 3), index) for index in range(4)] == [1, 3, 1, 3]


def test_select_gpu_rejects_missing_device():
    with pytest.raises(ValueError, match=r"names GPUs \[2\], but only 2 are visible"):
        select_gpu(2, (0, 2), 0)


def test_worker_index_from_environment(monkeypatch):
    monkeypatch.delenv(WORKER_INDEX_VARIABLE, raising=False)
    assert resolve_worker_index(None) == 0
    monkeypatch.setenv(WORKER_INDEX_VARIABLE, "3")
    assert resolve_worker_index(None) == 3
    assert resolve_worker_index(1) == 1
    monkeypatch.setenv(WORKER_INDEX_VARIABLE, "three")
    with pytest.raises(ValueError, match="SEQOPT_WORKER_INDEX must be an int >= 0, got 'three'"):
        resolve_worker_index(None)


def test_worker_environment():
    assert worker_environment({"name": "cpu"}, 2) == {WORKER_INDEX_VARIABLE: "2"}
    assert worker_environment({"name": "gpu"}, 2) == {WORKER_INDEX_VARIABLE: "2"}
    assert worker_environment({"name": "gpu", "devices": [4, 5]}, 3) == {
        WORKER_INDEX_VARIABLE: "3", "CUDA_VISIBLE_DEVICES": "5"}


# Backends on this machine (no GPU, no TPU)


@pytest.mark.timeout(30)
def test_tpu_without_address_fails_fast():
    with pytest.raises(ValueError, match=r"hardware=tpu needs hardware\.tpu_address"):
        configure_tensorflow({"name": "tpu"})


@pytest.mark.timeout(30)
def test_tpu_unreachable_address_fails_fast():
    address = f"grpc://127.0.0.1:{closed_local_port()}"
    with pytest.raises(RuntimeError, match=r"No TPU worker answers at hardware\.tpu_address='grpc://127\.0\.0\.1:"):
        configure_tensorflow({"name": "tpu", "tpu_address": address})


def test_tpu_address_needs_port():
    with pytest.raises(ValueError, match="must have the form grpc://HOST:PORT"):
        configure_tensorflow({"name": "tpu", "tpu_address": "grpc://127.0.0.1"})


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tpu_local_without_tpu_fails_fast():
    # In a fresh process, because a TPU connection attempt changes TensorFlow's process-wide context.
    result = run_python("""
        from seqopt.hardware import configure_tensorflow
        try:
            configure_tensorflow({"name": "tpu", "tpu_address": "local", "tpu_timeout_seconds": 60})
        except RuntimeError as error:
            print("RAISED", error)
    """)
    assert "RAISED No TPU found at hardware.tpu_address='local'" in result.stdout, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tpu_silent_server_times_out():
    # A server on 127.0.0.1 that accepts connections and never sends a byte. The TCP check passes,
    # so the initialization itself must give up after tpu_timeout_seconds instead of hanging.
    result = run_python("""
        import socket
        from seqopt.hardware import configure_tensorflow
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        address = f"grpc://127.0.0.1:{server.getsockname()[1]}"
        try:
            configure_tensorflow({"name": "tpu", "tpu_address": address, "tpu_timeout_seconds": 3})
        except TimeoutError as error:
            print("RAISED", error)
    """)
    assert "RAISED The TPU at hardware.tpu_address='grpc://127.0.0.1:" in result.stdout, result.stderr[-2000:]
    assert "did not initialize within 3 s" in result.stdout


@pytest.mark.slow
def test_gpu_backend_without_gpu_raises():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="hardware=gpu, but TensorFlow sees no GPU"):
        configure_tensorflow({"name": "gpu"})


def test_torch_backends():
    import torch

    assert configure_torch({"name": "cpu"}) == torch.device("cpu")
    with pytest.raises(ValueError, match="hardware=tpu is supported for TensorFlow trainers only"):
        configure_torch({"name": "tpu", "tpu_address": "local"})
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="hardware=gpu, but torch sees no CUDA device"):
            configure_torch({"name": "gpu"})


def test_cpu_strategy_is_default():
    import tensorflow as tf

    strategy = configure_tensorflow({"name": "cpu"})
    assert strategy is tf.distribute.get_strategy()
    assert configure_tensorflow(HardwareConfig(name="cpu")) is strategy


@pytest.mark.slow
def test_thread_counts_applied():
    result = run_python("""
        import json, tensorflow as tf, torch
        from seqopt.hardware import configure_tensorflow, configure_torch
        configure_tensorflow({"name": "cpu", "threads": 1, "inter_op_threads": 3})
        configure_torch({"name": "cpu", "threads": 1, "inter_op_threads": 3})
        tf.constant(1.0) + 1.0  # starts the runtime with those settings
        print(json.dumps([tf.config.threading.get_intra_op_parallelism_threads(),
                          tf.config.threading.get_inter_op_parallelism_threads(),
                          torch.get_num_threads(), torch.get_num_interop_threads()]))
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1, 3, 1, 3]
