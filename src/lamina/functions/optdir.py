"""The merged /opt of an ordered layer set: built once per set, read-only, content-addressed.

A function's layers are extracted in order into one directory (a later layer's file replaces an
earlier one's), named ``opt-<sha256 of the ordered layer hexes>`` inside the code store, so the
code store's orphan sweep and read-only handling cover it.  Built in a temporary directory and
renamed into place: a crash never leaves a half-merged tree that a later start would trust.
Files are hard links to the layers' extracted trees (copies where linking fails).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lamina.errors import AwsError
from lamina.functions.codestore import MAX_UNZIPPED, CodeStore, _make_read_only, _rmtree

# One function's layer as it keeps it (frozen with the version): {"arn", "code_size", "hex",
# "unzipped_size"}.  Deleting the layer version later leaves this copy usable.
LayerRef = Mapping[str, Any]


def opt_name(layers: Sequence[LayerRef]) -> str | None:
    """The code-store entry name of a layer set's merged tree (None without layers)."""
    if not layers:
        return None
    key = hashlib.sha256("\n".join(str(layer["hex"]) for layer in layers).encode()).hexdigest()
    return f"opt-{key}"


def opt_path(code: CodeStore, layers: Sequence[LayerRef]) -> Path | None:
    name = opt_name(layers)
    return None if name is None else code.code_path(name)


def extensions(opt: Path | None) -> tuple[str, ...]:
    """The external extensions of a merged /opt: executable files in extensions/, in name order.

    AWS starts every file there (sorted) before the runtime; a layer can ship none.
    """
    if opt is None:
        return ()
    try:
        entries = sorted(os.scandir(opt / "extensions"), key=lambda e: e.name)
    except OSError:
        return ()
    return tuple(e.name for e in entries if e.is_file() and os.access(e.path, os.X_OK))


def live_entries(layer_sets: Iterable[Sequence[LayerRef]]) -> set[str]:
    """Code-store entries the given functions' layers need: the layers' trees and merged trees."""
    live: set[str] = set()
    for layers in layer_sets:
        live.update(str(layer["hex"]) for layer in layers)
        name = opt_name(layers)
        if name is not None:
            live.add(name)
    return live


def check_combined_size(function_unzipped: int, layers: Sequence[LayerRef]) -> None:
    total = function_unzipped + sum(int(layer["unzipped_size"]) for layer in layers)
    if layers and total > MAX_UNZIPPED:
        raise AwsError(
            "InvalidParameterValueException",
            "Function code combined with layers exceeds the maximum allowed size of "
            f"{MAX_UNZIPPED} bytes. The actual size is {total} bytes.",
        )


def tree_size(root: Path) -> int:
    """Bytes of the regular files under ``root`` (an extracted function: its unzipped size)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def build_opt(code: CodeStore, layers: Sequence[LayerRef]) -> Path | None:
    """The merged tree of ``layers``, built if missing (blocking: run it off the event loop)."""
    target = opt_path(code, layers)
    if target is None or target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".opt-", dir=target.parent))
    try:
        for layer in layers:
            _merge(code.code_path(str(layer["hex"])), tmp)
        _make_read_only(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # a concurrent identical build won: fine
                raise
            _rmtree(tmp)
    except BaseException:
        _rmtree(tmp)
        raise
    return target


def _clear(dest: str) -> None:
    if os.path.isdir(dest) and not os.path.islink(dest):
        _rmtree(Path(dest))
    elif os.path.lexists(dest):
        os.unlink(dest)


def _merge(src_root: Path, dest_root: Path) -> None:
    """Lay ``src_root`` over ``dest_root``: its entries replace what is there."""
    for dirpath, dirnames, filenames in os.walk(src_root):
        rel = os.path.relpath(dirpath, src_root)
        dest_dir = os.path.join(dest_root, rel) if rel != "." else str(dest_root)
        for name in list(dirnames):
            src, dest = os.path.join(dirpath, name), os.path.join(dest_dir, name)
            if os.path.islink(src):
                _clear(dest)
                os.symlink(os.readlink(src), dest)
            elif not (os.path.isdir(dest) and not os.path.islink(dest)):
                _clear(dest)
                os.mkdir(dest, 0o755)
        for name in filenames:
            src, dest = os.path.join(dirpath, name), os.path.join(dest_dir, name)
            _clear(dest)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dest)
                continue
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)
