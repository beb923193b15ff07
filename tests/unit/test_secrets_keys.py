"""The keys secrets are encrypted under, and the masking of their values."""

from __future__ import annotations

import io
import json
import logging
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from app.secrets import keys, masking
from app.settings import Settings


def test_values_encrypt_under_the_newest_key_and_any_configured_key_decrypts() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = keys.Keyring((old,))
    key_id, token = before.encrypt("hunter2-long")
    assert key_id == keys.key_id(old)
    assert b"hunter2" not in token
    both = keys.Keyring((new, old))
    assert both.decrypt(key_id, token) == "hunter2-long"
    rotated = both.rotate(token)
    assert keys.Keyring((new,)).decrypt(both.newest_id, rotated) == "hunter2-long"
    with pytest.raises(keys.UnknownKey, match=f"key {key_id}"):
        keys.Keyring((new,)).decrypt(key_id, token)


def test_the_setting_names_no_key_value_when_it_is_wrong() -> None:
    good = Fernet.generate_key().decode()
    settings = Settings(secrets_key=SecretStr(f"{good}, not-a-key"))
    with pytest.raises(keys.SecretsUnavailable, match="key 2 of SLUICE_SECRETS_KEY") as caught:
        keys.keyring(settings)
    assert good not in str(caught.value)
    with pytest.raises(keys.SecretsUnavailable, match="need SLUICE_SECRETS_KEY"):
        keys.keyring(Settings())


def test_the_embedded_default_generates_one_private_key_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "sluice.secrets"):
        first = keys.embedded_key(tmp_path / "data")
    again = keys.embedded_key(tmp_path / "data")
    assert first == again
    Fernet(first.encode())
    mode = stat.S_IMODE((tmp_path / "data" / keys.KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert [r.message for r in caplog.records if "generated" in r.message] != []
    assert first not in caplog.text


def test_a_masker_hides_values_and_their_json_escaped_forms() -> None:
    secret = 'pa"ss\\word'
    masker = masking.Masker([secret, "abc"])  # under MIN_MASKED: left alone
    text = f"got {secret} and {json.dumps({'s': secret})} and abc"
    assert masker.text(text) == 'got *** and {"s": "***"} and abc'
    assert masker.value({"k": [secret, 1, {secret: secret}]}) == {"k": ["***", 1, {"***": "***"}]}
    assert not masking.Masker([])


def test_the_log_filter_masks_remembered_values_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(masking.MaskSecrets())
    log = logging.getLogger("test.masking")
    log.addHandler(handler)
    log.propagate = False
    masking.remember(["s3cret-token-value"])
    try:
        log.warning("GET %s", "https://x.test/?token=s3cret-token-value")
        try:
            raise ValueError("bad s3cret-token-value")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "token=***" in written
    assert "ValueError: bad ***" in written
    assert "s3cret-token-value" not in written
