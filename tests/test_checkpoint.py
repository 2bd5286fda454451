import io
import json
import math
import pickle
import zipfile

import numpy as np
import pytest
import torch

from seqopt.checkpoint import (
    CHECKPOINT_FILENAME,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)


class _WritesMarker:
    """Unpickling this object creates a file: proof that a loader executed code from the file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _agent_like_state() -> dict:
    rng = np.random.Generator(np.random.PCG64(123))
    rng.random(5)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    generator = torch.Generator().manual_seed(7)
    return {
        "rng": rng.bit_generator.state,
        "mt": np.random.MT19937(5).state,
        "counts": (1, 2, 3),
        "by_id": {0: "a", 5: [1.5, None]},
        "best": -math.inf,
        "missing": math.nan,
        "huge": 2**200 + 1,
        "population": np.arange(12, dtype=np.int64).reshape(3, 4),
        "scalar": np.float32(0.25),
        "weights": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": generator.get_state(),
        "half": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        "blob": b"\x00\xff",
        "nested": {"__seqopt__": "user key that collides with the tag"},
    }


def test_round_trip_keeps_types_and_values(tmp_path):
    state = _agent_like_state()
    path = tmp_path / CHECKPOINT_FILENAME
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)

    assert loaded["rng"] == state["rng"]
    assert loaded["rng"]["state"]["state"] > 2**64  # 128-bit ints survive exactly
    assert loaded["mt"]["state"]["key"].dtype == np.uint32
    assert np.array_equal(loaded["mt"]["state"]["key"], state["mt"]["state"]["key"])
    assert loaded["counts"] == (1, 2, 3)
    assert loaded["by_id"] == {0: "a", 5: [1.5, None]}
    assert loaded["best"] == -math.inf
    assert math.isnan(loaded["missing"])
    assert loaded["huge"] == 2**200 + 1
    assert np.array_equal(loaded["population"], state["population"])
    assert loaded["population"].dtype == np.int64
    assert loaded["scalar"] == np.float32(0.25)
    assert loaded["scalar"].dtype == np.float32
    assert loaded["blob"] == b"\x00\xff"
    assert loaded["nested"] == state["nested"]
    assert loaded["half"].dtype == torch.bfloat16
    assert torch.equal(loaded["half"], state["half"])
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])
    for name, tensor in state["weights"].items():
        assert torch.equal(loaded["weights"][name], tensor)


def test_restored_optimizer_and_generators_continue_identically(tmp_path):
    def build():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        return model, torch.optim.Adam(model.parameters(), lr=0.1)

    model, optimizer = build()
    rng = np.random.Generator(np.random.PCG64(1))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.ones(2, 3)).pow(2).sum().backward()
        optimizer.step()
    save_checkpoint(tmp_path / "c.zip", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "rng": rng.bit_generator.state})

    restored_model, restored_optimizer = build()
    state = load_checkpoint(tmp_path / "c.zip")
    restored_model.load_state_dict(state["model"])
    restored_optimizer.load_state_dict(state["optimizer"])
    restored_rng = np.random.Generator(np.random.PCG64(99))
    restored_rng.bit_generator.state = state["rng"]

    for m, o in ((model, optimizer), (restored_model, restored_optimizer)):
        o.zero_grad()
        m(torch.ones(2, 3)).pow(2).sum().backward()
        o.step()
    assert torch.equal(model.weight, restored_model.weight)
    assert rng.random() == restored_rng.random()


def test_write_replaces_atomically_and_leaves_no_temporary(tmp_path):
    path = tmp_path / CHECKPOINT_FILENAME
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILENAME]


def test_unsupported_value_names_its_place(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\['agent'\]\['policy'\]: cannot store a builtins.object"):
        save_checkpoint(tmp_path / "c.zip", {"agent": {"policy": object()}})
    with pytest.raises(CheckpointError, match="dtype object cannot be stored without pickle"):
        save_checkpoint(tmp_path / "c.zip", {"table": np.array([{"a": 1}], dtype=object)})
    assert not (tmp_path / "c.zip").exists()


def test_pickle_file_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / CHECKPOINT_FILENAME
    path.write_bytes(pickle.dumps({"agent": _WritesMarker(str(marker))}))
    with pytest.raises(CheckpointError, match="not a zip archive"):
        load_checkpoint(path)
    assert not marker.exists()


def test_object_array_member_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    payload = io.BytesIO()
    np.save(payload, np.array([_WritesMarker(str(marker))], dtype=object), allow_pickle=True)
    path = tmp_path / CHECKPOINT_FILENAME
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("checkpoint.json", json.dumps({
            "format": "seqopt-checkpoint", "version": 1,
            "state": {"agent": {"__seqopt__": "ndarray", "index": 0}},
        }))
        archive.writestr("arrays/0.npy", payload.getvalue())
    with pytest.raises(CheckpointError, match="cannot be read without pickle"):
        load_checkpoint(path)
    assert not marker.exists()


def test_torch_save_file_is_rejected(tmp_path):
    path = tmp_path / CHECKPOINT_FILENAME
    torch.save({"weights": torch.ones(2)}, path)  # a zip archive holding a pickle
    with pytest.raises(CheckpointError, match=r"has no checkpoint\.json"):
        load_checkpoint(path)


def test_unknown_tag_and_newer_version_are_rejected(tmp_path):
    path = tmp_path / CHECKPOINT_FILENAME
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("checkpoint.json", json.dumps({
            "format": "seqopt-checkpoint", "version": 1, "state": {"x": {"__seqopt__": "pickle", "data": "gASV"}},
        }))
    with pytest.raises(CheckpointError, match="unknown tag 'pickle'"):
        load_checkpoint(path)

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("checkpoint.json", json.dumps({"format": "seqopt-checkpoint", "version": 99, "state": {}}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


def test_missing_file_and_folder_lookup(tmp_path):
    assert checkpoint_path(tmp_path) == tmp_path / CHECKPOINT_FILENAME
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        load_checkpoint(tmp_path / CHECKPOINT_FILENAME)
