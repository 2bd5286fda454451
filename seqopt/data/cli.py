"""The ``seqopt-data`` command: list, inspect, verify and download the datasets seqopt knows."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from seqopt.data.files import (
    MIRROR_ENV,
    URL_ENV,
    DataError,
    FileState,
    FileStatus,
    data_dir,
    download,
    fix_hint,
    mirror_dir,
    verify,
)
from seqopt.data.registry import DATASETS, Dataset, get_dataset


def _megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _summarize(statuses: list[FileStatus]) -> str:
    counts = {state: sum(s.state is state for s in statuses) for state in FileState}
    if counts[FileState.OK] == len(statuses):
        return "ok"
    parts = [f"{counts[state]} {state.value}" for state in (FileState.MISSING, FileState.CORRUPT) if counts[state]]
    return f"{', '.join(parts)} of {len(statuses)} files"


def _print_locations() -> None:
    mirror = mirror_dir()
    print(f"mirror ({MIRROR_ENV}): {mirror if mirror is not None else 'not set'}")
    print(f"cache: {data_dir()}")


def command_list(arguments: argparse.Namespace) -> int:
    _print_locations()
    print()
    width = max(len(name) for name in DATASETS)
    for dataset in DATASETS.values():
        state = _summarize(verify(dataset.name))
        print(f"{dataset.name:<{width}}  {_megabytes(dataset.total_size):>9}  {state:<24}  {dataset.title}")
    return 0


def command_info(arguments: argparse.Namespace) -> int:
    dataset = get_dataset(arguments.name)
    print(f"{dataset.name}: {dataset.title}")
    print(f"source: {dataset.source}")
    print(f"licence: {dataset.licence}")
    for status in verify(dataset.name):
        data_file = status.file
        print(f"- {data_file.name} ({_megabytes(data_file.size)}, sha256 {data_file.sha256})")
        print(f"  url: {data_file.url or 'none (' + data_file.note + ')'}")
        print(f"  state: {status.state.value}" + (f" at {status.path}" if status.path is not None else ""))
    return 0


def _report(dataset: Dataset, statuses: list[FileStatus]) -> None:
    for status in statuses:
        where = f" ({status.path})" if status.path is not None else ""
        line = f"{status.state.value:<8} {dataset.name}/{status.file.name}{where}"
        if status.state is FileState.CORRUPT:
            line += f": sha256 {status.actual_sha256}, expected {status.file.sha256}"
        print(line)


def command_verify(arguments: argparse.Namespace) -> int:
    """Verify one dataset (every file must be present and valid), or every dataset present at all.

    Without a name, a dataset of which no file is present counts as not installed rather than as
    a failure, so that the command passes on a machine that holds only some datasets.
    """
    names = [get_dataset(arguments.name).name] if arguments.name else list(DATASETS)
    failed = False
    for name in names:
        dataset = DATASETS[name]
        statuses = verify(name)
        if not arguments.name and all(s.state is FileState.MISSING for s in statuses):
            print(f"{'absent':<8} {name} (no file installed; `seqopt-data download {name}` fetches it)")
            continue
        _report(dataset, statuses)
        missing = [s for s in statuses if s.state is FileState.MISSING]
        if missing:
            # A file without a download URL needs the most explanation, so its hint comes first.
            _print_missing_hint(dataset, next((s for s in missing if s.file.url is None), missing[0]))
        failed = failed or any(s.state is not FileState.OK for s in statuses)
    return 1 if failed else 0


def _print_missing_hint(dataset: Dataset, status: FileStatus) -> None:
    """Say where the files were looked for and how to get them, once per dataset."""
    mirror = mirror_dir()
    if mirror is not None and not mirror.is_dir():
        print(f"  {MIRROR_ENV} is {mirror}, which is not a folder; point it at the folder that holds {dataset.name}/.")
    elif mirror is None:
        print(f"  {MIRROR_ENV} is not set, so only the cache {data_dir()} was searched.")
    print(f"  {fix_hint(dataset, status.file)}")


def command_download(arguments: argparse.Namespace) -> int:
    paths = download(arguments.name, base_url=arguments.url, force=arguments.force)
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqopt-data",
        description=f"Datasets of seqopt. Files are read from the mirror folder {MIRROR_ENV} if set, else from the "
        "cache folder SEQOPT_DATA_DIR (default ~/.cache/seqopt), and always checked against their sha256.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="list every dataset with its size and whether it is installed")
    listing.set_defaults(handler=command_list)

    info = commands.add_parser("info", help="show a dataset's source, licence, files and URLs")
    info.add_argument("name", help="dataset name, as `seqopt-data list` prints it")
    info.set_defaults(handler=command_info)

    check = commands.add_parser("verify", help="check the sha256 of a dataset's files, or of every installed dataset")
    check.add_argument("name", nargs="?", help="dataset name; omit to check every dataset that is installed")
    check.set_defaults(handler=command_verify)

    fetch = commands.add_parser("download", help="download a dataset into the cache folder")
    fetch.add_argument("name", help="dataset name, as `seqopt-data list` prints it")
    fetch.add_argument("--url", default=None,
                       help=f"base URL of a server laid out like the mirror (BASE/NAME/FILE); default {URL_ENV}, "
                       "else each file's public URL")
    fetch.add_argument("--force", action="store_true", help="download even files that are already present and valid")
    fetch.set_defaults(handler=command_download)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(arguments.handler(arguments))
    except KeyError as error:  # unknown dataset or file name
        print(f"seqopt-data: error: {error.args[0]}", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"seqopt-data: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
