"""Projects and API keys over HTTP: admin key, project keys, hashing, bad input."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from app import bootstrap
from app.settings import Settings
from app.web import create_app
from tests.web.apps import ADMIN, app_client


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url, max_body_bytes=4096) as client:
        yield client


def admin(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(client: TestClient, name: str = "acme", **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/projects", json={"name": name, **body}, headers=admin())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_admin_creates_a_project_whose_key_sees_it(client: TestClient) -> None:
    created = create(client, "acme", concurrency_limit=3)
    assert created["project"]["name"] == "acme"
    assert created["project"]["concurrency_limit"] == 3
    key = created["api_key"]
    assert key.startswith("sk_")
    response = client.get("/api/v1/project", headers=admin(key))
    assert response.status_code == 200
    assert response.json()["id"] == created["project"]["id"]


def test_keys_are_stored_hashed(client: TestClient, database_url: str) -> None:
    key = create(client)["api_key"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT prefix, key_hash, name FROM api_keys").fetchall()
    ((prefix, stored, _name),) = rows
    assert key.startswith(f"sk_{prefix}_")
    assert key.encode() not in bytes(stored)
    assert key.split("_", 2)[2] not in repr(rows)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Basic abc"}, "missing API key"),
        (admin("wrong"), "invalid admin API key"),
    ],
)
def test_administration_needs_the_admin_key(
    client: TestClient, headers: dict[str, str], message: str
) -> None:
    response = client.post("/api/v1/projects", json={"name": "x"}, headers=headers)
    assert response.status_code == 401
    assert message in response.json()["error"]


def test_a_project_key_is_not_an_admin_key(client: TestClient) -> None:
    key = create(client)["api_key"]
    response = client.post("/api/v1/projects", json={"name": "other"}, headers=admin(key))
    assert response.status_code == 401


@pytest.mark.parametrize("token", ["sk_aaaaaaaaaa_" + "A" * 43, "not-a-key", "sk_short_x", ADMIN])
def test_unknown_or_malformed_project_keys_are_refused(client: TestClient, token: str) -> None:
    create(client)
    response = client.get("/api/v1/project", headers=admin(token))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid API key"}


def test_a_tampered_key_with_a_real_prefix_is_refused(client: TestClient) -> None:
    key = create(client)["api_key"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get("/api/v1/project", headers=admin(tampered)).status_code == 401


def test_more_keys_per_project(client: TestClient) -> None:
    project_id = create(client)["project"]["id"]
    response = client.post(
        f"/api/v1/projects/{project_id}/api-keys", json={"name": "ci"}, headers=admin()
    )
    assert response.status_code == 201
    second = response.json()["api_key"]
    assert client.get("/api/v1/project", headers=admin(second)).json()["id"] == project_id
    missing = client.post("/api/v1/projects/999/api-keys", json={}, headers=admin())
    assert missing.status_code == 404
    assert client.post("/api/v1/projects/x/api-keys", json={}, headers=admin()).status_code == 404


def test_concurrency_limit_is_settable(client: TestClient) -> None:
    project_id = create(client)["project"]["id"]
    url = f"/api/v1/projects/{project_id}"
    response = client.patch(url, json={"concurrency_limit": 5}, headers=admin())
    assert response.json()["concurrency_limit"] == 5
    response = client.patch(url, json={"concurrency_limit": None}, headers=admin())
    assert response.json()["concurrency_limit"] is None
    assert client.patch(url, json={"concurrency_limit": 0}, headers=admin()).status_code == 422


def test_network_is_allowed_by_default_and_the_admin_can_forbid_it(client: TestClient) -> None:
    created = create(client, concurrency_limit=4)
    project_id, key = created["project"]["id"], created["api_key"]
    assert created["project"]["allow_network"] is True
    url = f"/api/v1/projects/{project_id}"
    # A project key may not change its own project.
    assert client.patch(url, json={"allow_network": False}, headers=admin(key)).status_code == 401
    response = client.patch(url, json={"allow_network": False}, headers=admin())
    assert response.status_code == 200, response.text
    assert response.json()["allow_network"] is False
    assert response.json()["concurrency_limit"] == 4  # what is not given stays
    assert client.get("/api/v1/project", headers=admin(key)).json()["allow_network"] is False
    response = client.patch(url, json={"concurrency_limit": 2}, headers=admin())
    assert response.json()["allow_network"] is False
    assert client.patch(url, json={"allow_network": True}, headers=admin()).json()["allow_network"]
    for bad in ({}, {"allow_network": None}, {"allow_network": "no"}):
        assert client.patch(url, json=bad, headers=admin()).status_code == 422, bad


def test_duplicate_project_name_is_a_conflict(client: TestClient) -> None:
    create(client, "acme")
    response = client.post("/api/v1/projects", json={"name": "acme"}, headers=admin())
    assert response.status_code == 409
    assert "acme" in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "request body is empty"),
        (b'{"name": "ok", "surprise": 1}', 422, "invalid request body"),
        (b'{"name": 7}', 422, "invalid request body"),
        (b'{"name": "Bad Name!"}', 422, "invalid request body"),
        (b'{"name": "ok", "concurrency_limit": "many"}', 422, "invalid request body"),
        (b"[1, 2]", 422, "invalid request body"),
        (b'{"name": "' + b"x" * 5000 + b'"}', 413, "request body exceeds 4096 bytes"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(
    client: TestClient, content: bytes, status: int, message: str
) -> None:
    response = client.post(
        "/api/v1/projects",
        content=content,
        headers={**admin(), "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_validation_problems_name_the_field(client: TestClient) -> None:
    response = client.post("/api/v1/projects", json={"name": "ok", "surprise": 1}, headers=admin())
    assert response.json()["problems"] == [
        {"path": "surprise", "message": "Extra inputs are not permitted"}
    ]


def test_workers_are_the_admin_keys_view_and_a_project_key_is_a_403(client: TestClient) -> None:
    key = create(client)["api_key"]
    response = client.get("/api/v1/workers", headers=admin())
    assert response.status_code == 200
    assert response.json() == {"workers": []}
    refused = client.get("/api/v1/workers", headers=admin(key))
    assert refused.status_code == 403
    assert refused.json() == {"error": "this view covers every project: it needs the admin key"}
    assert client.get("/api/v1/workers").status_code == 401
    assert client.get("/api/v1/workers", headers=admin("sk_nope_nope")).status_code == 401


def test_metrics_want_the_metrics_token_when_it_is_set(database_url: str) -> None:
    with app_client(database_url) as open_metrics:
        assert open_metrics.get("/metrics").status_code == 200
    with app_client(database_url, metrics_token=SecretStr("m-token")) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers=admin("not-it"))
        right = client.get("/metrics", headers=admin("m-token"))
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.headers["content-type"] == "application/json"
    assert "SLUICE_METRICS_TOKEN" in missing.json()["error"]


async def test_first_start_creates_one_project_and_prints_its_key_once(
    database_url: str,
) -> None:
    out = io.StringIO()
    assert await bootstrap.ensure_first_project(database_url, out)
    assert not await bootstrap.ensure_first_project(database_url, out)
    printed = out.getvalue()
    assert printed.count("sk_") == 1
    key = next(word for word in printed.split() if word.startswith("sk_"))
    settings = Settings(database_url=SecretStr(database_url), pool_min_size=1, pool_max_size=2)
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/project", headers=admin(key))
        assert response.json()["name"] == "default"
        no_admin = client.post("/api/v1/projects", json={"name": "x"}, headers=admin(key))
        assert "SLUICE_ADMIN_API_KEY" in no_admin.json()["error"]


def test_numbers_past_what_postgres_holds_are_a_4xx(client: TestClient) -> None:
    huge = {"name": "big", "concurrency_limit": 10**30}
    assert client.post("/api/v1/projects", json=huge, headers=admin()).status_code == 422
    for project_id in ("99999999999999999999", "²"):
        path = f"/api/v1/projects/{project_id}"
        changed = client.patch(path, json={"concurrency_limit": 1}, headers=admin())
        assert changed.status_code == 404, changed.text
