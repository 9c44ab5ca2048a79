"""Turning a source directory into a Lambda deployment zip, reproducibly.

The same tree must give the same bytes (and so the same ``CodeSha256``) on every run and every
machine, so redeploying unchanged code is recognisable: entries are sorted, timestamps and
permissions are normalised, and only regular file content is stored.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The earliest time a zip header can hold; any fixed value works, this one is conventional.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
SKIPPED_DIRS = frozenset({"__pycache__", ".git"})
SKIPPED_SUFFIXES = (".pyc",)
REQUIREMENTS_FILE = "requirements.txt"
_UNIX = 3  # ZipInfo.create_system value that makes unzip honour the mode bits in external_attr


class PackagingError(Exception):
    """Packaging could not be done; the message is meant for the user as is."""


@dataclass(frozen=True, slots=True)
class Package:
    data: bytes
    file_count: int

    @property
    def code_sha256(self) -> str:
        return code_sha256(self.data)


def code_sha256(data: bytes) -> str:
    """Lambda's ``CodeSha256``: base64 of the zip's SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def collect_files(root: Path, *, exclude: Collection[Path] = ()) -> dict[str, Path]:
    """Archive name -> file for every regular file under ``root``, skipping build litter.

    Symlinks are followed so the zip holds plain files (Lambda's unzip of links is not portable);
    a directory reached twice through links is walked once, which also breaks link cycles.
    ``exclude`` holds resolved paths never to enter (e.g. lamina's own data dir inside ``root``).
    """
    root = root.resolve()
    excluded = {p.resolve() for p in exclude}
    files: dict[str, Path] = {}
    seen_dirs: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = here.resolve()
        if real in seen_dirs or real in excluded:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in filenames:
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            path = here / name
            if path.resolve() in excluded:
                continue
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                raise PackagingError(f"broken symlink: {path}") from None
            if stat.S_ISREG(mode):
                files[path.relative_to(root).as_posix()] = path
    return files


def build_zip(files: dict[str, Path]) -> bytes:
    """A deterministic zip of ``files`` (archive name -> source file)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            path = files[name]
            # Only "executable or not" survives: the rest of the mode depends on the umask.
            perm = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.create_system = _UNIX
            info.external_attr = (stat.S_IFREG | perm) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=6)
    return buf.getvalue()


def merge_trees(trees: Sequence[dict[str, Path]]) -> dict[str, Path]:
    """One file map from several; an earlier tree wins a name clash."""
    merged: dict[str, Path] = {}
    for tree in reversed(trees):
        merged.update(tree)
    return merged


def pip_install_command(requirements: Path, target: Path, *, python: str) -> list[str]:
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        # Bytecode would be skipped by the zip anyway; compiling it only costs time.
        "--no-compile",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]


def vendor_requirements(source: Path, target: Path, *, python: str | None = None) -> None:
    """``pip install --target`` the source's requirements.txt into ``target``.

    pip runs from ``source`` so relative paths in the requirements file mean what the user meant.
    """
    cmd = pip_install_command(source / REQUIREMENTS_FILE, target, python=python or sys.executable)
    result = subprocess.run(cmd, cwd=source, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise PackagingError(
            f"pip install -r {REQUIREMENTS_FILE} failed (exit {result.returncode}):\n{output}"
        )


def package_directory(
    source: Path,
    build_dir: Path,
    *,
    exclude: Iterable[Path] = (),
    progress: Callable[[str], None] = lambda _msg: None,
) -> Package:
    """Zip ``source`` plus, when it has a requirements.txt, its vendored dependencies.

    Dependencies are installed into ``build_dir`` (a scratch directory the caller owns), never
    into ``source``.  The user's own files win over a vendored file of the same name.
    """
    if not source.is_dir():
        raise PackagingError(f"not a directory: {source}")
    excluded = [*exclude, build_dir]
    trees = [collect_files(source, exclude=excluded)]
    if (source / REQUIREMENTS_FILE).is_file():
        progress("Vendoring requirements…")
        vendor_requirements(source, build_dir)
        trees.append(collect_files(build_dir))
    files = merge_trees(trees)
    if not files:
        raise PackagingError(f"nothing to package in {source}")
    data = build_zip(files)
    progress(f"Packaged {len(files)} file{'' if len(files) == 1 else 's'}, {human_size(len(data))}")
    return Package(data=data, file_count=len(files))
