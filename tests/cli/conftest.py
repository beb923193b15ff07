"""The `sluice` client commands over real HTTP, in this process.

`sluice` runs the command; `app_url` and `project_key` point it at the real app, served by
uvicorn on an ephemeral port over a fresh database, and `fake_url` at `FakeRuns`. The same
commands run against a real `sluice serve` in tests/e2e/test_cli_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app.cli import main
from app.web import create_app
from tests.cli.fake_runs import FakeRuns
from tests.cli.helpers import Ran, Sluice, serving
from tests.web.apps import ADMIN, app_settings


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLUICE_URL", "SLUICE_API_KEY", "SLUICE_ADMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sluice(capsys: pytest.CaptureFixture[str]) -> Sluice:
    """Run `sluice ARGS` in this process: its exit status, stdout and stderr."""

    def run(*args: str) -> Ran:
        code = main(list(args))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@pytest.fixture
def app_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real app; SLUICE_URL and SLUICE_ADMIN_API_KEY point the CLI at it."""
    with serving(create_app(app_settings(database_url))) as url:
        monkeypatch.setenv("SLUICE_URL", url)
        monkeypatch.setenv("SLUICE_ADMIN_API_KEY", ADMIN)
        yield url


@pytest.fixture
def project_key(app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new project's key, also in SLUICE_API_KEY."""
    created = sluice("project", "create", "acme", "--json")
    assert created.code == 0, created.err
    key: str = json.loads(created.out)["api_key"]
    monkeypatch.setenv("SLUICE_API_KEY", key)
    return key


@pytest.fixture
def fake() -> Iterator[FakeRuns]:
    fake = FakeRuns()
    with serving(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def fake_url(fake: FakeRuns, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake's URL, also in SLUICE_URL (and a key in SLUICE_API_KEY)."""
    monkeypatch.setenv("SLUICE_URL", fake.url)
    monkeypatch.setenv("SLUICE_API_KEY", "sk_test")
    return fake.url
