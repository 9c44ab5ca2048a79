"""SigV4 verification of API requests, computed exactly as botocore (and the other SDKs) sign them.

The checks run in the order AWS's own front end runs them, so a client sees the same error AWS would
give for the same broken request: missing parts, date format and clock skew, ``host`` signed,
algorithm, credential shape, credential scope, access key, then the signature itself.

Canonical request, for non-S3 services (botocore ``SigV4Auth``):

* path: the path as sent on the wire (already percent-encoded), dot segments and empty segments
  removed, then percent-encoded *again* with ``/`` and ``~`` left alone;
* query: every ``k=v`` decoded and re-encoded with only ``-_.~`` unreserved, sorted by encoded
  key then value (the pre-signed form leaves ``X-Amz-Signature`` out);
* headers: the ``SignedHeaders`` names in the order given, values with runs of whitespace folded
  to one space, repeats of a name joined by ``,``;
* payload: ``x-amz-content-sha256`` when the client sent it, otherwise the body's SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from lamina.auth.canonical import SCOPE_PART_RE, canonical_path, canonical_query, parse_query, parse_timestamp
from lamina.auth.fastpath import FastSigV4
from lamina.errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# AWS's own ceiling for X-Amz-Expires: a signing key is only valid for seven days.
MAX_PRESIGN_EXPIRES_S = 604800

_SHA256_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
# The signature is the one part of an Authorization header that an error message never repeats.
_SIGNATURE_VALUE_RE = re.compile(r"(signature=)[^,\s]*", re.IGNORECASE)
_QUERY_AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders")
_MAX_ECHO_CHARS = 512

_MSG_MISSING_TOKEN = "Missing Authentication Token"
_MSG_UNKNOWN_KEY = "The security token included in the request is invalid."
_MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_MSG_HOST_NOT_SIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


@dataclass(frozen=True, slots=True)
class SignedIdentity:
    """Who signed the request, and the scope they signed it for."""

    access_key_id: str
    region: str  # from the credential scope: the server forms ARNs with it
    service: str  # from the credential scope ("lambda", "logs", "scheduler", ...)


class _Signed(NamedTuple):
    """The signing parameters of one request, whichever form (header or query) carried them."""

    algorithm: str
    credential: str
    signed_headers: str
    signature: str
    timestamp: str  # ISO-8601 basic, exactly as it enters the string to sign
    epoch: float
    expires: int | None  # X-Amz-Expires of a pre-signed URL
    presigned: bool


class SigV4Verifier:
    """Verifies AWS Signature Version 4 on every request against a fixed set of key pairs."""

    _MAX_CACHED_KEYS = 256

    def __init__(
        self,
        secrets: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = 900.0,
    ) -> None:
        self._secrets = secrets
        self._clock = clock
        self._max_skew_s = max_skew_s
        # (secret, date, region, service) -> signing key; a key is four HMACs that change daily at most.
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._fast = FastSigV4(secrets, signing_key=self._signing_key, clock=clock, max_skew_s=max_skew_s)
        self._identities: dict[tuple[str, str, str], SignedIdentity] = {}

    def verify(
        self,
        method: str,
        raw_path: str | bytes,
        query_string: str | bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        hmap: Mapping[bytes, bytes] | None = None,
    ) -> SignedIdentity:
        """Check the request's signature; return who signed it or raise ``AwsError``.

        ``raw_path`` and ``query_string`` are as sent on the wire: bytes (the front's
        ``Request.path`` / ``query``) or text, where any non-ASCII character stands for its UTF-8 bytes.
        ``hmap``: the headers as a dict (the front's ``Request.hmap``), which saves building one.
        """
        wire_path, wire_query = _as_wire(raw_path), _as_wire(query_string)
        accepted = self._fast.verify(method, wire_path, wire_query, headers, body, hmap)
        if accepted is not None:
            identity = self._identities.get(accepted)
            if identity is None:
                if len(self._identities) > 1024:
                    self._identities.clear()
                identity = self._identities[accepted] = SignedIdentity(*accepted)
            return identity
        values: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        params = parse_query(wire_query)
        signed = self._signing_parameters(values, params)
        now = self._clock()
        self._check_time(signed, now)

        signed_names = signed.signed_headers.split(";")
        if "host" not in signed.signed_headers.lower().split(";"):
            raise AwsError("InvalidSignatureException", _MSG_HOST_NOT_SIGNED)
        if signed.algorithm != ALGORITHM:
            raise AwsError(
                "IncompleteSignatureException",
                f"Unsupported AWS 'algorithm': '{signed.algorithm}' (only {ALGORITHM} for now).",
            )
        access_key_id, date, region, service = _check_scope(signed)
        secret = self._secrets.get(access_key_id)
        if secret is None:
            raise AwsError("UnrecognizedClientException", _MSG_UNKNOWN_KEY)

        payload_hashes = _payload_hashes(values, params, body, signed.presigned)
        path = canonical_path(wire_path)
        query = canonical_query(params, signed.presigned)
        key = self._signing_key(secret, date, region, service)
        sts_head = f"{ALGORITHM}\n{signed.timestamp}\n{date}/{region}/{service}/aws4_request\n".encode()
        provided = signed.signature.encode("latin-1", "replace")
        head = f"{method.upper()}\n{path}\n{query}\n".encode()
        signed_list = ("\n" + signed.signed_headers + "\n").encode("latin-1", "replace")
        # Header values are hashed as the bytes received (what Go, JS, Java, .NET sign); botocore
        # signs latin-1 values by their UTF-8 encoding, so non-ASCII values get a second reading.
        blocks = [_canonical_headers(values, signed_names, as_latin1=False)]
        if not blocks[0].isascii():
            blocks.append(_canonical_headers(values, signed_names, as_latin1=True))
        for block in blocks:
            prefix = head + block + signed_list
            for payload_hash in payload_hashes:
                digest = hashlib.sha256(prefix + payload_hash.encode()).hexdigest()
                expected = hmac.digest(key, sts_head + digest.encode(), "sha256").hex().encode()
                if hmac.compare_digest(expected, provided):
                    return SignedIdentity(access_key_id, region, service)
        raise AwsError("InvalidSignatureException", _MSG_BAD_SIGNATURE)

    def _signing_parameters(
        self, hmap: dict[bytes, list[bytes]], params: list[tuple[bytes, bytes]]
    ) -> _Signed:
        auth_values = hmap.get(b"authorization")
        query_auth = {k.decode("latin-1"): v for k, v in params if k.startswith(b"X-Amz-")}
        if auth_values and "X-Amz-Algorithm" in query_auth:
            raise AwsError(
                "InvalidSignatureException",
                "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
            )
        if auth_values:
            return _from_header(auth_values[0].decode("latin-1").strip(), hmap)
        if "X-Amz-Signature" in query_auth or "X-Amz-Algorithm" in query_auth:
            return _from_query(query_auth)
        raise AwsError("MissingAuthenticationTokenException", _MSG_MISSING_TOKEN)

    def _check_time(self, signed: _Signed, now: float) -> None:
        # Pre-signed or not, AWS's non-S3 services hold the request date to the same +/- 15 minute
        # window (STS is documented to ignore a longer X-Amz-Expires).  A shorter X-Amz-Expires is
        # still honoured, with S3's wording for it, since the signer asked for that much and no more.
        skew = self._max_skew_s
        minutes = f"{skew / 60:g}"
        if signed.epoch < now - skew:
            raise AwsError(
                "InvalidSignatureException",
                f"Signature expired: {signed.timestamp} is now earlier than {_stamp(now - skew)} "
                f"({_stamp(now)} - {minutes} min.)",
            )
        if signed.epoch > now + skew:
            raise AwsError(
                "InvalidSignatureException",
                f"Signature not yet current: {signed.timestamp} is still later than {_stamp(now + skew)} "
                f"({_stamp(now)} + {minutes} min.)",
            )
        if signed.expires is not None and now > signed.epoch + signed.expires:
            raise AwsError("AccessDeniedException", "Request has expired")

    def _signing_key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            key = _derive_key(secret, date, region, service)
            if len(self._keys) >= self._MAX_CACHED_KEYS:
                # Oldest first: entries for past dates are the ones that will never be used again.
                # Another thread may be evicting too; losing that race only costs a re-derivation.
                with contextlib.suppress(RuntimeError, StopIteration):
                    self._keys.pop(next(iter(self._keys)), None)
            self._keys[cache_key] = key
        return key


def _derive_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def _from_header(auth: str, hmap: dict[bytes, list[bytes]]) -> _Signed:
    if not auth.startswith("AWS4-"):
        # Not SigV4 at all (SigV2, a bearer token, ...): AWS answers as if nothing was sent.
        raise AwsError("MissingAuthenticationTokenException", _MSG_MISSING_TOKEN)
    algorithm, _, rest = auth.partition(" ")
    fields: dict[str, str] = {}
    # Commas and/or spaces separate the pairs; SDKs differ on which.
    for item in rest.replace(",", " ").split():
        name, eq, value = item.partition("=")
        if not eq:
            raise AwsError(
                "IncompleteSignatureException",
                f"'{name}' not a valid key=value pair (missing equal-sign) "
                f"in Authorization header: '{_redact(auth)}'.",
            )
        fields[name] = value
    problems = [
        f"Authorization header requires '{p}' parameter."
        for p in ("Credential", "Signature", "SignedHeaders")
        if p not in fields or (p != "SignedHeaders" and not fields[p])
    ]
    amz_date = hmap.get(b"x-amz-date")
    http_date = hmap.get(b"date")
    # X-Amz-Date wins over Date when both are sent (botocore signs with whichever it finds).
    raw_date = amz_date[0] if amz_date else http_date[0] if http_date else None
    if raw_date is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems or raw_date is None:
        raise AwsError("IncompleteSignatureException", " ".join(problems) + f" Authorization={_redact(auth)}")
    if amz_date:
        timestamp = raw_date.decode("latin-1").strip()
        epoch = parse_timestamp(timestamp)
    else:
        epoch = _parse_http_date(raw_date.decode("latin-1").strip())
        timestamp = _stamp(epoch)
    return _Signed(
        algorithm=algorithm,
        credential=fields["Credential"],
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        timestamp=timestamp,
        epoch=epoch,
        expires=None,
        presigned=False,
    )


def _redact(auth: str) -> str:
    return _SIGNATURE_VALUE_RE.sub(r"\1<redacted>", auth)[:_MAX_ECHO_CHARS]


def _from_query(query_auth: dict[str, bytes]) -> _Signed:
    values = {k: v.decode("utf-8", "replace") for k, v in query_auth.items()}
    missing = [
        f"AWS query-string parameters must include '{p}'."
        for p in (*_QUERY_AUTH_PARAMS, "X-Amz-Date")
        if not values.get(p)
    ]
    if missing:
        raise AwsError(
            "IncompleteSignatureException", " ".join(missing) + " Re-examine the query-string parameters."
        )
    expires: int | None = None
    raw_expires = values.get("X-Amz-Expires")
    if raw_expires is not None:
        try:
            expires = int(raw_expires)
        except ValueError:
            raise AwsError("IncompleteSignatureException", "X-Amz-Expires should be a number") from None
        if expires < 0:
            raise AwsError("IncompleteSignatureException", "X-Amz-Expires must be non-negative")
        if expires > MAX_PRESIGN_EXPIRES_S:
            raise AwsError(
                "IncompleteSignatureException",
                f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES_S}",
            )
    timestamp = values["X-Amz-Date"]
    return _Signed(
        algorithm=values["X-Amz-Algorithm"],
        credential=values["X-Amz-Credential"],
        signed_headers=values["X-Amz-SignedHeaders"],
        signature=values["X-Amz-Signature"],
        timestamp=timestamp,
        epoch=parse_timestamp(timestamp),
        expires=expires,
        presigned=True,
    )


def _check_scope(signed: _Signed) -> tuple[str, str, str, str]:
    credential = signed.credential.rstrip("/")  # AWS ignores trailing slashes here
    parts = credential.split("/")
    if len(parts) != 5:
        raise AwsError(
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'",
        )
    access_key_id, date, region, service, terminator = parts
    problems = []
    if not SCOPE_PART_RE.fullmatch(region):
        problems.append(f"Credential should be scoped to a valid region, not '{region}'.")
    if not SCOPE_PART_RE.fullmatch(service):
        problems.append(f"Credential should be scoped to a valid service, not '{service}'.")
    if terminator != "aws4_request":
        problems.append(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )
    if date != signed.timestamp[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{date}' != '{signed.timestamp[:8]}', from '{signed.timestamp}'."
        )
    if problems:
        raise AwsError("InvalidSignatureException", " ".join(problems))
    return access_key_id, date, region, service


def _payload_hashes(
    hmap: dict[bytes, list[bytes]], params: list[tuple[bytes, bytes]], body: bytes, presigned: bool
) -> tuple[str, ...]:
    """The payload hash(es) the client may have signed, most likely first."""
    declared = hmap.get(b"x-amz-content-sha256")
    if declared is None and presigned:
        declared = [v for k, v in params if k == b"X-Amz-Content-Sha256"] or None
    if declared is not None:
        value = declared[0].decode("latin-1").strip()
        if value == UNSIGNED_PAYLOAD:
            return (value,)
        if not _SHA256_HEX_RE.fullmatch(value):
            raise AwsError(
                "IncompleteSignatureException",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.",
            )
        if value.lower() != hashlib.sha256(body).hexdigest():
            raise AwsError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        return (value,)
    digest = hashlib.sha256(body).hexdigest()
    # A pre-signed URL cannot carry a body hash the signer knew, so some SDKs presign over
    # UNSIGNED-PAYLOAD; a signature over that string is only valid if the signer chose it.
    return (digest, UNSIGNED_PAYLOAD) if presigned else (digest,)


def _as_wire(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8")


def _canonical_headers(hmap: dict[bytes, list[bytes]], names: list[str], as_latin1: bool) -> bytes:
    lines = []
    for name in names:
        raw_name = name.encode("latin-1", "replace")
        values = hmap.get(raw_name.lower(), ())
        if as_latin1:
            value = ",".join(" ".join(v.decode("latin-1").split()) for v in values).encode()
        else:
            value = b",".join([b" ".join(v.split()) for v in values])
        lines.append(raw_name + b":" + value)
    return b"\n".join(lines) + b"\n"


def _parse_http_date(value: str) -> float:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise AwsError(
            "IncompleteSignatureException",
            f"Date must be in ISO-8601 'basic format'. Got '{value[:64]}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _stamp(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))
