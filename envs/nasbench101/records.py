"""Read and write the NAS-Bench-101 data file without TensorFlow or the nasbench package.

The file is a TFRecord file: a sequence of records, each framed as an 8-byte little-endian length,
a 4-byte masked CRC-32C of the length, the payload, and a 4-byte masked CRC-32C of the payload.
Each payload is a JSON list ``[module_hash, epochs, adjacency, operations, metrics]``: the
adjacency matrix as a string of '0'/'1' in row-major order, the operations joined by commas, and
a base64-encoded ``ModelMetrics`` protocol buffer (google-research/nasbench,
nasbench/lib/model_metrics.proto):

    ModelMetrics   { repeated EvaluationData evaluation_data = 1; int32 trainable_parameters = 2;
                     double total_time = 3; }
    EvaluationData { double current_epoch = 1; double training_time = 2; double train_accuracy = 3;
                     double validation_accuracy = 4; double test_accuracy = 5; string checkpoint_path = 6; }

The writer exists so that tests can build small files in the same format.
"""

from __future__ import annotations

import base64
import json
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# CRC-32C (Castagnoli), reflected polynomial, as TFRecord framing uses it.
_CRC32C_POLYNOMIAL = 0x82F63B78
_CRC_MASK_DELTA = 0xA282EAD8


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC32C_POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """Return the CRC-32C of ``data`` (pure Python: fine for headers and small files, slow for 500 MB)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """Return the rotated and offset CRC-32C that TFRecord stores."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


class RecordFormatError(ValueError):
    """The file is not a well-formed TFRecord file or a record is not a NAS-Bench-101 row."""


def iter_tfrecords(path: str | Path, check_crc: bool = False) -> Iterator[bytes]:
    """Yield the payload of every record of a TFRecord file.

    The length CRC of every record is always checked, which catches a file that is not TFRecord
    or whose framing is off. ``check_crc=True`` also checks each payload's CRC in pure Python,
    which takes minutes on the official 500 MB file; its sha256 is a faster whole-file check.

    Raises:
        RecordFormatError: naming the byte offset of the first bad or truncated record.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        # A memory map keeps the 500 MB file out of the process's own memory; slicing it copies bytes.
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            end = len(data)
            offset = 0
            while offset < end:
                if offset + 12 > end:
                    raise RecordFormatError(f"{path}: truncated record header at byte {offset} (file size {end}).")
                header = data[offset:offset + 8]
                (length,) = struct.unpack("<Q", header)
                (length_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
                if masked_crc32c(header) != length_crc:
                    raise RecordFormatError(f"{path}: bad length checksum at byte {offset}; the file is not a "
                                            "TFRecord file or is corrupt.")
                start = offset + 12
                stop = start + length
                if stop + 4 > end:
                    raise RecordFormatError(f"{path}: record at byte {offset} claims {length} bytes but the file "
                                            f"ends at byte {end}; the file is truncated.")
                payload = data[start:stop]
                if check_crc:
                    (payload_crc,) = struct.unpack("<I", data[stop:stop + 4])
                    if masked_crc32c(payload) != payload_crc:
                        raise RecordFormatError(f"{path}: bad payload checksum in the record at byte {offset}.")
                yield payload
                offset = stop + 4


def frame_tfrecord(payload: bytes) -> bytes:
    """Return one record framed as TFRecord stores it."""
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc32c(header)) + payload + struct.pack("<I", masked_crc32c(payload))


# --- Protocol buffer wire format: varint (type 0), 64-bit (type 1), length-delimited (type 2), 32-bit (type 5).

def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(data):
            raise RecordFormatError("ModelMetrics: varint runs past the end of the message.")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _iter_fields(data: bytes) -> Iterator[tuple[int, int, int | float | bytes]]:
    """Yield (field number, wire type, raw value) for every field of a message."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | float | bytes
        if wire_type == 0:
            value, position = _read_varint(data, position)
        elif wire_type == 1:
            (value,) = struct.unpack_from("<d", data, position)
            position += 8
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            value = data[position:position + length]
            position += length
        elif wire_type == 5:
            (value,) = struct.unpack_from("<f", data, position)
            position += 4
        else:
            raise RecordFormatError(f"ModelMetrics: unsupported wire type {wire_type} of field {number}.")
        if position > len(data):
            raise RecordFormatError(f"ModelMetrics: field {number} runs past the end of the message.")
        yield number, wire_type, value


def _write_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 values are sign-extended to 64 bits
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_EVALUATION_DOUBLES = ("current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy")


@dataclass
class EvaluationData:
    """Metrics at one point of training: at the start, half-way, and at the end."""

    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""

    @classmethod
    def decode(cls, data: bytes) -> EvaluationData:
        result = cls()
        for number, wire_type, value in _iter_fields(data):
            if 1 <= number <= 5 and wire_type == 1 and isinstance(value, float):
                setattr(result, _EVALUATION_DOUBLES[number - 1], value)
            elif number == 6 and isinstance(value, bytes):
                result.checkpoint_path = value.decode("utf-8")
        return result

    def encode(self) -> bytes:
        out = bytearray()
        for number, name in enumerate(_EVALUATION_DOUBLES, start=1):
            out += _write_varint(number << 3 | 1) + struct.pack("<d", getattr(self, name))
        if self.checkpoint_path:
            text = self.checkpoint_path.encode("utf-8")
            out += _write_varint(6 << 3 | 2) + _write_varint(len(text)) + text
        return bytes(out)


@dataclass
class ModelMetrics:
    """The training results of one run of one cell."""

    evaluation_data: list[EvaluationData] = field(default_factory=list)
    trainable_parameters: int = 0
    total_time: float = 0.0

    @classmethod
    def decode(cls, data: bytes) -> ModelMetrics:
        result = cls()
        for number, wire_type, value in _iter_fields(data):
            if number == 1 and isinstance(value, bytes):
                result.evaluation_data.append(EvaluationData.decode(value))
            elif number == 2 and wire_type == 0 and isinstance(value, int):
                # int32 fields store negative values as 64-bit two's complement varints.
                result.trainable_parameters = value - (1 << 64) if value >= 1 << 63 else value
            elif number == 3 and wire_type == 1 and isinstance(value, float):
                result.total_time = value
        return result

    def encode(self) -> bytes:
        out = bytearray()
        for evaluation in self.evaluation_data:
            body = evaluation.encode()
            out += _write_varint(1 << 3 | 2) + _write_varint(len(body)) + body
        out += _write_varint(2 << 3 | 0) + _write_varint(self.trainable_parameters)
        out += _write_varint(3 << 3 | 1) + struct.pack("<d", self.total_time)
        return bytes(out)


@dataclass
class Row:
    """One record of the data file: one training run of one cell for one epoch budget."""

    module_hash: str
    epochs: int
    adjacency: np.ndarray
    operations: list[str]
    metrics: ModelMetrics


def decode_row(payload: bytes) -> Row:
    """Parse one record payload.

    Raises:
        RecordFormatError: when the payload is not the five-element JSON list of the format.
    """
    try:
        module_hash, epochs, raw_adjacency, raw_operations, raw_metrics = json.loads(payload.decode("utf-8"))
        size = round(len(raw_adjacency) ** 0.5)
        if size * size != len(raw_adjacency):
            raise ValueError(f"adjacency string of length {len(raw_adjacency)} is not a square matrix")
        adjacency = np.frombuffer(raw_adjacency.encode("ascii"), dtype=np.uint8).reshape(size, size) - ord("0")
        metrics = ModelMetrics.decode(base64.b64decode(raw_metrics))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise RecordFormatError(f"Record is not a NAS-Bench-101 row ({error}): {payload[:120]!r}") from error
    return Row(str(module_hash), int(epochs), adjacency, raw_operations.split(","), metrics)


def encode_row(row: Row) -> bytes:
    """Return the JSON payload of one row, as the official file stores it."""
    adjacency = "".join(str(int(v)) for v in np.asarray(row.adjacency).ravel())
    metrics = base64.b64encode(row.metrics.encode()).decode("ascii")
    return json.dumps([row.module_hash, row.epochs, adjacency, ",".join(row.operations), metrics]).encode("utf-8")


def write_rows(path: str | Path, rows: Sequence[Row]) -> None:
    """Write rows as a TFRecord file in the official format (used to build test files)."""
    with open(path, "wb") as f:
        for row in rows:
            f.write(frame_tfrecord(encode_row(row)))
