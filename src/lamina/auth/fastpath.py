"""The common case of SigV4, checked in one pass: an SDK's Authorization header on a plain request.

SigV4 was a third of the event loop's time per invoke under load.  Almost every request is the
same shape (botocore's ``Credential=…, SignedHeaders=…, Signature=…``, single-valued ASCII
headers, an ``X-Amz-Date``, no pre-signed query), and for that shape the canonical request is a
handful of byte joins.  This module only ever *accepts*: anything unusual, and any mismatch,
returns None and the full verifier (sigv4.py) decides, so its errors and its handling of the odd
cases stay the one authority.

A client sends the same Authorization header, signature aside, on every request of a kind for a
day; everything that part determines (the parsed scope, the signing key's HMAC pads, the signed
header names and a format for their canonical lines) is worked out once and remembered, so a
request costs its few dict lookups, the header values' formatting and the hashing itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from operator import itemgetter

from lamina.auth.canonical import SCOPE_PART_RE, canonical_path, canonical_query, parse_query, parse_timestamp
from lamina.errors import AwsError

# Authorization before ", Signature=", in the one form the full verifier reads as the same
# credential and header list: it splits the header at commas and at what ``str.split()`` takes for
# whitespace (\x1c-\x1f too), so the two values are printable ASCII with neither space nor comma.
_HEAD_RE = re.compile(rb"AWS4-HMAC-SHA256 Credential=([!-+\--~]*), SignedHeaders=([!-+\--~]*)")
_SIGNATURE = b", Signature="
_UNSIGNED = b"UNSIGNED-PAYLOAD"
# Every byte that the full verifier's whitespace folding (``bytes.split()``) treats as a separator
# except the space, which a value may hold singly between other characters.
_FOLDED = b"\t\n\r\x0b\x0c"
_Pads = tuple["hashlib._Hash", "hashlib._Hash"]


def _pads(key: bytes) -> _Pads:
    """SHA-256 states that have absorbed HMAC's inner and outer padded keys (RFC 2104)."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else sha256(key).digest().ljust(64, b"\0")
    return sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))


@dataclass(frozen=True, slots=True)
class _Head:
    """What an Authorization header says before its signature, checked and worked out once."""

    secret: str  # the secret ``pads`` were derived from: the live one is compared on every use
    identity: tuple[str, str, str]  # (access key id, region, service)
    date: bytes  # the scope's YYYYMMDD, which X-Amz-Date must begin with
    scope: bytes  # b"\n<date>/<region>/<service>/aws4_request\n", as in the string to sign
    pads: _Pads
    signed_list: bytes  # SignedHeaders as sent, as signed
    values: Callable[[Mapping[bytes, bytes]], tuple[bytes, ...]]  # the signed headers' values
    lines: bytes  # b"name:%s\n" per signed header: with ``values``, the canonical header block
    line_breaks: int  # b"\n" in ``lines``


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
        # Authorization up to ", Signature=" -> its _Head: one per key, day, scope and header set.
        self._heads: dict[bytes, _Head] = {}
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
        if auth is None:
            return None
        # The date first: a signing key is derived (below, for an unseen header) only for a request
        # of the present, never for whatever dates a caller who knows a key id cares to send.
        amz_date = hdr.get(b"x-amz-date")
        if amz_date is None:
            return None
        epoch = self._epochs.get(amz_date)
        if epoch is None:
            epoch = self._epoch(amz_date)
        if epoch is None or abs(self._clock() - epoch) > self._max_skew_s:
            return None
        # The signature is not checked for shape: only the 64 hex digits computed below match it.
        unsigned, _, signature = auth.rpartition(_SIGNATURE)
        head = self._heads.get(unsigned)
        # The pads are only as good as the secret they came from: a key since removed from
        # ``secrets`` (a deleted account) or given another secret is worked out afresh.
        if head is None or self._secrets.get(head.identity[0]) != head.secret:
            head = self._head(unsigned, amz_date[:8])
            if head is None:
                return None
        if amz_date[:8] != head.date:
            return None
        try:
            block = head.lines % head.values(hdr)
        except KeyError:
            return None  # a signed header not sent
        # The full verifier folds each value's runs of whitespace to one space and strips its ends;
        # only values already so (and ASCII: no second, latin-1 reading) are signed as they stand.
        # Checked once on the whole block, not per value: deleting tabs, CRs, VTs, FFs and line
        # breaks must remove only the block's own line breaks, and a space must be single and
        # neither a value's first (": ") nor its last (" \n").  ``.find(sub) >= 0``, never
        # ``sub in value``: bytes.__contains__ first tries the needle as an int (a byte value) and,
        # for a bytes needle, raises and clears a formatted TypeError -- ~3% of the server's CPU
        # under load, from these few tests alone.
        if (
            not block.isascii()
            or len(block.translate(None, _FOLDED)) != len(block) - head.line_breaks
            or (
                block.find(b" ") >= 0
                and (block.find(b"  ") >= 0 or block.find(b": ") >= 0 or block.find(b" \n") >= 0)
            )
        ):
            return None
        if query:
            if query.find(b"X-Amz-") >= 0:
                return None  # pre-signed parameters: the full verifier's business
            params = parse_query(query)
            if any(k.startswith(b"X-Amz-") for k, _ in params):
                return None  # the same, percent-encoded
            query_text = canonical_query(params, presigned=False).encode()
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
            method.upper().encode(),  # as the full verifier signs it
            path,
            query_text,
            block,
            head.signed_list,
            payload_hash,
        )
        string_to_sign = b"AWS4-HMAC-SHA256\n%s%s%s" % (
            amz_date,
            head.scope,
            sha256(canonical).hexdigest().encode(),
        )
        # HMAC from the key's two pre-hashed pads (RFC 2104): 0.6 us, where hmac.digest (OpenSSL
        # fetches the algorithm by name each call) takes 1.3 and a copied hmac.HMAC 1.0.
        inner, outer = head.pads[0].copy(), head.pads[1].copy()
        inner.update(string_to_sign)
        outer.update(inner.digest())
        if hmac.compare_digest(outer.hexdigest().encode(), signature):
            return head.identity
        return None

    def _head(self, unsigned: bytes, day: bytes) -> _Head | None:
        """The _Head of an Authorization header's part before ", Signature=", if of the common shape
        and for ``day`` (YYYYMMDD).

        Remembered (one per key, day, region, service and set of signed headers in use), and
        used only while the secret it was derived from is still the key's secret.
        """
        # With the signature, which must be the 64 hex digits computed, the whole header is then
        # exactly the three fields the full verifier reads, with the same values.
        found = _HEAD_RE.fullmatch(unsigned)
        if found is None:
            return None
        credential, signed_list = found.groups()
        scope = credential.split(b"/")
        if len(scope) != 5 or scope[4] != b"aws4_request" or scope[1] != day:
            return None  # ``day``: the request's X-Amz-Date's, which the scope must name
        key_id = scope[0].decode()
        secret = self._secrets.get(key_id)
        if secret is None:
            return None
        date, region, service = (p.decode() for p in scope[1:4])
        if not SCOPE_PART_RE.fullmatch(region) or not SCOPE_PART_RE.fullmatch(service):
            return None
        names = signed_list.split(b";")
        if b"host" not in names:
            return None
        getter = itemgetter(*names)
        # itemgetter of one name gives the value itself, not a 1-tuple.
        values = getter if len(names) > 1 else lambda hdr: (getter(hdr),)
        head = _Head(
            secret=secret,
            identity=(key_id, region, service),
            date=scope[1],
            scope=b"\n" + credential[credential.find(b"/") + 1 :] + b"\n",
            pads=_pads(self._signing_key(secret, date, region, service)),
            signed_list=signed_list,
            values=values,
            lines=b"".join(name.replace(b"%", b"%%") + b":%s\n" for name in names),
            line_breaks=len(names),
        )
        if len(self._heads) > 256:
            self._heads.clear()
        self._heads[unsigned] = head
        return head

    def _epoch(self, amz_date: bytes) -> float | None:
        try:
            epoch = parse_timestamp(amz_date.decode("ascii"))
        except (AwsError, UnicodeDecodeError):
            return None
        if len(self._epochs) > 64:
            self._epochs.clear()
        self._epochs[amz_date] = epoch
        return epoch
