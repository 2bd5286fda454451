"""Append-only JSON Lines trial store: one finished trial a line, the source of truth of a run."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from seqopt.trial import TrialResult

logger = logging.getLogger(__name__)

TRIALS_FILENAME = "trials.jsonl"


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays show up in metrics; store them as plain numbers and lists.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _replace_non_finite(value: Any) -> Any:
    """Return ``value`` with every NaN or infinite float (also inside numpy values) replaced by None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _replace_non_finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_non_finite(item) for item in value]
    return value


class TrialStore:
    """Writes each finished trial as one JSON line, flushed as soon as it is appended.

    Lines are written with a single ``write`` call and flushed at once, so a crash leaves at most
    one truncated last line, which ``read_records`` skips with a warning.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._truncate_partial_last_line()
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")

    def _truncate_partial_last_line(self) -> None:
        """Drop a last line without its newline, left by a crash in the middle of a write."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            cut = data.rfind(b"\n") + 1
            logger.warning("Trial store %s ends with a truncated line of %d bytes; dropping it.",
                           self.path, len(data) - cut)
            f.truncate(cut)

    def append(self, result: TrialResult, values: tuple[Any, ...] | None = None) -> dict[str, Any]:
        record = result.to_record(values)
        self.append_record(record)
        return record

    def append_record(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError(f"Trial store {self.path} is closed.")
        try:
            line = json.dumps(record, default=_json_default, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a NaN or infinity among the metrics; JSON has no spelling for them
            line = json.dumps(_replace_non_finite(record), default=_json_default, allow_nan=False,
                              separators=(",", ":"))
        self._file.write(line + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def sync(self) -> None:
        """Force the appended lines to disk (fsync), so they survive a power loss, not only a crash."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read every complete record of a trial store, skipping a truncated or corrupt line with a warning."""
    return list(iter_records(path))


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the records of a trial store (a file, or the run folder that contains one) in file order.

    A last line without its newline is a write cut short by a crash, or a write in progress in a
    running search, and is skipped with a warning even when it parses. An unreadable line
    elsewhere is skipped with a warning too.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRIALS_FILENAME
    if not path.exists():
        raise FileNotFoundError(f"Trial store not found: {path}. A run folder contains it as {TRIALS_FILENAME}.")
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                logger.warning("Skipping the last line %d of %s: it has no newline, so its write was cut short "
                               "(a crash) or is still in progress.", number, path)
                return
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                logger.warning("Skipping unreadable line %d of %s (%s).", number, path, error)
                continue
            if not isinstance(record, dict) or "trial" not in record:
                logger.warning("Skipping line %d of %s: it is not a trial record.", number, path)
                continue
            yield record


def read_results(path: str | os.PathLike[str]) -> list[TrialResult]:
    """Read a trial store as TrialResults, skipping lines as ``iter_records`` does."""
    return [TrialResult.from_record(r) for r in iter_records(path)]
