"""The common case of SigV4, checked in one pass: an SDK's Authorization header on a plain request.

SigV4 was a third of the event loop's time per invoke under load.  Almost every request is the
same shape (botocore's ``Credential=…, SignedHeaders=…, Signature=…``, single-valued ASCII
headers, an ``X-Amz-Date``, no pre-signed query), and for that shape the canonical request is a
handful of byte joins.  This module only ever *accepts*: anything unusual, and any mismatch,
returns None and the full verifier (sigv4.py) decides, so its errors and its handling of the odd
cases stay the one authority.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from hashlib import sha256

from lamina.auth.canonical import SCOPE_PART_RE, canonical_path, canonical_query, parse_query, parse_timestamp
from lamina.errors import AwsError

_PREFIX = b"AWS4-HMAC-SHA256 Credential="
_UNSIGNED = b"UNSIGNED-PAYLOAD"
_Pads = tuple["hashlib._Hash", "hashlib._Hash"]


def _pads(key: bytes) -> _Pads:
    """SHA-256 states that have absorbed HMAC's inner and outer padded keys (RFC 2104)."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else sha256(key).digest().ljust(64, b"\0")
    return sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))


class FastSigV4:
    """Accepts well-formed, correctly signed common requests; returns None for everything else."""

    def __init__(
        self,
        secrets: Mapping[str, str],
        *,
        signing_key: Callable[[str, str, str, str], bytes],
        clock: Callable[[], float],
        max_skew_s: float,
    ) -> None:
        self._secrets = secrets
        self._signing_key = signing_key
        self._clock = clock
        self._max_skew_s = max_skew_s
        self._epochs: dict[bytes, float] = {}  # X-Amz-Date -> epoch; one entry per second of traffic
        # credential scope -> (secret it was derived from, (key id, region, service, HMAC pads))
        self._scopes: dict[bytes, tuple[str, tuple[str, str, str, _Pads]]] = {}
        self._paths: dict[bytes, bytes] = {}  # raw path -> canonical path: a few per function

    def verify(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        hmap: Mapping[bytes, bytes] | None = None,
    ) -> tuple[str, str, str] | None:
        """(access key id, region, service) when the request is of the common shape and valid.

        ``hmap``: the same headers as a dict (the front's ``Request.hmap``), to skip building one;
        used only when it has as many entries as ``headers`` (no header repeated)."""
        if hmap is not None and len(hmap) == len(headers):
            hdr = hmap
        else:
            built: dict[bytes, bytes] = {}
            for name, value in headers:
                if name in built:
                    return None  # repeated headers are joined with ',' by the full verifier
                built[name] = value
            hdr = built
        auth = hdr.get(b"authorization")
        if auth is None or not auth.startswith(_PREFIX) or not auth.isascii():
            return None
        parts = auth[len(_PREFIX) :].split(b", ")
        if len(parts) != 3 or not parts[1].startswith(b"SignedHeaders="):
            return None
        if not parts[2].startswith(b"Signature="):
            return None
        credential = parts[0]
        scope = credential.split(b"/")
        amz_date = hdr.get(b"x-amz-date")
        if len(scope) != 5 or scope[4] != b"aws4_request" or amz_date is None or amz_date[:8] != scope[1]:
            return None
        epoch = self._epoch(amz_date)
        if epoch is None or abs(self._clock() - epoch) > self._max_skew_s:
            return None
        scoped = self._scope(credential, scope)
        if scoped is None:
            return None
        key_id, region, service, key = scoped
        signed_list = parts[1][14:]  # after b"SignedHeaders="
        lines = []
        has_host = False
        # ``.find(sub) >= 0``, never ``sub in value``: bytes.__contains__ first tries the needle as
        # an int (a byte value) and, for a bytes needle, raises and clears a formatted TypeError --
        # ~3% of the server's CPU under load, from these few tests alone.
        for name in signed_list.split(b";"):
            found = hdr.get(name)
            # Values needing whitespace folding or a second (latin-1) reading take the full path.
            if found is None or not found.isascii() or found.find(b"  ") >= 0 or found.find(b"\t") >= 0:
                return None
            if name == b"host":
                has_host = True
            lines.append(b"%s:%s\n" % (name, found.strip()))
        if not has_host:
            return None
        if query:
            if query.find(b"X-Amz-") >= 0:
                return None  # pre-signed parameters: the full verifier's business
            query_text = canonical_query(parse_query(query), presigned=False).encode()
        else:
            query_text = b""
        declared = hdr.get(b"x-amz-content-sha256")
        if declared is None:
            payload_hash = sha256(body).hexdigest().encode()
        else:  # as sent, as signed; the body is hashed only to check a declared hash
            payload_hash = declared
            if declared != _UNSIGNED and declared.lower() != sha256(body).hexdigest().encode():
                return None
        path = self._paths.get(raw_path)
        if path is None:
            if len(self._paths) > 256:
                self._paths.clear()
            path = self._paths[raw_path] = canonical_path(raw_path).encode()
        canonical = b"%s\n%s\n%s\n%s\n%s\n%s" % (
            method.encode(),
            path,
            query_text,
            b"".join(lines),
            signed_list,
            payload_hash,
        )
        string_to_sign = b"AWS4-HMAC-SHA256\n%s\n%s\n%s" % (
            amz_date,
            credential[credential.find(b"/") + 1 :],
            sha256(canonical).hexdigest().encode(),
        )
        # HMAC from the key's two pre-hashed pads (RFC 2104): 0.6 us, where hmac.digest (OpenSSL
        # fetches the algorithm by name each call) takes 1.3 and a copied hmac.HMAC 1.0.
        inner, outer = key[0].copy(), key[1].copy()
        inner.update(string_to_sign)
        outer.update(inner.digest())
        expected = outer.hexdigest().encode()
        if hmac.compare_digest(expected, parts[2][10:]):  # after b"Signature="
            return key_id, region, service
        return None

    def _scope(self, credential: bytes, scope: list[bytes]) -> tuple[str, str, str, _Pads] | None:
        """(key id, region, service, the signing key's HMAC pads) of a credential scope.

        Remembered per scope (one per key, day, region and service in use), but keyed on the
        secret too: a key removed from ``secrets`` (a deleted account) or given another secret is
        looked up afresh, never accepted from the cache.
        """
        key_id = scope[0].decode()
        secret = self._secrets.get(key_id)
        if secret is None:
            return None
        cached = self._scopes.get(credential)
        if cached is not None and cached[0] == secret:
            return cached[1]
        date, region, service = (p.decode() for p in scope[1:4])
        if not SCOPE_PART_RE.fullmatch(region) or not SCOPE_PART_RE.fullmatch(service):
            return None
        key = _pads(self._signing_key(secret, date, region, service))
        if len(self._scopes) > 64:
            self._scopes.clear()
        found = (key_id, region, service, key)
        self._scopes[credential] = (secret, found)
        return found

    def _epoch(self, amz_date: bytes) -> float | None:
        epoch = self._epochs.get(amz_date)
        if epoch is None:
            try:
                epoch = parse_timestamp(amz_date.decode("ascii"))
            except (AwsError, UnicodeDecodeError):
                return None
            if len(self._epochs) > 64:
                self._epochs.clear()
            self._epochs[amz_date] = epoch
        return epoch
