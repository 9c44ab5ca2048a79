"""The server's one key pair: given in the environment, or generated once and kept under the data dir.

The secret only ever lives in memory and in ``<data_dir>/credentials.json`` (mode 0600 from the
moment the file exists); nothing here prints, logs or raises with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import stat
import string
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS_FILENAME = "credentials.json"
ACCESS_KEY_PREFIX = "LKIA"  # like AWS's AKIA, so it looks right to tools, but never mistaken for one

_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"  # the alphabet of AWS secret keys


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        # The dataclass repr would print the secret into any log line or traceback that shows us.
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILENAME


def generate() -> Credentials:
    """A fresh pair shaped like AWS's: 20-character key id, 40-character secret."""
    key_id = ACCESS_KEY_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return Credentials(key_id, secret)


def load_or_create(
    data_dir: Path, access_key_id: str | None, secret_access_key: str | None
) -> tuple[Credentials, bool]:
    """The server's credentials and whether they were just generated.

    A pair given explicitly (``LAMINA_ACCESS_KEY_ID`` / ``LAMINA_SECRET_ACCESS_KEY``) wins and is
    never written; otherwise the file under ``data_dir`` is read, or created if absent.
    """
    if access_key_id and secret_access_key:
        return Credentials(access_key_id, secret_access_key), False
    if access_key_id or secret_access_key:
        given, missing = (
            ("LAMINA_ACCESS_KEY_ID", "LAMINA_SECRET_ACCESS_KEY")
            if access_key_id
            else ("LAMINA_SECRET_ACCESS_KEY", "LAMINA_ACCESS_KEY_ID")
        )
        raise ValueError(
            f"{given} is set but {missing} is not: set both, or neither to use {CREDENTIALS_FILENAME}"
        )
    path = credentials_path(data_dir)
    existing = _read(path, fix_mode=True)
    if existing is not None:
        return existing, False
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    creds = generate()
    if _write_new(path, creds):
        return creds, True
    # Another process created the file between our read and our write: theirs is the pair in use.
    raced = _read(path, fix_mode=True)
    if raced is None:
        raise ValueError(f"{path} vanished while it was being created")
    return raced, False


def read_credentials(data_dir: Path) -> Credentials | None:
    """The pair in ``<data_dir>/credentials.json``, or None if there is no such file (CLI side)."""
    return _read(credentials_path(data_dir), fix_mode=False)


def usage_text(creds_path: Path, endpoint_url: str, *, region: str = "us-east-1") -> str:
    """How to point an AWS client at lamina, without ever showing the secret itself."""
    path_arg = shlex.quote(str(creds_path))
    try:
        creds = _read(creds_path, fix_mode=False)
    except (OSError, ValueError):
        creds = None
    if creds is not None:
        key_line = f"export AWS_ACCESS_KEY_ID={shlex.quote(creds.access_key_id)}"
    else:
        key_line = f'export AWS_ACCESS_KEY_ID="$({_py_field("access_key_id", path_arg)})"'
    return "\n".join(
        [
            f"Credentials are in {creds_path} (readable by you only). To use them:",
            "",
            f"  {key_line}",
            f'  export AWS_SECRET_ACCESS_KEY="$({_py_field("secret_access_key", path_arg)})"',
            f"  export AWS_DEFAULT_REGION={shlex.quote(region)}",
            f"  aws --endpoint-url {shlex.quote(endpoint_url)} lambda list-functions",
            "",
            "or set all three in one step:",
            "",
            '  eval "$(lamina credentials --export)"',
            "",
        ]
    )


def _py_field(field: str, path_arg: str) -> str:
    # The path goes in as argv, not inside the Python source, so no path can break the quoting.
    return f"python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[\"{field}\"])' {path_arg}"


def _read(path: Path, *, fix_mode: bool) -> Credentials | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        if fix_mode and stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            # A copy or an editor may have widened it; the secret must not stay readable by others.
            os.fchmod(fd, 0o600)
        raw = f.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # Never include the content: it is the secret.
        raise ValueError(
            f"{path} is not valid JSON; fix it or delete it to generate new credentials"
        ) from None
    key_id = data.get("access_key_id") if isinstance(data, dict) else None
    secret = data.get("secret_access_key") if isinstance(data, dict) else None
    if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
        raise ValueError(
            f"{path} must hold a JSON object with non-empty string fields "
            "'access_key_id' and 'secret_access_key'; fix it or delete it to generate new credentials"
        )
    return Credentials(key_id, secret)


def _write_new(path: Path, creds: Credentials) -> bool:
    """Create ``path`` atomically with mode 0600; False if it already exists (nothing written)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    payload = json.dumps(
        {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key}, indent=2
    )
    # 0600 at creation: there is never a moment when the secret sits in a wider-moded file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            # link() never replaces an existing file, so two servers starting at once agree on one pair.
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            # A filesystem without hard links: fall back to rename, which is atomic but may replace.
            os.replace(tmp, path)
        _fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the file itself is already durable
    finally:
        os.close(dfd)
