"""/health and /ready through the real app lifespan."""

from __future__ import annotations

from pydantic import SecretStr
from starlette.testclient import TestClient

from app.settings import Settings
from app.web import create_app


def settings_for(url: str) -> Settings:
    return Settings(database_url=SecretStr(url), pool_min_size=1, pool_max_size=2)


def test_health_and_ready_on_a_migrated_database(database_url: str) -> None:
    with TestClient(create_app(settings_for(database_url))) as client:
        assert client.get("/health").json() == {"status": "ok"}
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_not_ready_until_migrated(scratch_database_url: str) -> None:
    with TestClient(create_app(settings_for(scratch_database_url))) as client:
        response = client.get("/ready")
        assert client.get("/health").status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "schema not at head; run `sluice migrate`"
    assert body["schema"]["current"] is None


def test_not_ready_when_the_database_is_unreachable(tmp_path: object) -> None:
    url = f"postgresql://postgres@/sluice?host={tmp_path}&connect_timeout=1"
    with TestClient(create_app(settings_for(url))) as client:
        assert client.get("/health").status_code == 200
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "error": "database unreachable"}


def test_unknown_route_is_404(database_url: str) -> None:
    with TestClient(create_app(settings_for(database_url))) as client:
        assert client.get("/nope").status_code == 404


def test_the_flow_json_schema_is_published(database_url: str) -> None:
    with TestClient(create_app(settings_for(database_url))) as client:
        response = client.get("/api/v1/flow-schema")
    assert response.status_code == 200
    schema = response.json()
    assert schema["$schema"].startswith("https://json-schema.org/")
    text = response.text
    for step_type in ("code", "http", "branch", "loop", "delay", "wait_for_webhook"):
        assert f'"{step_type}"' in text
