"""The keys secrets are encrypted under: Fernet (from `cryptography`), newest first.

`SLUICE_SECRETS_KEY` holds one or more Fernet keys, comma-separated, the newest first: new
values are encrypted under it, and any of them decrypts. Each key has an id (the start of
its SHA-256), stored with each secret, so `sluice secrets rotate` knows what is left under
an older key. Unset with the embedded database, a key is generated into
``<SLUICE_DATA_DIR>/secrets.key`` (mode 0600) once, with a warning; unset with an external
database, secrets are unavailable (`SecretsUnavailable`): a key in a file on one machine
would not be the key of the next.

Invariant: a key is never logged; errors name key ids only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.settings import Settings

log = logging.getLogger("sluice.secrets")

KEY_FILE = "secrets.key"


class SecretsUnavailable(Exception):
    """No key is configured, or a configured key is not a Fernet key."""


class UnknownKey(Exception):
    """A secret is encrypted under a key that is not configured (any more)."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Keyring:
    keys: tuple[bytes, ...]
    """Newest first."""

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(key) for key in self.keys])

    @property
    def newest_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(key) for key in self.keys)

    def encrypt(self, value: str) -> tuple[str, bytes]:
        """The newest key's id, and `value` encrypted under it."""
        return self.newest_id, self._fernet.encrypt(value.encode())

    def decrypt(self, stored_key_id: str, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise UnknownKey(
                f"a secret is encrypted under key {stored_key_id}, which is not among the "
                f"configured keys ({', '.join(self.ids)}): add it back to SLUICE_SECRETS_KEY"
            ) from None

    def rotate(self, token: bytes) -> bytes:
        """`token` re-encrypted under the newest key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise UnknownKey("a secret is encrypted under a key that is not configured") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()


@functools.lru_cache(maxsize=8)
def _cached(text: str) -> Keyring:
    return _parse(text)


def keyring(settings: Settings) -> Keyring:
    """The configured keys. Raises SecretsUnavailable.

    The embedded default's key is in the settings once `app.db.with_database_url` has
    resolved the database (`embedded_key`)."""
    if settings.secrets_key is None:
        raise SecretsUnavailable(
            "secrets need SLUICE_SECRETS_KEY (a Fernet key: `sluice secrets generate-key`) "
            "when SLUICE_DATABASE_URL names the database"
        )
    return _cached(settings.secrets_key.get_secret_value())


def _parse(text: str) -> Keyring:
    keys = tuple(part.strip().encode() for part in text.split(",") if part.strip())
    if not keys:
        raise SecretsUnavailable("SLUICE_SECRETS_KEY holds no key")
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError:
            raise SecretsUnavailable(
                f"key {index + 1} of SLUICE_SECRETS_KEY is not a Fernet key (32 url-safe "
                "base64-encoded bytes; `sluice secrets generate-key` makes one)"
            ) from None
    return Keyring(keys)


def embedded_key(data_dir: Path) -> str:
    """The embedded default's key, in `data_dir`, generated first if there is none (by
    exactly one process)."""
    path = data_dir / KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()  # another process made it first
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    log.warning(
        "secrets: generated an encryption key into %s (mode 0600); back it up, or set "
        "SLUICE_SECRETS_KEY: without it the secrets cannot be decrypted",
        path,
    )
    return key
