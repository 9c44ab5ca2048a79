"""Authentication: SigV4 verification of every API request, and the server's own key pair."""

from __future__ import annotations

from lamina.auth.credentials import (
    CREDENTIALS_FILENAME,
    Credentials,
    credentials_path,
    load_or_create,
    read_credentials,
    usage_text,
)
from lamina.auth.sigv4 import SignedIdentity, SigV4Verifier

__all__ = [
    "CREDENTIALS_FILENAME",
    "Credentials",
    "SigV4Verifier",
    "SignedIdentity",
    "credentials_path",
    "load_or_create",
    "read_credentials",
    "usage_text",
]
