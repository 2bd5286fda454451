"""Dataset registry: names, files, sha256 sums and public sources, with lookup and download.

``locate(dataset, file)`` returns the verified path of a file from the mirror folder
(``SEQOPT_DATA_MIRROR``) or the cache folder (``SEQOPT_DATA_DIR``, default ``~/.cache/seqopt``);
``seqopt-data download NAME`` fills the cache.
"""

from seqopt.data.files import (
    ChecksumError,
    DataError,
    DownloadError,
    FileState,
    FileStatus,
    MissingDataError,
    check_file,
    data_dir,
    download,
    download_file,
    locate,
    mirror_dir,
    sha256_of,
    verify,
)
from seqopt.data.registry import DATASETS, DataFile, Dataset, get_dataset

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DataError",
    "DataFile",
    "Dataset",
    "DownloadError",
    "FileState",
    "FileStatus",
    "MissingDataError",
    "check_file",
    "data_dir",
    "download",
    "download_file",
    "get_dataset",
    "locate",
    "mirror_dir",
    "sha256_of",
    "verify",
]
