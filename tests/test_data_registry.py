"""The data registry against the real mirror, and downloads against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from seqopt.data import (
    DATASETS,
    ChecksumError,
    DownloadError,
    FileState,
    MissingDataError,
    download,
    get_dataset,
    locate,
    verify,
)
from seqopt.data.cli import main as data_cli

MIRROR = Path(os.environ.get("SEQOPT_DATA_MIRROR", "/nonexistent"))
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason="SEQOPT_DATA_MIRROR does not name the data mirror")
SMALL_DATASET = "nas-bench-macro"


@pytest.fixture
def empty_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No mirror and an empty cache folder; returns the cache folder."""
    monkeypatch.delenv("SEQOPT_DATA_MIRROR", raising=False)
    monkeypatch.delenv("SEQOPT_DATA_URL", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEQOPT_DATA_DIR", str(cache))
    return cache


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served_copy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a copy of the small dataset's mirror folder over HTTP on 127.0.0.1; yields (base URL, root)."""
    root = tmp_path / "served"
    shutil.copytree(MIRROR / SMALL_DATASET, root / SMALL_DATASET)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _source_checksums(dataset: str) -> dict[str, tuple[int, str]]:
    """Read `name` N bytes, sha256 `digest` lines from a dataset's SOURCE.md."""
    text = (MIRROR / dataset / "SOURCE.md").read_text(encoding="utf-8")
    pattern = r"`([^`]+)`\s+(\d+) bytes, sha256 `([0-9a-f]{64})`"
    return {name: (int(size), digest) for name, size, digest in re.findall(pattern, text)}


@needs_mirror
def test_registry_covers_every_mirror_folder() -> None:
    folders = sorted(p.name for p in MIRROR.iterdir() if p.is_dir())
    assert len(folders) == 13
    assert sorted(name for name, d in DATASETS.items() if d.in_mirror) == folders


@needs_mirror
@pytest.mark.parametrize("name", sorted(name for name, d in DATASETS.items() if d.in_mirror))
def test_registry_matches_source_records(name: str) -> None:
    dataset = get_dataset(name)
    recorded = _source_checksums(name)
    assert {f.name: (f.size, f.sha256) for f in dataset.files} == recorded
    on_disk = sorted(p.name for p in (MIRROR / name).iterdir() if p.name != "SOURCE.md")
    assert sorted(f.name for f in dataset.files) == on_disk


@needs_mirror
@pytest.mark.parametrize("name", ["nas-bench-201", "nas-bench-macro", "sms-spam-collection", "sklearn-digits"])
def test_mirror_files_verify(name: str) -> None:
    statuses = verify(name)
    assert [s.state for s in statuses] == [FileState.OK] * len(statuses)
    for status in statuses:
        assert status.path == MIRROR / name / status.file.name


def test_every_file_has_url_or_note() -> None:
    for dataset in DATASETS.values():
        for data_file in dataset.files:
            assert data_file.url is not None or data_file.note, f"{dataset.name}/{data_file.name}"
            assert re.fullmatch(r"[0-9a-f]{64}", data_file.sha256)


def test_unknown_dataset_suggests_names() -> None:
    with pytest.raises(KeyError, match="Did you mean 'nas-bench-201'"):
        get_dataset("nas-bench-21")


def test_missing_file_error_says_fix(empty_places: Path) -> None:
    with pytest.raises(MissingDataError) as raised:
        locate("nas-bench-201", "nas_landscapes_cifar10_avg.csv")
    message = str(raised.value)
    assert "nas_landscapes_cifar10_avg.csv" in message
    assert "1fc89edb42c804223ea2f520a3a65b5e10d8c34bc2d1bbca6bc4b4b38a193827" in message
    assert "seqopt-data download nas-bench-201" in message
    assert str(empty_places / "nas-bench-201") in message


def test_missing_file_without_url_says_so(empty_places: Path) -> None:
    with pytest.raises(MissingDataError, match="no direct public download URL") as raised:
        locate("nas-bench-201", "mini_nasbench201_12epoch.csv")
    assert "read_pickle" in str(raised.value)
    assert "SEQOPT_DATA_MIRROR" in str(raised.value)


def test_corrupt_file_error_names_checksums(empty_places: Path) -> None:
    corrupt = empty_places / SMALL_DATASET / "LICENSE"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("not the licence")
    expected = get_dataset(SMALL_DATASET).file("LICENSE").sha256
    with pytest.raises(ChecksumError) as raised:
        locate(SMALL_DATASET, "LICENSE")
    message = str(raised.value)
    assert str(corrupt) in message
    assert expected in message
    assert hashlib.sha256(b"not the licence").hexdigest() in message
    assert f"seqopt-data download {SMALL_DATASET}" in message


@needs_mirror
def test_download_from_loopback_server(empty_places: Path, served_copy: tuple[str, Path]) -> None:
    base_url, _ = served_copy
    paths = download(SMALL_DATASET, base_url=base_url)
    assert paths == [empty_places / SMALL_DATASET / f.name for f in get_dataset(SMALL_DATASET).files]
    for path in paths:
        assert path.read_bytes() == (MIRROR / SMALL_DATASET / path.name).read_bytes()
    assert locate(SMALL_DATASET, "nas-bench-macro_cifar10.json") == paths[1]
    cached = sorted(p.name for p in (empty_places / SMALL_DATASET).iterdir())
    assert cached == ["LICENSE", "nas-bench-macro_cifar10.json"]


@needs_mirror
def test_download_base_url_from_environment(empty_places: Path, served_copy: tuple[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQOPT_DATA_URL", served_copy[0])
    assert data_cli(["download", SMALL_DATASET]) == 0
    assert data_cli(["verify", SMALL_DATASET]) == 0


@needs_mirror
def test_download_rejects_wrong_checksum(empty_places: Path, served_copy: tuple[str, Path]) -> None:
    base_url, root = served_copy
    (root / SMALL_DATASET / "LICENSE").write_text("tampered")
    with pytest.raises(ChecksumError, match="expected afd656861676442b"):
        download(SMALL_DATASET, base_url=base_url)
    folder = empty_places / SMALL_DATASET
    assert not (folder / "LICENSE").exists()
    assert [p.name for p in folder.iterdir() if p.name.endswith(".part")] == []


@needs_mirror
def test_failed_download_keeps_valid_file(empty_places: Path, served_copy: tuple[str, Path]) -> None:
    base_url, root = served_copy
    download(SMALL_DATASET, base_url=base_url)
    kept = (empty_places / SMALL_DATASET / "LICENSE").read_bytes()
    (root / SMALL_DATASET / "LICENSE").write_text("tampered")
    with pytest.raises(ChecksumError):
        download(SMALL_DATASET, base_url=base_url, force=True)
    assert (empty_places / SMALL_DATASET / "LICENSE").read_bytes() == kept


@needs_mirror
def test_download_reports_missing_server_file(empty_places: Path, served_copy: tuple[str, Path]) -> None:
    base_url, root = served_copy
    (root / SMALL_DATASET / "LICENSE").unlink()
    with pytest.raises(DownloadError, match="404"):
        download(SMALL_DATASET, base_url=base_url)


def test_download_without_url_lists_the_files(empty_places: Path) -> None:
    with pytest.raises(DownloadError, match="2 file") as raised:
        download("sklearn-digits")
    assert "digits.csv.gz" in str(raised.value)
    assert "no direct public download URL" in str(raised.value)


def test_cli_verify_exit_codes(empty_places: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data_cli(["verify", SMALL_DATASET]) == 1
    output = capsys.readouterr().out
    assert "missing" in output
    assert "SEQOPT_DATA_MIRROR is not set" in output
    assert f"seqopt-data download {SMALL_DATASET}" in output
    assert data_cli(["verify"]) == 0  # nothing installed is not a failure
    assert data_cli(["info", "nas-bench-21"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_cli_verify_mirror_not_folder(empty_places: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEQOPT_DATA_MIRROR", str(empty_places / "no-such-folder"))
    assert data_cli(["verify", SMALL_DATASET]) == 1
    assert "which is not a folder" in capsys.readouterr().out


@needs_mirror
def test_cli_list_names_every_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert data_cli(["list"]) == 0
    output = capsys.readouterr().out
    for name in DATASETS:
        assert name in output


def test_console_script_is_installed() -> None:
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("seqopt-data") == "seqopt.data.cli:main"
