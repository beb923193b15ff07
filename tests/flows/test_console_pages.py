"""The console's run pages on a running app and worker: steps on the waterfall with their
nesting, outputs and logs with secrets masked, cancel and retry, approving a waiting step."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.flows.helpers import code
from tests.flows.stack import Stack
from tests.web.console_client import csrf_of, sign_in_form

TOKEN = "tok-console-9f8e7d6c5b4a"


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=30, follow_redirects=True
    ) as client:
        form = await client.get("/console/sign-in")
        signed = await client.post("/console/sign-in", data=sign_in_form(stack.api_key, form))
        assert signed.status_code == 200, signed.text
        yield client


async def test_a_run_page_shows_nested_steps_outputs_logs_and_masks_secrets(
    stack: Stack, console: httpx.AsyncClient
) -> None:
    put = await stack.client.put("/api/v1/secrets/API_TOKEN", json={"value": TOKEN})
    assert put.status_code == 201
    flow = await stack.deploy(
        {
            "name": "shown",
            "steps": [
                {
                    "id": "each",
                    "type": "loop",
                    "items": "{{ [1, 2] }}",
                    "steps": [
                        code(
                            "twice",
                            "def run(input, ctx):\n    return input * 2",
                            input="{{ item }}",
                        )
                    ],
                },
                code(
                    "leak",
                    """
                    def run(input, ctx):
                        print("token is", ctx["secrets"]["API_TOKEN"])
                        raise ValueError("boom " + ctx["secrets"]["API_TOKEN"])
                    """,
                    secrets=["API_TOKEN"],
                ),
            ],
        }
    )
    accepted = await stack.client.post(
        f"/webhooks/{flow['id']}", json={"order": 7}, headers={"x-sender": "tests"}
    )
    run_id = accepted.json()["run_id"]
    await stack.wait_for_status(run_id)

    page = await console.get(f"/console/runs/{run_id}")
    text = html.unescape(page.text)
    assert page.status_code == 200
    assert "FAILED" in text
    assert TOKEN not in text
    assert "token is ***" in text
    assert "boom ***" in text
    assert '"order": 7' in text
    assert '"x-sender": "tests"' in text
    steps = text[text.index("<h2>Steps</h2>") :]
    order = [steps.index(f">{key}<") for key in ("each", "each[0].twice", "each[1].twice", "leak")]
    assert order == sorted(order)
    assert 'style="padding-left: 0.0rem"><a href="#detail-1">each<' in text
    assert 'style="padding-left: 1.1rem"><a href="#detail-2">each[0].twice<' in text
    assert "wf-bar" in text
    assert "Retry" in text


async def test_cancel_and_retry_from_the_run_page(stack: Stack, console: httpx.AsyncClient) -> None:
    flow = await stack.deploy(
        {"name": "held", "steps": [{"id": "hold", "type": "wait_for_webhook"}]}
    )
    run_id = (await stack.trigger(flow["id"])).json()["run_id"]
    await stack.wait_for_status(run_id, {"PAUSED"})
    page = await console.get(f"/console/runs/{run_id}")
    assert "Waiting for" in page.text

    canceled = await console.post(f"/console/runs/{run_id}/cancel", data={"csrf": csrf_of(page)})
    assert "The run was canceled." in canceled.text
    assert (await stack.run(run_id))["status"] == "CANCELED"

    retried = await console.post(f"/console/runs/{run_id}/retry", data={"csrf": csrf_of(canceled)})
    assert "The run is queued again." in retried.text
    await stack.wait_for_status(run_id, {"PAUSED"})
    again = await console.post(f"/console/runs/{run_id}/retry", data={"csrf": csrf_of(retried)})
    assert "Only a run that ended unsuccessfully" in again.text


async def test_a_waiting_step_is_approved_from_the_console(
    stack: Stack, console: httpx.AsyncClient
) -> None:
    flow = await stack.deploy(
        {
            "name": "approval",
            "steps": [
                {
                    "id": "approval",
                    "type": "wait_for_webhook",
                    "choices": ["approve", "reject", "escalate"],
                    "form": [{"name": "amount", "type": "number"}],
                },
                code(
                    "decide",
                    "def run(input, ctx):\n    return input",
                    input="{{ steps.approval.output }}",
                ),
            ],
        }
    )
    run_id = (await stack.trigger(flow["id"])).json()["run_id"]
    await stack.wait_for_status(run_id, {"PAUSED"})

    page = await console.get("/console/waiting")
    assert f'data-step="{run_id}/approval"' in page.text
    assert f"/resume/{run_id}/" in page.text
    bad = await console.post(
        f"/console/runs/{run_id}/decide",
        data={"csrf": csrf_of(page), "step": "approval", "choice": "approve", "fields": "{"},
    )
    assert "The fields must be JSON." in bad.text
    assert 'value="escalate"' in page.text  # the step's own choices
    misfit = await console.post(
        f"/console/runs/{run_id}/decide",
        data={"csrf": csrf_of(page), "step": "approval", "choice": "approve", "fields": '{"x": 1}'},
    )
    assert "does not fit the step" in misfit.text
    done = await console.post(
        f"/console/runs/{run_id}/decide",
        data={
            "csrf": csrf_of(page),
            "step": "approval",
            "choice": "approve",
            "comment": "fine by me",
            "fields": '{"amount": 10}',
        },
    )
    assert "Done: the run continues." in done.text
    run = await stack.wait_for_status(run_id)
    assert run["status"] == "SUCCEEDED"
    decision = run["steps"][0]["output"]
    assert decision["choice"] == "approve"
    assert decision["comment"] == "fine by me"
    assert decision["fields"] == {"amount": 10}
    assert decision["by"].startswith("key sk_")
    assert run["output"] == decision or run["steps"][1]["output"] == decision
    twice = await console.post(
        f"/console/runs/{run_id}/decide",
        data={"csrf": csrf_of(page), "step": "approval", "choice": "reject"},
    )
    assert "resumed already" in twice.text
