"""A flow's versions over HTTP: listed with who deployed them, each one's definition, and a
rollback that makes new runs (webhooks) start on an earlier version until the next deploy."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import second_project_client
from tests.flows.stack import Stack


def replying(text: str) -> dict[str, Any]:
    return {"name": "greet", "steps": [{"id": "reply", "type": "respond", "body": text}]}


async def _sync_reply(stack: Stack, flow_id: str) -> tuple[str, int]:
    answer = await stack.trigger(flow_id, sync=True)
    assert answer.status_code == 200, answer.text
    run = await stack.run(answer.headers["x-sluice-run-id"])
    return answer.text, int(run["version"])


async def test_rollback_makes_webhooks_start_the_chosen_version(stack: Stack) -> None:
    first = await stack.deploy(replying("one"))
    await stack.deploy(replying("two"))
    assert await _sync_reply(stack, first["id"]) == ("two", 2)

    rolled = await stack.client.post("/api/v1/flows/greet/rollback", json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 1
    assert rolled.json()["definition"]["steps"][0]["body"] == "one"
    assert await _sync_reply(stack, first["id"]) == ("one", 1)
    listed = (await stack.client.get("/api/v1/flows")).json()["flows"]
    assert [(f["name"], f["version"]) for f in listed] == [("greet", 1)]

    # Deploying what is live changes nothing; deploying anything else is live at once.
    again = await stack.deploy(replying("one"))
    assert (again["version"], again["created"]) == (1, False)
    third = await stack.deploy(replying("three"))
    assert (third["version"], third["created"]) == (3, True)
    assert await _sync_reply(stack, first["id"]) == ("three", 3)

    # Rolling "back" to the newest is the same as a deploy's state; history is untouched.
    await stack.client.post("/api/v1/flows/greet/rollback", json={"version": 2})
    await stack.client.post("/api/v1/flows/greet/rollback", json={"version": 3})
    assert await _sync_reply(stack, first["id"]) == ("three", 3)
    versions = (await stack.client.get("/api/v1/flows/greet/versions")).json()["versions"]
    assert [(v["version"], v["live"]) for v in versions] == [(3, True), (2, False), (1, False)]


async def test_versions_list_who_deployed_what(stack: Stack, database_url: str) -> None:
    await stack.deploy(replying("one"))
    await stack.deploy(replying("two"))
    await stack.deploy(replying("three"))
    prefix = stack.api_key.split("_")[1]
    page = await stack.client.get("/api/v1/flows/greet/versions", params={"limit": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert [v["version"] for v in body["versions"]] == [3, 2]
    assert {v["created_by"] for v in body["versions"]} == {prefix}
    assert len({v["content_hash"] for v in body["versions"]}) == 2
    rest = await stack.client.get(
        "/api/v1/flows/greet/versions", params={"cursor": body["next_cursor"]}
    )
    assert [v["version"] for v in rest.json()["versions"]] == [1]
    assert rest.json()["next_cursor"] is None

    one = await stack.client.get("/api/v1/flows/greet/versions/1")
    assert one.status_code == 200, one.text
    assert one.json()["definition"]["steps"][0]["body"] == "one"
    assert one.json()["live"] is False
    assert one.json()["content_hash"] == rest.json()["versions"][0]["content_hash"]

    for path in ("versions/4", "versions/0", "versions/x", "versions/99999999999"):
        missing = await stack.client.get(f"/api/v1/flows/greet/{path}")
        assert missing.status_code == 404, (path, missing.text)
    assert (await stack.client.get("/api/v1/flows/nosuch/versions")).status_code == 404
    for body_ in ({"version": 4}, {"version": 0}, {"version": "1"}, {}):
        bad = await stack.client.post("/api/v1/flows/greet/rollback", json=body_)
        assert bad.status_code in (404, 422), (body_, bad.text)
    async with await second_project_client(stack, database_url) as other:
        assert (await other.get("/api/v1/flows/greet/versions")).status_code == 404
        rolled = await other.post("/api/v1/flows/greet/rollback", json={"version": 1})
        assert rolled.status_code == 404
