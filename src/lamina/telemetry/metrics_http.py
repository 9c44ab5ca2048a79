"""``GET /metrics``: the Prometheus exposition, behind a bearer token or a SigV4 signature.

Prometheus scrapers cannot sign SigV4, so the endpoint takes ``Authorization: Bearer <token>``
(Prometheus's ``authorization: {credentials_file: ...}``) with the token from
``LAMINA_METRICS_TOKEN`` or, when that is unset, generated once into ``<data-dir>/metrics-token``
(mode 0600 from the moment it exists, like ``credentials.json``).  A request signed with the
server's credentials (SigV4, header or pre-signed URL) is accepted too.  The token is never
logged or echoed; comparisons are constant-time.

What a scrape shows: the token is the operator's, so it shows every account's series, each
sample labelled ``account_id``; a signed scrape shows the signer's own account's, unlabelled.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from lamina.auth.sigv4 import SigV4Verifier
from lamina.errors import AwsError
from lamina.telemetry import prometheus
from lamina.telemetry.metrics import MetricsRegistry

TOKEN_FILENAME = "metrics-token"

Headers = list[tuple[bytes, bytes]]


def load_or_create_token(data_dir: Path, given: str | None) -> str:
    """The bearer token: ``given`` (LAMINA_METRICS_TOKEN) wins and is never written; else the
    token in ``<data_dir>/metrics-token``, created (0600) if absent."""
    if given:
        return given
    path = data_dir / TOKEN_FILENAME
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    token = secrets.token_urlsafe(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)  # 0600 at creation: never readable by others
    except FileExistsError:
        return _read(path)  # another process made it between our read and our write
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return token


def _read(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)  # widened by a copy or an editor: the token must stay private
        token = f.read().strip()
    if not token:
        raise ValueError(f"{path} is empty; delete it to generate a new metrics token")
    return token


class MetricsEndpoint:
    """What the HTTP app calls for ``/metrics``: ``handle`` answers (status, headers, body)."""

    def __init__(
        self,
        registry: MetricsRegistry,
        verifier: SigV4Verifier,
        token: str,
        *,
        registry_for: Callable[[str], MetricsRegistry | None] | None = None,
        every_account: Callable[[], list[tuple[str, MetricsRegistry]]] | None = None,
    ) -> None:
        """``registry_for``: a signed request sees the registry of the signer's account; None:
        every signer sees ``registry``.  ``every_account``: (account id, registry) of each account,
        what the operator's bearer token sees; None: it sees ``registry``."""
        self._registry = registry
        self._registry_for = registry_for
        self._every_account = every_account
        self._verifier = verifier
        self._token = token.encode()

    def handle(
        self, method: str, raw_path: bytes, raw_query: bytes, headers: Headers, hmap: Mapping[bytes, bytes]
    ) -> tuple[int, Headers, bytes]:
        if method != "GET":
            return _plain(405, b"only GET is allowed on /metrics\n", [(b"allow", b"GET")])
        render = self._authorised(method, raw_path, raw_query, headers, hmap)
        if render is None:
            return _plain(
                401,
                b"unauthorized: send 'Authorization: Bearer <token>' (docs/metrics.md) or sign with SigV4\n",
                [(b"www-authenticate", b'Bearer realm="lamina metrics"')],
            )
        return 200, [(b"content-type", prometheus.CONTENT_TYPE.encode())], render()

    def _authorised(
        self, method: str, raw_path: bytes, raw_query: bytes, headers: Headers, hmap: Mapping[bytes, bytes]
    ) -> Callable[[], bytes] | None:
        """What the caller may read (the exposition, to render), or None (refused)."""
        auth = hmap.get(b"authorization", b"")
        scheme, _, credentials = auth.partition(b" ")
        if scheme.lower() == b"bearer":
            if not hmac.compare_digest(credentials.strip(), self._token):
                return None
            every = self._every_account
            if every is None:
                return lambda: prometheus.render(self._registry)
            return lambda: prometheus.render_all(every())
        if not auth and b"X-Amz-Signature" not in raw_query:
            return None
        try:
            identity = self._verifier.verify(method, raw_path, raw_query, headers, b"")
        except AwsError:
            return None
        lookup = self._registry_for
        registry = self._registry if lookup is None else lookup(identity.access_key_id)
        return None if registry is None else lambda: prometheus.render(registry)


def _plain(status: int, body: bytes, extra: Headers) -> tuple[int, Headers, bytes]:
    return status, [(b"content-type", b"text/plain; charset=utf-8"), *extra], body
