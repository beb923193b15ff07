"""Deploying and managing flows over HTTP, scoped to the caller's project."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.flows import parse_flow, store
from ops.smoke.flows import hello
from tests.integration.helpers import connect, create_project
from tests.web.apps import ADMIN, app_client

# The minimal example, as written (also what the smoke test deploys).
HELLO: dict[str, Any] = hello("hello")


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url) as client:
        yield client


def project_key(client: TestClient, name: str) -> dict[str, str]:
    response = client.post(
        "/api/v1/projects", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def test_deploy_creates_numbered_versions_and_skips_identical_ones(client: TestClient) -> None:
    key = project_key(client, "acme")
    first = client.put("/api/v1/flows/hello", json=HELLO, headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    assert first.json()["webhook_url"] == f"http://testserver/webhooks/{first.json()['id']}"
    same = client.put("/api/v1/flows/hello", json=HELLO, headers=key)
    assert same.status_code == 200
    assert (same.json()["version"], same.json()["created"]) == (1, False)
    changed = {**HELLO, "description": "now documented"}
    second = client.put("/api/v1/flows/hello", json=changed, headers=key)
    assert (second.status_code, second.json()["version"]) == (201, 2)
    assert second.json()["id"] == first.json()["id"]
    shown = client.get("/api/v1/flows/hello", headers=key).json()
    assert shown["version"] == 2
    assert shown["definition"]["description"] == "now documented"
    assert shown["definition"]["steps"][1]["body"] == "{{ steps.compute.output }}"


def test_name_may_be_left_to_the_url_but_not_contradict_it(client: TestClient) -> None:
    key = project_key(client, "acme")
    nameless = {k: v for k, v in HELLO.items() if k != "name"}
    assert client.put("/api/v1/flows/greeter", json=nameless, headers=key).status_code == 201
    clash = client.put("/api/v1/flows/other", json=HELLO, headers=key)
    assert clash.status_code == 422
    assert "differs from the URL" in clash.json()["error"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"steps": [{"id": "x", "type": "teleport"}]}, "steps[0]"),
        ({"steps": [{"id": "r", "type": "respond", "status": "200"}]}, "steps[0].status"),
        ({"steps": [{"id": "r", "type": "respond", "colour": "red"}]}, "steps[0].colour"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_definitions_are_refused_with_their_paths(
    client: TestClient, change: dict[str, Any], path: str
) -> None:
    key = project_key(client, "acme")
    response = client.put("/api/v1/flows/hello", json={**HELLO, **change}, headers=key)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid flow definition"
    assert path in {problem["path"] for problem in response.json()["problems"]}


def test_malformed_json_and_non_objects(client: TestClient) -> None:
    key = project_key(client, "acme")
    malformed = client.put(
        "/api/v1/flows/hello", content=b"{", headers={**key, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert client.put("/api/v1/flows/hello", json=[1], headers=key).status_code == 422


def test_flows_are_private_to_their_project(client: TestClient) -> None:
    mine, theirs = project_key(client, "mine"), project_key(client, "theirs")
    client.put("/api/v1/flows/hello", json=HELLO, headers=mine)
    assert client.get("/api/v1/flows/hello", headers=theirs).status_code == 404
    assert client.post("/api/v1/flows/hello/disable", headers=theirs).status_code == 404
    assert client.delete("/api/v1/flows/hello", headers=theirs).status_code == 404
    assert client.get("/api/v1/flows", headers=theirs).json() == {"flows": []}
    assert client.get("/api/v1/flows/hello").status_code == 401


def test_enable_disable_list_and_delete(client: TestClient) -> None:
    key = project_key(client, "acme")
    client.put("/api/v1/flows/hello", json=HELLO, headers=key)
    assert client.post("/api/v1/flows/hello/disable", headers=key).json()["enabled"] is False
    listed = client.get("/api/v1/flows", headers=key).json()["flows"]
    assert [(f["name"], f["enabled"], f["version"]) for f in listed] == [("hello", False, 1)]
    assert client.post("/api/v1/flows/hello/enable", headers=key).json()["enabled"] is True
    assert client.delete("/api/v1/flows/hello", headers=key).status_code == 204
    assert client.get("/api/v1/flows/hello", headers=key).status_code == 404
    assert client.delete("/api/v1/flows/hello", headers=key).status_code == 404
    # The name is free again: a new flow, numbered from 1.
    again = client.put("/api/v1/flows/hello", json=HELLO, headers=key)
    assert (again.status_code, again.json()["version"]) == (201, 1)


async def test_concurrent_deploys_number_versions_without_gaps(database_url: str) -> None:
    async with await connect(database_url) as conn:
        project = await create_project(conn, "racers")

    async def deploy(n: int) -> int:
        definition = parse_flow({**HELLO, "description": f"variant {n}"})
        async with await connect(database_url) as conn:
            return (await store.deploy(conn, project, definition)).version

    versions = await asyncio.gather(*(deploy(n) for n in range(12)))
    assert sorted(versions) == list(range(1, 13))


def _refused(client: TestClient, key: dict[str, str], flow: dict[str, Any]) -> dict[str, str]:
    response = client.put(f"/api/v1/flows/{flow['name']}", json=flow, headers=key)
    assert response.status_code == 422, response.text
    return {p["path"]: p["message"] for p in response.json()["problems"]}


def test_what_deploy_can_know_is_wrong_is_refused_at_deploy(client: TestClient) -> None:
    key = project_key(client, "acme")
    broken_code = {
        "name": "broken",
        "steps": [{"id": "c", "type": "code", "code": "def run(input, ctx):\n    return (1,"}],
    }
    problem = _refused(client, key, broken_code)["steps[0].code"]
    assert problem.startswith("Python syntax error at line 2, column 12:")

    long_loop = {
        "name": "long",
        "steps": [
            {
                "id": "each",
                "type": "loop",
                "items": list(range(1001)),
                "steps": [{"id": "r", "type": "respond", "body": "{{ item }}"}],
            }
        ],
    }
    assert _refused(client, key, long_loop)["steps[0].items"] == (
        "1001 items; a loop takes at most 1000"
    )

    big_body = {"name": "big", "steps": [{"id": "r", "type": "respond", "body": ["x" * 99] * 200}]}
    assert "the limit is 16384" in _refused(client, key, big_body)["steps[0].body"]


def test_a_call_to_a_flow_not_deployed_yet_deploys_with_a_warning(client: TestClient) -> None:
    key = project_key(client, "acme")
    caller = {
        "name": "caller",
        "steps": [
            {"id": "first", "type": "call_flow", "flow": "callee"},
            {"id": "again", "type": "call_flow", "flow": "caller", "wait": False},
        ],
    }
    deployed = client.put("/api/v1/flows/caller", json=caller, headers=key)
    assert deployed.status_code == 201, deployed.text
    assert [w["path"] for w in deployed.json()["warnings"]] == ["steps[0].flow"]
    assert "no flow 'callee'" in deployed.json()["warnings"][0]["message"]

    client.put("/api/v1/flows/callee", json={**HELLO, "name": "callee"}, headers=key)
    again = client.put("/api/v1/flows/caller", json=caller, headers=key)
    assert (again.status_code, again.json()["warnings"]) == (200, [])
