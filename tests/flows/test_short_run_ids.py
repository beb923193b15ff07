"""A unique prefix of a run's id (six hex digits or more) names the run on every
``/api/v1/runs/{run_id}…`` route; an ambiguous one is a 422 listing the candidates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.flows.helpers import second_project_client, started_run
from tests.flows.stack import Stack
from tests.flows.twins import twin_runs

WAITS: dict[str, Any] = {
    "name": "waits",
    "steps": [
        {"id": "ask", "type": "respond", "body": "{{ resume_urls.gate }}"},
        {"id": "gate", "type": "wait_for_webhook"},
    ],
}


async def _waiting_run(stack: Stack) -> str:
    deployed = await stack.deploy(WAITS)
    run_id = await started_run(stack, deployed["id"])
    await stack.wait_for_status(run_id, {"PAUSED"})
    return run_id


async def test_a_unique_prefix_names_the_run_everywhere(stack: Stack) -> None:
    run_id = await _waiting_run(stack)
    for prefix in (run_id[:6], run_id[:8].upper(), run_id[:13], run_id.replace("-", "")[:20]):
        shown = await stack.client.get(f"/api/v1/runs/{prefix}")
        assert shown.status_code == 200, (prefix, shown.text)
        assert shown.json()["id"] == run_id
    resumed = await stack.client.post(
        f"/api/v1/runs/{run_id[:7]}/steps/gate/resume", json={"ok": True}
    )
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["run_id"] == run_id
    await stack.wait_for_status(run_id, {"SUCCEEDED"})

    another = await _waiting_run(stack)
    canceled = await stack.client.post(f"/api/v1/runs/{another[:9]}/cancel")
    assert (canceled.status_code, canceled.json()["id"]) == (200, another)
    retried = await stack.client.post(f"/api/v1/runs/{another[:9]}/retry")
    assert (retried.status_code, retried.json()["id"]) == (202, another)


@pytest.mark.parametrize(
    "short",
    [
        "abc12",  # five digits: too short to be taken as a run
        "abcdefg1",  # not hexadecimal
        "abc-def12",  # a hyphen where a run id has none
        "000000",  # no run has it
    ],
)
async def test_what_names_no_run_is_a_404(stack: Stack, short: str) -> None:
    answer = await stack.client.get(f"/api/v1/runs/{short}")
    assert answer.status_code == 404, answer.text
    assert short in answer.json()["error"]


async def test_an_ambiguous_prefix_lists_its_candidates(stack: Stack, database_url: str) -> None:
    run_id = await _waiting_run(stack)
    twins = twin_runs(database_url, run_id, "abcdef", count=12)
    for path in ("", "/cancel", "/retry", "/steps/gate/resume"):
        method = "GET" if not path else "POST"
        answer = await stack.client.request(method, f"/api/v1/runs/ABCDEF{path}", json={})
        assert answer.status_code == 422, (path, answer.text)
        body = answer.json()
        assert "ambiguous" in body["error"]
        assert "more than 10" in body["error"]
        listed = [each["id"] for each in body["candidates"]]
        assert len(listed) == 10
        assert set(listed) <= set(twins)
        assert {each["flow"] for each in body["candidates"]} == {"waits"}
    # One more digit makes it unique again.
    shown = await stack.client.get(f"/api/v1/runs/{twins[0][:7]}")
    assert (shown.status_code, shown.json()["id"]) == (200, twins[0])
    pair = twin_runs(database_url, run_id, "fedcba", count=2)
    answer = await stack.client.get("/api/v1/runs/fedcba")
    assert "2 runs match" in answer.json()["error"]
    assert sorted(each["id"] for each in answer.json()["candidates"]) == pair


async def test_a_prefix_never_reaches_another_projects_runs(
    stack: Stack, database_url: str
) -> None:
    run_id = await _waiting_run(stack)
    async with await second_project_client(stack, database_url) as other:
        answer = await other.get(f"/api/v1/runs/{run_id[:8]}")
        assert answer.status_code == 404, answer.text
        twin_runs(database_url, run_id, "123456")
        # Both runs with the prefix are the first project's: still none of the second's.
        assert (await other.get("/api/v1/runs/123456")).status_code == 404
