"""Configuration: defaults, environment, and one clear line for a bad value."""

from __future__ import annotations

import pytest

from app.settings import ContainerType, SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLUICE_DATABASE_URL", "SLUICE_PORT", "SLUICE_CONTAINER_TYPE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.container_type is ContainerType.WORKER_AND_APP
    assert settings.lease_ttl_seconds == 30
    assert settings.heartbeat_interval_seconds < settings.lease_ttl_seconds


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_CONTAINER_TYPE", "WORKER")
    monkeypatch.setenv("SLUICE_PORT", "9000")
    monkeypatch.setenv("SLUICE_DATABASE_URL", "postgresql://u:pa55word@db/sluice")
    settings = load_settings()
    assert settings.container_type is ContainerType.WORKER
    assert settings.container_type.runs_worker
    assert not settings.container_type.runs_app
    assert settings.port == 9000
    assert "pa55word" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SLUICE_PORT", "eighty", "SLUICE_PORT (got 'eighty'): Input should be a valid integer"),
        ("SLUICE_PORT", "70000", "SLUICE_PORT (got '70000'): Input should be less than or equal"),
        ("SLUICE_CONTAINER_TYPE", "BOTH", "SLUICE_CONTAINER_TYPE (got 'BOTH'): Input should be"),
        (
            "SLUICE_LEASE_TTL_SECONDS",
            "0",
            "SLUICE_LEASE_TTL_SECONDS (got '0'): Input should be greater",
        ),
        ("SLUICE_HEARTBEAT_INTERVAL_SECONDS", "60", "must be shorter than SLUICE_LEASE_TTL"),
        ("SLUICE_POOL_MIN_SIZE", "50", "SLUICE_POOL_MIN_SIZE (50) exceeds SLUICE_POOL_MAX_SIZE"),
    ],
)
def test_invalid_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert "\n" not in text
    assert message in text


def test_database_url_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", "postgresql://u:hunter2@db/sluice")
    monkeypatch.setenv("SLUICE_PORT", "bad")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "app", "worker"),
    [("APP", True, False), ("WORKER", False, True), ("WORKER_AND_APP", True, True)],
)
def test_each_container_type_selects_its_roles(
    monkeypatch: pytest.MonkeyPatch, value: str, app: bool, worker: bool
) -> None:
    monkeypatch.setenv("SLUICE_CONTAINER_TYPE", value)
    container = load_settings().container_type
    assert (container.runs_app, container.runs_worker) == (app, worker)


def test_worker_and_sandbox_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_WORKER_CONCURRENCY", "3")
    monkeypatch.setenv("SLUICE_SANDBOX", "process")
    monkeypatch.setenv("SLUICE_STEP_MEMORY_MB", "256")
    monkeypatch.setenv("SLUICE_DATA_DIR", "/srv/sluice")
    settings = load_settings()
    assert settings.worker_concurrency == 3
    assert settings.sandbox == "process"
    assert settings.step_memory_mb == 256
    assert str(settings.resolved_cache_dir) == "/srv/sluice/cache"
    monkeypatch.setenv("SLUICE_SANDBOX", "docker")
    with pytest.raises(SettingsError, match="SLUICE_SANDBOX \\(got 'docker'\\)"):
        load_settings()
