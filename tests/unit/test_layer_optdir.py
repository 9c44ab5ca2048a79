"""The merged /opt of a layer set: order, overrides, content addressing, the combined size limit."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from lamina.errors import AwsError
from lamina.functions.codestore import CodeStore
from lamina.functions.optdir import build_opt, check_combined_size, live_entries, opt_name


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _ref(code: CodeStore, files: dict[str, str]) -> dict[str, object]:
    stored = code.store(_zip(files))
    return {"arn": "x", "code_size": stored.size, "hex": stored.hex, "unzipped_size": stored.unzipped_size}


def test_later_layers_override_and_trees_are_shared(tmp_path: Path) -> None:
    code = CodeStore(tmp_path / "blobs", tmp_path / "code")
    a = _ref(code, {"python/a.py": "A", "python/same.py": "from a", "lib/x": "file in a"})
    b = _ref(code, {"python/same.py": "from b", "lib/x/inner": "dir in b"})
    opt = build_opt(code, [a, b])
    assert opt is not None and opt.name == opt_name([a, b])
    assert (opt / "python/a.py").read_text() == "A"
    assert (opt / "python/same.py").read_text() == "from b"
    assert (opt / "lib/x/inner").read_text() == "dir in b"  # a dir replaces a file
    assert build_opt(code, [a, b]) == opt  # built once
    other = build_opt(code, [b, a])
    assert other is not None and other != opt and (other / "python/same.py").read_text() == "from a"
    assert build_opt(code, []) is None
    assert live_entries([[a, b]]) == {str(a["hex"]), str(b["hex"]), opt.name}
    code.remove_orphans(live_entries([[a, b]]))
    assert opt.is_dir() and not other.exists()


def test_combined_size() -> None:
    layer = {"arn": "x", "code_size": 1, "hex": "0", "unzipped_size": 200 * 2**20}
    check_combined_size(50 * 2**20, [layer])
    with pytest.raises(AwsError) as exc:
        check_combined_size(51 * 2**20, [layer])
    assert exc.value.message.endswith(f"The actual size is {251 * 2**20} bytes.")
