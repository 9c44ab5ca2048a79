"""Content-addressed code: the zip as uploaded (for GetFunction's download) and its extracted tree.

Layout under the data dir: ``blobs/<hex[:2]>/<hex>.zip`` and ``code/<hex>/``.  Both are written
to a temporary name and renamed into place, so a crash never leaves a half-written entry that a
later start would trust.  Extraction refuses anything that would land outside the target
(``../``, absolute paths, links pointing out) and bounds the unzipped size while it writes, so a
zip whose headers lie about sizes cannot fill the disk.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lamina.errors import AwsError

MAX_ZIPPED = 50 * 1024 * 1024
MAX_UNZIPPED = 250 * 1024 * 1024  # 262144000, AWS's CodeSizeUnzipped
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredCode:
    hex: str  # sha256 hex: the content address
    sha256_b64: str  # what AWS reports as CodeSha256
    size: int  # zipped size: CodeSize
    unzipped_size: int


def _bad_zip() -> AwsError:
    return AwsError(
        "InvalidParameterValueException",
        "Could not unzip uploaded file. Please check your file, then try to upload again.",
    )


def _unsafe(name: str) -> AwsError:
    return AwsError(
        "InvalidParameterValueException",
        f"Could not unzip uploaded file: entry {name!r} would be extracted outside the code directory.",
    )


def _safe_relpath(name: str) -> PurePosixPath:
    """The entry's path inside the target, or an error if it escapes it."""
    normalized = name.replace("\\", "/")
    p = PurePosixPath(normalized)
    if p.is_absolute() or normalized.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _unsafe(name)
    parts = [part for part in p.parts if part not in ("", ".")]
    if any(part == ".." for part in parts) or not parts:
        raise _unsafe(name)
    return PurePosixPath(*parts)


class CodeStore:
    def __init__(self, blob_dir: Path, code_dir: Path) -> None:
        self._blobs = blob_dir
        self._code = code_dir
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._code.mkdir(parents=True, exist_ok=True)

    def blob_path(self, hex_digest: str) -> Path:
        return self._blobs / hex_digest[:2] / f"{hex_digest}.zip"

    def code_path(self, hex_digest: str) -> Path:
        return self._code / hex_digest

    def store(self, data: bytes) -> StoredCode:
        """Validate, keep and extract a zip (blocking: run it off the event loop)."""
        if len(data) > MAX_ZIPPED:
            raise AwsError(
                "RequestEntityTooLargeException",
                f"Zipped size must be smaller than {MAX_ZIPPED} bytes",
            )
        digest = hashlib.sha256(data)
        hex_digest = digest.hexdigest()
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise _bad_zip() from exc
        with zf:
            unzipped = self._extract_once(zf, hex_digest)
        blob = self.blob_path(hex_digest)
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(blob, data)
        return StoredCode(
            hex=hex_digest,
            sha256_b64=base64.b64encode(digest.digest()).decode(),
            size=len(data),
            unzipped_size=unzipped,
        )

    def _extract_once(self, zf: zipfile.ZipFile, hex_digest: str) -> int:
        target = self.code_path(hex_digest)
        declared = sum(i.file_size for i in zf.infolist())
        if declared > MAX_UNZIPPED:
            raise _too_big()
        if target.is_dir():
            return declared
        tmp = Path(tempfile.mkdtemp(prefix=f".{hex_digest[:12]}-", dir=self._code))
        try:
            written = _extract(zf, tmp)
            # Code is read-only to environments; directories stay traversable.
            _make_read_only(tmp)
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # a concurrent identical upload won the race: fine
                    raise
                _rmtree(tmp)
            return written
        except BaseException:
            _rmtree(tmp)
            raise

    def remove_orphans(self, live_hexes: set[str]) -> None:
        """Drop code no function version refers to (and leftovers of interrupted writes)."""
        for entry in self._code.iterdir():
            if entry.name.startswith(".") or entry.name not in live_hexes:
                _rmtree(entry)
        for sub in self._blobs.iterdir():
            for blob in sub.iterdir() if sub.is_dir() else ():
                if blob.name.startswith(".") or blob.name.removesuffix(".zip") not in live_hexes:
                    blob.unlink(missing_ok=True)


def _too_big() -> AwsError:
    return AwsError(
        "InvalidParameterValueException",
        f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes",
    )


def _extract(zf: zipfile.ZipFile, root: Path) -> int:
    total = 0
    root_real = root.resolve()
    for info in zf.infolist():
        rel = _safe_relpath(info.filename)
        dest = root / rel
        mode = (info.external_attr >> 16) & 0xFFFF
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.parent.resolve().is_relative_to(root_real):
            raise _unsafe(info.filename)  # a directory in the path is a link pointing out
        if stat.S_ISLNK(mode):
            link_target = zf.read(info).decode("utf-8", "replace")
            resolved = (dest.parent / link_target).resolve()
            if os.path.isabs(link_target) or not resolved.is_relative_to(root_real):
                raise _unsafe(info.filename)
            dest.unlink(missing_ok=True)
            os.symlink(link_target, dest)
            continue
        with zf.open(info) as src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                total += len(chunk)
                if total > MAX_UNZIPPED:
                    raise _too_big()
                out.write(chunk)
        # Keep the executable bit (custom runtimes' bootstrap, binaries); drop everything else.
        os.chmod(dest, 0o755 if mode & 0o111 else 0o644)
    return total


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & ~0o222)
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    os.chmod(root, 0o555)


def _rmtree(path: Path) -> None:
    """Remove a tree whose directories were made read-only (0555) by _make_read_only."""
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o755)
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                dp = os.path.join(dirpath, d)
                if not os.path.islink(dp):
                    os.chmod(dp, 0o755)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
