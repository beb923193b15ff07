"""Database faults over HTTP: a JSON 503 with Retry-After within the database timeout, never
a 500 or a hang; and an unexpected error is a JSON 500 without a traceback."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.flows import store
from app.web import create_app
from tests.web.apps import ADMIN, app_client, app_settings

ROUTES = [
    ("POST", "/webhooks/00000000-0000-4000-8000-000000000000", {}),
    ("POST", "/webhooks/00000000-0000-4000-8000-000000000000/sync", {}),
    ("POST", "/resume/00000000-0000-4000-8000-000000000000/token", {}),
    ("GET", "/api/v1/runs", {"authorization": "Bearer sk_abc_def"}),
    ("GET", "/api/v1/flows", {"authorization": "Bearer sk_abc_def"}),
    ("POST", "/api/v1/projects", {"authorization": f"Bearer {ADMIN}"}),
    ("GET", "/metrics", {}),
]


def test_every_route_answers_a_json_503_soon_while_the_database_is_away(tmp_path: Path) -> None:
    away = f"postgresql://postgres@/sluice?host={tmp_path}"  # no server listens there
    settings = app_settings(away, database_timeout_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        for method, path, headers in ROUTES:
            body = {"name": "acme"} if path.endswith("projects") else {}
            started = time.monotonic()
            response = client.request(method, path, headers=headers, json=body)
            took = time.monotonic() - started

            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"error": "database unavailable", "retry_after_seconds": 1}
            assert response.headers["retry-after"] == "1"
            assert took < 2.5, f"{path} took {took:.1f} s"


def test_an_unexpected_error_is_a_json_500_without_a_traceback(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("a bug with a secret in its message")

    monkeypatch.setattr(store, "list_flows", broken)
    with app_client(database_url) as client:
        created = client.post(
            "/api/v1/projects", json={"name": "p"}, headers={"authorization": f"Bearer {ADMIN}"}
        )
        key = created.json()["api_key"]
    settings = app_settings(database_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/flows", headers={"authorization": f"Bearer {key}"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    request_id = answer.pop("request_id")
    assert answer == {"error": "internal error; the server log has the details"}
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert request_id in logged.getMessage()
    assert "GET /api/v1/flows" in logged.getMessage()
