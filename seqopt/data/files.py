"""Locate, verify and download dataset files.

A file is looked up in two places, in order: the mirror named by ``SEQOPT_DATA_MIRROR`` (a folder
laid out like the project's shared data folder, one sub-folder per dataset) and the cache folder
(``SEQOPT_DATA_DIR``, default ``~/.cache/seqopt``), which ``download`` fills. Every file found is
checked against its sha256 before it is used. Downloads come from each file's public URL, or from
``<base URL>/<dataset>/<file>`` when a base URL is given (``SEQOPT_DATA_URL`` or an argument), which
is how a mirror served over HTTP is used.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from seqopt.data.registry import DataFile, Dataset, get_dataset

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "SEQOPT_DATA_DIR"
MIRROR_ENV = "SEQOPT_DATA_MIRROR"
URL_ENV = "SEQOPT_DATA_URL"
DEFAULT_DATA_DIR = Path("~/.cache/seqopt")

_CHUNK_BYTES = 1 << 20
_DOWNLOAD_SCHEMES = ("http", "https", "file")

# (path, size, mtime_ns) -> sha256 of files already hashed in this process.
_digest_memo: dict[tuple[str, int, int], str] = {}


class DataError(Exception):
    """Base class of the data registry's errors."""


class MissingDataError(DataError, FileNotFoundError):
    """A dataset file is in neither the mirror nor the cache."""


class ChecksumError(DataError, ValueError):
    """A dataset file's sha256 differs from the registry's."""


class DownloadError(DataError, OSError):
    """A download failed or the file has no download URL."""


class FileState(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class FileStatus:
    """Result of checking one file: where it was found and whether its sha256 matches."""

    dataset: str
    file: DataFile
    state: FileState
    path: Path | None
    actual_sha256: str | None = None


def data_dir() -> Path:
    """Return the cache folder that ``download`` writes to."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_DATA_DIR.expanduser()


def mirror_dir() -> Path | None:
    """Return the local mirror named by ``SEQOPT_DATA_MIRROR``, or None when it is unset."""
    configured = os.environ.get(MIRROR_ENV)
    return Path(configured).expanduser() if configured else None


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file, remembering it per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _digest_memo.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK_BYTES):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        _digest_memo[key] = digest
    return digest


def candidate_paths(dataset: str, filename: str) -> list[Path]:
    """Return the places a file is looked for, mirror first."""
    places = []
    mirror = mirror_dir()
    if mirror is not None:
        places.append(mirror / dataset / filename)
    places.append(data_dir() / dataset / filename)
    return places


def fix_hint(dataset: Dataset, data_file: DataFile) -> str:
    """Return the hint that explains how to obtain one file."""
    if data_file.url is not None:
        return (f"Run `seqopt-data download {dataset.name}` to fetch it from {data_file.url}, or set "
                f"{MIRROR_ENV} to a folder that holds {dataset.name}/{data_file.name}.")
    return (f"This file has no direct public download URL ({data_file.note}). Set {MIRROR_ENV} to a folder "
            f"that holds {dataset.name}/{data_file.name}, or run `seqopt-data download {dataset.name} --url "
            f"BASE_URL` against a server laid out the same way.")


def check_file(dataset_name: str, filename: str) -> FileStatus:
    """Find one file and compare its sha256 with the registry's, without raising."""
    dataset = get_dataset(dataset_name)
    data_file = dataset.file(filename)
    for path in candidate_paths(dataset.name, filename):
        if path.is_file():
            digest = sha256_of(path)
            state = FileState.OK if digest == data_file.sha256 else FileState.CORRUPT
            return FileStatus(dataset.name, data_file, state, path, digest)
    return FileStatus(dataset.name, data_file, FileState.MISSING, None)


def locate(dataset_name: str, filename: str) -> Path:
    """Return the path of a verified dataset file.

    Raises:
        MissingDataError: when neither the mirror nor the cache contains the file.
        ChecksumError: when the file found has another sha256 than the registry's.
    """
    status = check_file(dataset_name, filename)
    dataset = get_dataset(dataset_name)
    if status.state is FileState.OK and status.path is not None:
        return status.path
    if status.state is FileState.CORRUPT:
        raise ChecksumError(
            f"Dataset file {status.path} is corrupt: its sha256 is {status.actual_sha256}, expected "
            f"{status.file.sha256}. Replace it with a good copy, or delete it and run "
            + (f"`seqopt-data download {dataset.name}`." if status.file.url is not None
               else f"`seqopt-data download {dataset.name} --url BASE_URL` ({fix_hint(dataset, status.file)})")
        )
    looked = ", ".join(str(p) for p in candidate_paths(dataset.name, filename))
    raise MissingDataError(
        f"Dataset file {dataset.name}/{filename} (sha256 {status.file.sha256}) was not found; looked in {looked}. "
        + fix_hint(dataset, status.file)
    )


def verify(dataset_name: str) -> list[FileStatus]:
    """Check every file of a dataset; see ``FileStatus``."""
    dataset = get_dataset(dataset_name)
    return [check_file(dataset.name, data_file.name) for data_file in dataset.files]


def file_url(dataset: Dataset, data_file: DataFile, base_url: str | None) -> str:
    """Return where to download a file from: ``base_url`` if given, else the file's public URL."""
    if base_url:
        return f"{base_url.rstrip('/')}/{urllib.parse.quote(dataset.name)}/{urllib.parse.quote(data_file.name)}"
    if data_file.url is None:
        raise DownloadError(f"Cannot download {dataset.name}/{data_file.name}: " + fix_hint(dataset, data_file))
    return data_file.url


def download_file(url: str, destination: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` if its sha256 matches, replacing the destination atomically.

    The bytes go to a temporary file in the destination's folder and are hashed while they arrive.
    The temporary file is renamed over ``destination`` only after the sha256 matched, and removed
    otherwise, so ``destination`` never contains a partial or wrong file.

    Raises:
        DownloadError: on an unsupported URL scheme or a network error.
        ChecksumError: when the downloaded bytes have another sha256.
    """
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in _DOWNLOAD_SCHEMES:
        raise DownloadError(f"Cannot download {url!r}: the URL scheme must be one of {list(_DOWNLOAD_SCHEMES)}.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    temporary = Path(temporary_name)
    try:
        hasher = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK_BYTES):
                        hasher.update(chunk)
                        out.write(chunk)
            except OSError as error:  # URLError and HTTPError are OSErrors
                raise DownloadError(f"Download of {url} failed: {error}.") from error
        digest = hasher.hexdigest()
        if digest != sha256:
            raise ChecksumError(
                f"Downloaded {url} has sha256 {digest}, expected {sha256}; {destination} was left unchanged. "
                "The source may have changed or the transfer was corrupted; try again or use another mirror."
            )
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


def download(dataset_name: str, base_url: str | None = None, force: bool = False) -> list[Path]:
    """Download into the cache every file of a dataset that is not already present and valid.

    Args:
        dataset_name: registry name.
        base_url: server laid out like the data mirror (``<base_url>/<dataset>/<file>``); default
            ``SEQOPT_DATA_URL``, else each file's public URL.
        force: download even the files that the mirror or the cache already holds.

    Returns the verified path of every file of the dataset.

    Raises:
        DownloadError: after fetching what it can, when a file failed or has no download URL.
        ChecksumError: when a downloaded file has another sha256 than the registry's.
    """
    dataset = get_dataset(dataset_name)
    base_url = base_url or os.environ.get(URL_ENV) or None
    paths = []
    failures = []
    for data_file in dataset.files:
        status = check_file(dataset.name, data_file.name)
        if not force and status.state is FileState.OK and status.path is not None:
            logger.info("%s/%s is already present at %s", dataset.name, data_file.name, status.path)
            paths.append(status.path)
            continue
        destination = data_dir() / dataset.name / data_file.name
        try:
            url = file_url(dataset, data_file, base_url)
            logger.info("Downloading %s to %s", url, destination)
            paths.append(download_file(url, destination, data_file.sha256))
        except DownloadError as error:
            failures.append(str(error))
    if failures:
        raise DownloadError(f"{len(failures)} file(s) of {dataset.name} could not be downloaded:\n"
                            + "\n".join(failures))
    return paths
