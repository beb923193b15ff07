"""Failure handlers: a run that ends FAILED, TIMEOUT or INTERNAL_ERROR starts one run of its
flow's `on_failure` flow (else the project's), with the failure as its trigger; handlers
never chain, sub-flows' failures are their parent's, a missing handler changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.flows.helpers import code, local_server, started_run
from tests.flows.stack import ADMIN, FINAL, Stack
from tests.integration.helpers import eventually

BOOM = code("boom", "def run(input, ctx):\n    raise ValueError('no luck')")
# The handler keeps what it was given, and says so in its output.
ALERT: dict[str, Any] = {
    "name": "alert",
    "steps": [code("note", "def run(input, ctx):\n    return input['trigger']")],
}


def failing(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "steps": [BOOM], **fields}


async def handler_runs(stack: Stack, flow: str = "alert") -> list[dict[str, Any]]:
    """The handler flow's runs, once each has ended, oldest first."""
    listed = await stack.client.get("/api/v1/runs", params={"flow": flow})
    assert listed.status_code == 200, listed.text
    ids = [run["id"] for run in reversed(listed.json()["runs"])]
    return [await stack.wait_for_status(each) for each in ids]


async def _one_handler_run(stack: Stack, flow: str = "alert") -> dict[str, Any]:
    async def started() -> bool:
        return len(await handler_runs(stack, flow)) >= 1

    await eventually(started)
    [run] = await handler_runs(stack, flow)
    return run


async def test_a_failed_run_starts_its_handler_once_with_the_failure(stack: Stack) -> None:
    await stack.deploy(ALERT)
    flow = await stack.deploy(failing("fragile", on_failure="alert"))
    run_id = await started_run(stack, flow["id"], {"order": 7})
    failed = await stack.wait_for_status(run_id)
    assert failed["status"] == "FAILED"

    handler = await _one_handler_run(stack)
    assert handler["status"] == "SUCCEEDED", handler["error"]
    trigger = handler["output"]
    assert trigger["type"] == "failure"
    body = trigger["body"]
    assert body["run_id"] == run_id
    assert (body["flow"], body["version"], body["status"]) == ("fragile", 1, "FAILED")
    assert body["error"] == failed["error"]
    assert body["failed_step"]["id"] == "boom"
    assert "ValueError: no luck" in body["failed_step"]["error"]
    assert body["console_path"] == f"/console/runs/{run_id}"
    # The failed run itself is as it was: its error, no handler's trace.
    assert (await stack.run(run_id))["error"] == failed["error"]

    # A retry that fails again is another failure: another handler run.
    assert (await stack.client.post(f"/api/v1/runs/{run_id}/retry")).status_code == 202
    await stack.wait_for_status(run_id, {"FAILED"})

    async def two() -> bool:
        return len(await handler_runs(stack)) == 2

    await eventually(two)


async def test_a_timeout_is_handled_and_a_handlers_failure_is_not(stack: Stack) -> None:
    # The handler fails too, and names itself as its handler: still one run of it.
    await stack.deploy(failing("alert", on_failure="alert"))
    spin = code("spin", "def run(input, ctx):\n    while True:\n        pass", timeout_seconds=0.5)
    flow = await stack.deploy({"name": "slow", "steps": [spin], "on_failure": "alert"})
    run_id = await started_run(stack, flow["id"])
    assert (await stack.wait_for_status(run_id))["status"] == "TIMEOUT"
    handler = await _one_handler_run(stack)
    assert handler["status"] == "FAILED"
    assert handler["trigger"]["body"]["status"] == "TIMEOUT"
    # Ended, and it started nothing: still exactly one run of `alert`.
    assert len(await handler_runs(stack)) == 1


async def test_the_projects_handler_unless_the_flow_names_its_own(
    stack: Stack,
) -> None:
    await stack.deploy(ALERT)
    await stack.deploy({**ALERT, "name": "page"})
    admin = {"authorization": f"Bearer {ADMIN}"}
    patched = await stack.client.patch(
        f"/api/v1/projects/{stack.project_id}", json={"on_failure_flow": "page"}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["on_failure_flow"] == "page"
    plain = await stack.deploy(failing("plain"))
    own = await stack.deploy(failing("own", on_failure="alert"))
    await stack.wait_for_status(await started_run(stack, plain["id"]))
    await stack.wait_for_status(await started_run(stack, own["id"]))
    paged = await _one_handler_run(stack, "page")
    alerted = await _one_handler_run(stack, "alert")
    assert paged["output"]["body"]["flow"] == "plain"
    assert alerted["output"]["body"]["flow"] == "own"
    cleared = await stack.client.patch(
        f"/api/v1/projects/{stack.project_id}", json={"on_failure_flow": None}, headers=admin
    )
    assert cleared.json()["on_failure_flow"] is None


async def test_internal_errors_top_level_runs_only_and_missing_handlers(
    stack: Stack, database_url: str
) -> None:
    await stack.deploy(ALERT)
    waits = {"name": "waits", "steps": [{"id": "gate", "type": "wait_for_webhook"}]}
    waiting = await stack.deploy({**waits, "on_failure": "alert"})
    run_id = await started_run(stack, waiting["id"])
    await stack.wait_for_status(run_id, {"PAUSED"})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE flow_runs SET status = 'INTERNAL_ERROR', error = 'lost', finished_at = now()"
            " WHERE id = %s",
            (run_id,),
        )
    handler = await _one_handler_run(stack)
    assert handler["output"]["body"]["status"] == "INTERNAL_ERROR"
    assert handler["output"]["body"]["failed_step"] is None

    # A failing sub-flow: its parent fails, and only the parent's failure is handled.
    await stack.deploy(failing("child", on_failure="alert"))
    parent = await stack.deploy(
        {
            "name": "parent",
            "steps": [{"id": "call", "type": "call_flow", "flow": "child"}],
            "on_failure": "alert",
        }
    )
    parent_id = await started_run(stack, parent["id"])
    assert (await stack.wait_for_status(parent_id))["status"] == "FAILED"

    async def two() -> bool:
        return len(await handler_runs(stack)) == 2

    await eventually(two)
    handled = [run["output"]["body"]["flow"] for run in await handler_runs(stack)]
    assert handled == ["waits", "parent"]

    # A handler that is not there (or disabled): the failure stays as it is.
    lonely = await stack.deploy(failing("lonely", on_failure="nobody"))
    assert lonely["warnings"][0]["path"] == "on_failure"
    assert (await stack.client.post("/api/v1/flows/alert/disable")).status_code == 200
    for flow_id in (lonely["id"], (await stack.deploy(failing("muted", on_failure="alert")))["id"]):
        ended = await stack.wait_for_status(await started_run(stack, flow_id), FINAL)
        assert ended["status"] == "FAILED"
        assert "ValueError: no luck" in ended["error"]
    assert len(await handler_runs(stack)) == 2


def _readme_handler() -> dict[str, Any]:
    """The Slack handler of the README's "Failure handlers" section, as written there."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("### Failure handlers", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in section.split("```yaml\n")[1:] if b.startswith("name: slack-alert")]
    document: dict[str, Any] = yaml.safe_load(block.split("```", 1)[0])
    return document


async def test_the_readme_slack_handler_posts_the_failure(stack: Stack) -> None:
    async with local_server() as slack:
        slack.script("/services/T000/B000/XXXX", (200, "ok"))
        put = await stack.client.put(
            "/api/v1/secrets/SLACK_WEBHOOK_URL",
            json={"value": slack.url("/services/T000/B000/XXXX")},
        )
        assert put.status_code in (200, 201), put.text
        await stack.deploy(_readme_handler())
        flow = await stack.deploy(failing("checkout", on_failure="slack-alert"))
        run_id = await started_run(stack, flow["id"])
        await stack.wait_for_status(run_id)
        handler = await _one_handler_run(stack, "slack-alert")
        assert handler["status"] == "SUCCEEDED", handler["error"]
        [posted] = slack.hits("/services/T000/B000/XXXX")
        text = posted.json()["text"]
        assert text == (
            f"Run {run_id} of checkout ended FAILED: boom failed (/console/runs/{run_id})"
        )
