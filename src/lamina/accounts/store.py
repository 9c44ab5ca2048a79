"""The accounts an operator created: ``<data-dir>/accounts.json``, mode 0600, written atomically.

Both the CLI (``lamina accounts``) and the server read it; only the CLI writes it, under an
exclusive ``flock`` of ``<data-dir>/accounts.lock`` so two CLIs never lose each other's account.
The running server notices changes by the file's identity (inode, size, mtime), never by its
content, so it needs no lock to read: a rename replaces the whole file at once.  Secrets live
only here and in memory; no message, repr or exception carries one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lamina.auth.credentials import generate

ACCOUNTS_FILENAME = "accounts.json"
ACCOUNTS_DIRNAME = "accounts"  # <data-dir>/accounts/<account id>/: each account's own databases
ROOT_NAME = "root"  # the operator's account (credentials.json), listed but never stored here
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ACCOUNT_ID_RE = re.compile(r"\d{12}")

FileSignature = tuple[int, int, int] | None  # (inode, size, mtime ns); None: no file


class AccountError(ValueError):
    """A refused create/delete, or an unreadable file: the message is for the operator."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    account_id: str
    access_key_id: str
    secret_access_key: str
    created: str  # ISO 8601, UTC

    def __repr__(self) -> str:
        # The dataclass repr would print the secret into any log line or traceback that shows us.
        return (
            f"Account(name={self.name!r}, account_id={self.account_id!r}, "
            f"access_key_id={self.access_key_id!r})"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "account_id": self.account_id,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "created": self.created,
        }


def accounts_path(data_dir: Path) -> Path:
    return data_dir / ACCOUNTS_FILENAME


def account_dir(data_dir: Path, account_id: str) -> Path:
    return data_dir / ACCOUNTS_DIRNAME / account_id


def signature(data_dir: Path) -> FileSignature:
    try:
        st = os.stat(accounts_path(data_dir))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise AccountError(
            f"invalid account name {name!r}: 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if name.lower() == ROOT_NAME:
        raise AccountError(f"{ROOT_NAME!r} is the operator's account (credentials.json); choose another name")


def load(data_dir: Path) -> list[Account]:
    """Every stored account, in creation order; [] when there is no file."""
    path = accounts_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw)
        rows = data["accounts"]
        out = [
            Account(r["name"], r["account_id"], r["access_key_id"], r["secret_access_key"], r["created"])
            for r in rows
        ]
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError):
        # Never include the content: it holds secrets.
        raise AccountError(f"{path} is not a valid accounts file; restore it from a backup") from None
    for acc in out:
        if not (
            all(isinstance(v, str) and v for v in acc.to_json().values())
            and _ACCOUNT_ID_RE.fullmatch(acc.account_id)
        ):
            raise AccountError(f"{path} holds an invalid account entry ({acc.name!r})")
    return out


@contextlib.contextmanager
def _writer(data_dir: Path) -> Iterator[list[Account]]:
    """The accounts, locked against other writers; what the body leaves in the list is written."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(data_dir / "accounts.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        accounts = load(data_dir)
        before = list(accounts)
        yield accounts
        if accounts != before:
            _write(accounts_path(data_dir), accounts)


def create(data_dir: Path, name: str, *, reserved_ids: frozenset[str] = frozenset()) -> Account:
    """A new account with fresh credentials and a random 12-digit id no other account has.

    ``reserved_ids``: ids that are not in the file but taken (the operator's own account id).
    """
    check_name(name)
    with _writer(data_dir) as accounts:
        if any(a.name == name for a in accounts):
            raise AccountError(f"an account named {name!r} already exists")
        taken = reserved_ids | {a.account_id for a in accounts}
        account_id = _new_account_id(taken)
        creds = generate()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        account = Account(name, account_id, creds.access_key_id, creds.secret_access_key, stamp)
        accounts.append(account)
    return account


def delete(data_dir: Path, name: str) -> Account:
    with _writer(data_dir) as accounts:
        found = next((a for a in accounts if a.name == name), None)
        if found is None:
            raise AccountError(f"no account named {name!r}")
        accounts.remove(found)
    return found


def _new_account_id(taken: frozenset[str] | set[str]) -> str:
    while True:
        # 12 digits without a leading zero, so no tool that reads it as a number loses a digit.
        candidate = str(10**11 + secrets.randbelow(9 * 10**11))
        if candidate not in taken:
            return candidate


def _write(path: Path, accounts: list[Account]) -> None:
    payload = json.dumps({"accounts": [a.to_json() for a in accounts]}, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # 0600 at creation: the secrets never sit in a wider-moded file, even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
