"""Resume tokens: what makes ``POST /resume/{run_id}/{token}`` unguessable.

A token names the waiting step instance and carries an HMAC-SHA256 of that name under the
run's own 32-byte random secret: ``<base64url(step key)>.<base64url(mac)>``. Tokens can be
computed before the run reaches its wait (templates offer them as ``resume_urls.<step>``),
so a resume that arrives early is still valid. The secret never leaves the database except
inside these MACs; tokens are checked in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_BYTES = 32
_CONTEXT = b"sluice-resume:"


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def token(secret: bytes, step_key: str) -> str:
    return f"{_b64(step_key.encode())}.{_b64(_mac(secret, step_key))}"


def url(public_url: str, run_id: object, secret: bytes, step_key: str) -> str:
    return f"{public_url}/resume/{run_id}/{token(secret, step_key)}"


def step_key(candidate: str) -> str | None:
    """The step key a token claims to be for (unchecked), or None when it is malformed."""
    encoded, dot, _mac_part = candidate.partition(".")
    if not dot or len(candidate) > 1024:
        return None
    try:
        return _unb64(encoded).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def verify(secret: bytes, candidate: str) -> str | None:
    """The step key when `candidate` is a token minted for this run, else None."""
    key = step_key(candidate)
    if key is None:
        return None
    return key if hmac.compare_digest(token(secret, key), candidate) else None


def _mac(secret: bytes, step_key: str) -> bytes:
    return hmac.new(secret, _CONTEXT + step_key.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
