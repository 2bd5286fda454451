"""Checkpoint files of a search: written atomically, read without executing code from the file.

A checkpoint is one zip archive with two kinds of members:

- ``checkpoint.json``: the structure (nested dicts, lists, numbers, strings). Values that JSON
  cannot hold exactly are tagged objects ``{"__seqopt__": kind, ...}``: tuples, dicts with
  non-string keys (torch optimizer states use int keys), non-finite floats, bytes, numpy scalars,
  and references to arrays.
- ``arrays/<n>.npy``: every numpy array and torch tensor, in numpy's ``.npy`` format, read with
  ``allow_pickle=False``.

Python ints of any size stay exact (numpy bit generator states hold 128-bit ints). Loading never
unpickles anything, so a file with a pickle payload, an object array or an unknown tag raises
``CheckpointError`` instead of running code. Writes go to a temporary file that is flushed,
fsynced and then renamed over the old checkpoint, so a crash leaves either the old or the new
checkpoint, never a mix.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_FILENAME = "checkpoint.zip"
FORMAT_NAME = "seqopt-checkpoint"
FORMAT_VERSION = 1

_STRUCTURE_MEMBER = "checkpoint.json"
_TAG = "__seqopt__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or does not belong to this search."""


def checkpoint_path(location: str | os.PathLike[str]) -> Path:
    """Return the checkpoint file of a run folder, or ``location`` itself when it is a file."""
    path = Path(location)
    return path / CHECKPOINT_FILENAME if path.is_dir() else path


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> int:
    """Write ``state`` atomically to ``path`` and return the file size in bytes.

    Raises:
        CheckpointError: when ``state`` contains a value that cannot be stored without pickle (an
            arbitrary object, an object array); the message names where it sits in ``state``.
    """
    path = Path(path)
    arrays: list[np.ndarray] = []
    structure = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "state": _encode(state, arrays, "state"),
    }
    text = json.dumps(structure, allow_nan=False, separators=(",", ":"))

    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr(_STRUCTURE_MEMBER, text)
                for number, array in enumerate(arrays):
                    with archive.open(f"arrays/{number}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    # The directory is not fsynced: a rename lost to a power loss leaves the previous checkpoint,
    # from which a resume replays more of the trial store and reaches the same state.
    return path.stat().st_size


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: when the file is not a seqopt checkpoint or contains anything that would
            need pickle to load.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}.")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise CheckpointError(
            f"{path} is not a seqopt checkpoint (not a zip archive: {error}). Checkpoints are written by "
            f"seqopt itself; never load a checkpoint from an untrusted source."
        ) from error
    with archive:
        try:
            structure = json.loads(archive.read(_STRUCTURE_MEMBER))
        except KeyError as error:
            raise CheckpointError(f"{path} is not a seqopt checkpoint: it has no {_STRUCTURE_MEMBER}.") from error
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path}: {_STRUCTURE_MEMBER} is not valid JSON ({error}).") from error
        if not isinstance(structure, dict) or structure.get("format") != FORMAT_NAME:
            raise CheckpointError(f"{path} is not a seqopt checkpoint: its format field is missing or wrong.")
        version = structure.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format version {version!r}; this seqopt reads versions up to "
                f"{FORMAT_VERSION}. Upgrade seqopt to resume this run."
            )
        state = _decode(structure.get("state"), _ArrayReader(archive, path), "state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint state is a {type(state).__name__}, expected a dict.")
    return state


def _is_tensor(value: Any) -> bool:
    # torch is looked up, never imported: a state with tensors was built by code that imported it.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _encode(value: Any, arrays: list[np.ndarray], where: str) -> Any:
    """Turn ``value`` into JSON-ready data, moving arrays and tensors into ``arrays``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {_TAG: "float", "value": repr(value)}

    if isinstance(value, np.ndarray):
        return {_TAG: "ndarray", "index": _add_array(value, arrays, where)}
    if isinstance(value, np.generic):
        if value.dtype.hasobject:
            raise CheckpointError(f"{where}: numpy object scalars cannot be stored without pickle.")
        return {_TAG: "ndarray_scalar", "index": _add_array(np.asarray(value), arrays, where)}
    if _is_tensor(value):
        return _encode_tensor(value, arrays, where)

    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(item, arrays, f"{where}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, arrays, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and _TAG not in value:
            return {key: _encode(item, arrays, f"{where}[{key!r}]") for key, item in value.items()}
        return {_TAG: "dict", "items": [
            [_encode(key, arrays, f"{where} key {key!r}"), _encode(item, arrays, f"{where}[{key!r}]")]
            for key, item in value.items()
        ]}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}

    raise CheckpointError(
        f"{where}: cannot store a {type(value).__module__}.{type(value).__qualname__} in a checkpoint. "
        "state_dict() must return numbers, strings, None, lists, tuples, dicts, bytes, numpy arrays "
        "and torch tensors."
    )


def _add_array(array: np.ndarray, arrays: list[np.ndarray], where: str) -> int:
    if array.dtype.hasobject:
        raise CheckpointError(f"{where}: numpy arrays of dtype {array.dtype} cannot be stored without pickle.")
    arrays.append(np.ascontiguousarray(array))
    return len(arrays) - 1


def _encode_tensor(tensor: Any, arrays: list[np.ndarray], where: str) -> dict[str, Any]:
    import torch

    data = tensor.detach().cpu().contiguous()
    dtype = str(data.dtype).removeprefix("torch.")
    if data.dtype == torch.bfloat16:
        # numpy has no bfloat16, so its bits travel as int16 and are viewed back on load.
        data = data.view(torch.int16)
    try:
        array = data.numpy()
    except TypeError as error:
        raise CheckpointError(f"{where}: torch tensors of dtype {dtype} cannot be stored ({error}).") from error
    return {_TAG: "tensor", "index": _add_array(array, arrays, where), "dtype": dtype,
            "requires_grad": bool(tensor.requires_grad)}


class _ArrayReader:
    """Reads ``arrays/<n>.npy`` members on demand, never with pickle."""

    def __init__(self, archive: zipfile.ZipFile, path: Path) -> None:
        self.archive = archive
        self.path = path

    def read(self, index: Any, where: str) -> np.ndarray:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise CheckpointError(f"{self.path}: {where} refers to array {index!r}, which is not a valid index.")
        name = f"arrays/{index}.npy"
        try:
            data = self.archive.read(name)
        except KeyError as error:
            raise CheckpointError(f"{self.path}: {where} refers to missing member {name}.") from error
        try:
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as error:
            raise CheckpointError(
                f"{self.path}: member {name} cannot be read without pickle ({error}); the file was not "
                "written by seqopt and is rejected."
            ) from error


def _decode(value: Any, reader: _ArrayReader, where: str) -> Any:
    """Invert ``_encode``; unknown tags raise CheckpointError."""
    if isinstance(value, list):
        return [_decode(item, reader, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if _TAG not in value:
        return {key: _decode(item, reader, f"{where}[{key!r}]") for key, item in value.items()}

    kind = value[_TAG]
    if kind == "tuple":
        return tuple(_decode(item, reader, f"{where}[{i}]") for i, item in enumerate(value.get("items", [])))
    if kind == "dict":
        return {_decode(key, reader, f"{where} key"): _decode(item, reader, f"{where}[{key!r}]")
                for key, item in value.get("items", [])}
    if kind == "float":
        text = value.get("value")
        if text not in ("nan", "inf", "-inf"):
            raise CheckpointError(f"{reader.path}: {where} is the invalid float {text!r}; expected nan, inf or -inf.")
        return float(text)
    if kind == "bytes":
        return base64.b64decode(value.get("base64", ""), validate=True)
    if kind == "ndarray":
        return reader.read(value.get("index"), where)
    if kind == "ndarray_scalar":
        return reader.read(value.get("index"), where)[()]
    if kind == "tensor":
        return _decode_tensor(value, reader, where)
    raise CheckpointError(f"{reader.path}: {where} has the unknown tag {kind!r}; the file is rejected.")


def _decode_tensor(value: dict[str, Any], reader: _ArrayReader, where: str) -> Any:
    import torch

    array = reader.read(value.get("index"), where)
    dtype_name = value.get("dtype")
    dtype = getattr(torch, dtype_name, None) if isinstance(dtype_name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{reader.path}: {where} names the unknown torch dtype {dtype_name!r}.")
    tensor = torch.from_numpy(array.copy())
    if dtype == torch.bfloat16:
        tensor = tensor.view(torch.bfloat16)
    elif tensor.dtype != dtype:
        raise CheckpointError(f"{reader.path}: {where} stores {tensor.dtype} data for a {dtype} tensor.")
    if value.get("requires_grad"):
        tensor.requires_grad_(True)
    return tensor


class ResumeError(RuntimeError):
    """A resumed search no longer matches its trial store (a changed agent, seed or setting)."""


class Replay:
    """Trials stored after the last checkpoint, fed back to a resumed search instead of evaluated.

    The records are grouped by their ``batch`` field, the number of the ``agent.observe`` call
    that received them, and each group is handed back in store order when the search reaches
    that batch again. A record written by ``dedup`` (with ``reused_from``) is recreated by the
    search itself, so ``take`` leaves it out, and ``record`` still lets the search skip writing it
    a second time.
    """

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._by_trial = {int(record["trial"]): record for record in records}
        self._batches: list[tuple[int | None, list[dict[str, Any]]]] = []
        for record in records:
            batch = record.get("batch")
            if self._batches and batch is not None and self._batches[-1][0] == batch:
                self._batches[-1][1].append(record)
            else:
                self._batches.append((batch, [record]))
        self._batches.reverse()  # popped from the end
        self._claimed: set[int] = set()

    def __len__(self) -> int:
        return len(self._by_trial)

    @property
    def active(self) -> bool:
        """True while stored batches remain to be handed back."""
        return bool(self._batches)

    def record(self, trial_id: int) -> dict[str, Any] | None:
        """Return the stored record of ``trial_id``, or None when it is not stored."""
        return self._by_trial.get(trial_id)

    def claim(self, trial_id: int, indices: tuple[int, ...]) -> bool:
        """Mark a submitted trial as one whose result comes from the store; False when it is not stored.

        Raises:
            ResumeError: when the store contains this trial id with a different sequence.
        """
        record = self._by_trial.get(trial_id)
        if record is None:
            return False
        stored = tuple(int(i) for i in record["indices"])
        if stored != tuple(indices):
            raise ResumeError(
                f"Trial {trial_id} was stored with sequence {list(stored)}, but the resumed agent proposed "
                f"{list(indices)}. The agent, its config or the seed differ from the original run, or the agent "
                "is not deterministic given its state_dict(); resume with the original settings or start a new run."
            )
        self._claimed.add(trial_id)
        return True

    def take(self, batch: int) -> list[dict[str, Any]]:
        """Return the stored records of ``batch`` that went through the executor.

        Raises:
            ResumeError: when the next stored batch is not ``batch`` or contains a trial that the
                resumed search has not proposed.
        """
        stored_batch, records = self._batches.pop()
        if stored_batch is not None and stored_batch != batch:
            raise ResumeError(
                f"The trial store continues with batch {stored_batch}, but the resumed search is at batch {batch}. "
                "The store and the checkpoint do not belong to the same run."
            )
        evaluated = [record for record in records if record.get("reused_from") is None]
        missing = [int(record["trial"]) for record in evaluated if int(record["trial"]) not in self._claimed]
        if missing:
            raise ResumeError(
                f"Trials {missing} are stored after the checkpoint but the resumed search did not propose them "
                "again. The agent, its config or the seed differ from the original run, or budget.trials is "
                "smaller than the number of stored trials."
            )
        return evaluated
