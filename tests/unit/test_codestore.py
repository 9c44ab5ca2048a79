"""The content-addressed code store: validation, extraction, atomicity, orphan collection."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from lamina.errors import AwsError
from lamina.functions.codestore import CodeStore


def zip_of(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def executable(name: str, data: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    return info, data


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    return CodeStore(tmp_path / "blobs", tmp_path / "code")


def test_store_reports_aws_digest_and_extracts_read_only(store: CodeStore) -> None:
    data = zip_of([("app.py", b"x = 1\n"), ("pkg/mod.py", b""), executable("bootstrap", b"#!/bin/sh\n")])
    stored = store.store(data)
    assert stored.sha256_b64 == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert stored.size == len(data) and stored.hex == hashlib.sha256(data).hexdigest()
    root = store.code_path(stored.hex)
    assert (root / "app.py").read_text() == "x = 1\n"
    assert os.access(root / "bootstrap", os.X_OK)
    assert not (root / "app.py").stat().st_mode & 0o222  # read-only for everyone
    assert store.blob_path(stored.hex).read_bytes() == data
    # the same zip again reuses the extraction
    assert store.store(data) == stored


@pytest.mark.parametrize(
    "entries",
    [
        [("../evil.py", b"")],
        [("/abs.py", b"")],
        [("a/../../evil.py", b"")],
        [("C:\\evil.py", b"")],
        [link("out", "/etc/passwd")],
        [link("up", "../../outside")],
        [("dir/", b""), link("dir/x", "../../..")],
    ],
)
def test_escaping_entries_are_refused_and_nothing_is_left(
    store: CodeStore, tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]
) -> None:
    with pytest.raises(AwsError) as exc:
        store.store(zip_of([("app.py", b""), *entries]))
    assert exc.value.code == "InvalidParameterValueException"
    assert list((tmp_path / "code").iterdir()) == []  # no partial extraction stays behind
    assert not (tmp_path / "evil.py").exists()


def test_links_inside_the_tree_are_kept(store: CodeStore) -> None:
    stored = store.store(zip_of([("lib/real.py", b"v = 2\n"), link("alias.py", "lib/real.py")]))
    root = store.code_path(stored.hex)
    assert (root / "alias.py").is_symlink() and (root / "alias.py").read_text() == "v = 2\n"


def test_not_a_zip(store: CodeStore) -> None:
    with pytest.raises(AwsError) as exc:
        store.store(b"PK\x03\x04 but not really")
    assert exc.value.code == "InvalidParameterValueException"


def test_unzipped_limit_is_enforced_while_writing(
    store: CodeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lamina.functions.codestore as codestore

    monkeypatch.setattr(codestore, "MAX_UNZIPPED", 1000)
    with pytest.raises(AwsError) as exc:
        store.store(zip_of([("big.bin", b"\0" * 2000)]))
    assert "Unzipped size" in exc.value.message
    assert list((tmp_path / "code").iterdir()) == []


def test_orphans_and_interrupted_writes_are_collected(store: CodeStore, tmp_path: Path) -> None:
    keep = store.store(zip_of([("a.py", b"1")]))
    drop = store.store(zip_of([("b.py", b"2")]))
    (tmp_path / "code" / ".half-written").mkdir()
    store.remove_orphans({keep.hex})
    assert store.code_path(keep.hex).is_dir() and store.blob_path(keep.hex).is_file()
    assert not store.code_path(drop.hex).exists() and not store.blob_path(drop.hex).exists()
    assert not (tmp_path / "code" / ".half-written").exists()
