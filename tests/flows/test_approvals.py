"""Approvals over HTTP: the approval page of a resume URL, its form's decision as the step's
output, bad fields, wrong tokens, decided steps, a key holder's resume and what a paused
run's view says it waits for."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from app.flows import resume
from tests.flows.helpers import code, problem_at, rejected, started_run, step
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import connect, eventually, fetchval

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
REFUND: dict[str, Any] = {
    "name": "refund",
    "steps": [
        code("register", "def run(input, ctx):\n    return ctx['resume_urls']['approve']"),
        {
            "id": "approve",
            "type": "wait_for_webhook",
            "title": "Refund order 1234?",
            "description": "The customer asks for <b>€40</b> back.",
            "choices": ["approve", "reject", "escalate"],
            "form": [
                {"name": "amount", "type": "number", "label": "Amount", "required": True},
                {"name": "reason", "type": "select", "options": ["damaged", "late"]},
                {"name": "notify", "type": "boolean", "label": "Tell the customer"},
                {"name": "note", "type": "text"},
            ],
        },
        code(
            "after",
            "def run(input, ctx):\n    return input['choice']",
            input="{{ steps.approve.output }}",
        ),
    ],
}


async def _paused(stack: Stack, flow: dict[str, Any] = REFUND) -> tuple[str, str]:
    """A run of `flow` paused at its wait: its id and resume URL."""
    deployed = await stack.deploy(flow)
    run_id = await started_run(stack, deployed["id"])
    paused = await stack.wait_for_status(run_id, {"PAUSED"})
    url: str = step(paused, "register")["output"]
    return run_id, url


async def test_the_approval_page_shows_what_the_step_asks_and_its_decision_is_the_output(
    stack: Stack,
) -> None:
    run_id, url = await _paused(stack)
    async with httpx.AsyncClient(timeout=30) as browser:  # no API key: only the link
        page = await browser.get(url, headers=BROWSER)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "script-src" not in page.headers["content-security-policy"]
        html = page.text
        assert "Refund order 1234?" in html
        assert "&lt;b&gt;€40&lt;/b&gt;" in html  # autoescaped
        assert run_id in html
        assert "refund" in html
        for needle in ('value="approve"', 'value="reject"', 'value="escalate"'):
            assert needle in html
        assert 'name="field.amount"' in html
        assert '<option value="damaged">damaged</option>' in html

        decided = await browser.post(
            url,
            headers=BROWSER,
            data={
                "choice": "approve",
                "comment": "fine by me",
                "by": "Ann",
                "field.amount": "40",
                "field.reason": "damaged",
                "field.notify": "on",
            },
        )
        assert decided.status_code == 200, decided.text
        assert "Approve — the run continues" in decided.text

        run = await stack.wait_for_status(run_id)
        assert run["status"] == "SUCCEEDED", run["error"]
        output = step(run, "approve")["output"]
        assert output.pop("at").startswith("20")
        assert output == {
            "choice": "approve",
            "comment": "fine by me",
            "by": "Ann",
            "fields": {"amount": 40, "reason": "damaged", "notify": True, "note": None},
        }
        assert step(run, "after")["output"] == "approve"

        again = await browser.get(url, headers=BROWSER)
        assert again.status_code == 200
        assert "Already decided" in again.text
        assert "Ann" in again.text
        late = await browser.post(url, headers=BROWSER, data={"choice": "reject"})
        assert late.status_code == 409
        assert "Already decided" in late.text


async def test_bad_fields_show_the_page_again_with_each_problem(stack: Stack) -> None:
    run_id, url = await _paused(stack)
    async with httpx.AsyncClient(timeout=30) as browser:
        bad = await browser.post(
            url,
            headers=BROWSER,
            data={"choice": "maybe", "field.amount": "lots", "field.reason": "bored", "by": "Bo"},
        )
        assert bad.status_code == 400
        assert "Please correct the fields" in bad.text
        assert "must be a number" in bad.text
        assert "must be one of the options" in bad.text
        assert "must be one of approve, reject, escalate" in bad.text
        assert 'value="Bo"' in bad.text  # what was typed is kept
        missing = await browser.post(url, headers=BROWSER, data={"choice": "reject"})
        assert missing.status_code == 400
        assert "is required" in missing.text
    assert (await stack.run(run_id))["status"] == "PAUSED"


async def test_a_wrong_token_is_a_404_page_for_browsers_and_json_for_machines(
    stack: Stack,
) -> None:
    _run_id, url = await _paused(stack)
    base, token = url.rsplit("/", 1)
    tampered = f"{base}/{token[:-2]}xx"
    async with httpx.AsyncClient(timeout=30) as browser:
        for wrong in (tampered, f"{base}/not-a-token", url.replace(_run_id, "nope")):
            page = await browser.get(wrong, headers=BROWSER)
            assert page.status_code == 404
            assert "This link does not work" in page.text
            machine = await browser.get(wrong)
            assert machine.status_code == 404
            assert machine.json()["error"].startswith("no such run")
        posted = await browser.post(tampered, headers=BROWSER, data={"choice": "approve"})
        assert posted.status_code == 404
        assert "This link does not work" in posted.text


async def test_a_machines_post_keeps_its_body_as_the_output(stack: Stack) -> None:
    run_id, url = await _paused(stack)
    async with httpx.AsyncClient(timeout=30) as machine:
        form = await machine.post(url, data={"choice": "whatever", "x": "1"})
        assert form.status_code == 202, form.text
        assert form.json() == {"run_id": run_id, "step": "approve", "status": "resumed"}
    run = await stack.wait_for_status(run_id)
    assert step(run, "approve")["output"] == {"choice": "whatever", "x": "1"}
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(url, headers=BROWSER)
    assert page.status_code == 200
    assert "Already resumed" in page.text


async def test_a_key_holder_resumes_a_waiting_step_with_a_decision(stack: Stack) -> None:
    run_id, url = await _paused(stack)
    shown = await stack.run(run_id)
    assert [(w["step"], w["kind"]) for w in shown["waits"]] == [("approve", "webhook")]
    wait = shown["waits"][0]
    assert wait["resume_url"] == url
    assert wait["choices"] == ["approve", "reject", "escalate"]
    assert wait["title"] == "Refund order 1234?"
    assert [f["name"] for f in wait["form"]] == ["amount", "reason", "notify", "note"]

    resume = f"/api/v1/runs/{run_id}/steps/approve/resume"
    bad = await stack.client.post(resume, json={"choice": "approve", "fields": {"amount": "x"}})
    assert bad.status_code == 400
    assert problem_at(bad.json()["problems"], "fields.amount") == "must be a number"
    nowhere = await stack.client.post(f"/api/v1/runs/{run_id}/steps/register/resume", json={})
    assert nowhere.status_code == 404

    done = await stack.client.post(
        resume, json={"choice": "reject", "comment": "no", "fields": {"amount": 1}}
    )
    assert done.status_code == 202, done.text
    assert done.json() == {"run_id": run_id, "step": "approve", "status": "resumed"}
    again = await stack.client.post(resume, json={"choice": "approve", "fields": {"amount": 1}})
    assert again.status_code == 409
    run = await stack.wait_for_status(run_id)
    assert run["status"] == "SUCCEEDED"
    assert run["waits"] == []
    output = step(run, "approve")["output"]
    assert output["choice"] == "reject"
    assert output["comment"] == "no"
    assert output["by"] == stack.api_key.split("_")[1]
    ended = await stack.client.post(resume, json={})
    assert ended.status_code == 409
    assert "has ended" in ended.json()["error"]


async def test_a_key_holders_other_body_is_the_output_as_a_resume_urls_is(stack: Stack) -> None:
    run_id, _url = await _paused(stack)
    resume = f"/api/v1/runs/{run_id}/steps/approve/resume"
    done = await stack.client.post(resume, json={"choice": "approve", "extra": 1})
    assert done.status_code == 202
    run = await stack.wait_for_status(run_id)
    assert step(run, "approve")["output"] == {"choice": "approve", "extra": 1}


async def test_the_run_view_names_delays_and_sub_flows_waited_for(stack: Stack) -> None:
    await stack.deploy(
        {"name": "child", "steps": [{"id": "nap", "type": "delay", "seconds": 3600}]}
    )
    parent = await stack.deploy(
        {"name": "parent", "steps": [{"id": "call", "type": "call_flow", "flow": "child"}]}
    )
    run_id = await started_run(stack, parent["id"])
    paused = await stack.wait_for_status(run_id, {"PAUSED"})
    (called,) = paused["waits"]
    assert called["kind"] == "subflow"
    assert called["resume_url"] is None
    child = await stack.wait_for_status(called["child_run_id"], {"PAUSED"})
    (nap,) = child["waits"]
    assert (nap["step"], nap["kind"]) == ("nap", "delay")
    assert nap["resume_at"] > nap["since"]
    other = await stack.client.post(f"/api/v1/runs/{child['id']}/steps/nap/resume", json={})
    assert other.status_code == 404


async def test_bad_choices_and_forms_are_refused_at_deploy(stack: Stack) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return {"name": "bad", "steps": [{"id": "w", "type": "wait_for_webhook", **fields}]}

    twice = await rejected(stack, flow(choices=["ok", "ok"]))
    assert "distinct" in problem_at(twice, "steps[0].choices")
    upper = await rejected(stack, flow(choices=["OK"]))
    assert "lowercase" in problem_at(upper, "steps[0].choices[0]")
    many = await rejected(stack, flow(choices=[f"c{n}" for n in range(11)]))
    assert "at most 10" in problem_at(many, "steps[0].choices")
    select = await rejected(stack, flow(form=[{"name": "x", "type": "select"}]))
    assert "options" in problem_at(select, "steps[0].form[0]")
    kind = await rejected(stack, flow(form=[{"name": "x", "type": "file"}]))
    assert "steps[0].form[0].type" in [p["path"] for p in kind]
    names = await rejected(stack, flow(form=[{"name": "x"}, {"name": "x"}]))
    assert "distinct" in problem_at(names, "steps[0].form")


async def test_a_decision_made_before_the_run_reaches_the_step_is_kept(
    database_url: str,
) -> None:
    async with running_stack(database_url, with_worker=False) as stack:
        deployed = await stack.deploy(REFUND)
        run_id = await started_run(stack, deployed["id"])  # QUEUED: no worker runs it
        conn = await connect(database_url)
        async with conn:
            secret = await fetchval(
                conn, "SELECT resume_secret FROM flow_runs WHERE id = %s", [run_id]
            )
            url = resume.url(stack.base_url, run_id, bytes(secret), "approve")
            async with httpx.AsyncClient(timeout=30) as browser:
                page = await browser.get(url, headers=BROWSER)
                assert page.status_code == 200
                assert "has not reached this step yet" in page.text
                data = {"choice": "reject", "field.amount": "0"}
                decided = await browser.post(url, headers=BROWSER, data=data)
                assert decided.status_code == 200, decided.text
            cur = await conn.execute(
                "SELECT state, payload FROM waitpoints WHERE run_id = %s", [run_id]
            )
            row = await cur.fetchone()
        assert row is not None
        state, payload = row
        assert state == "completed"
        assert payload["choice"] == "reject"
        assert payload["fields"]["amount"] == 0


async def test_a_wait_in_a_loop_is_resumed_by_its_key(stack: Stack) -> None:
    deployed = await stack.deploy(
        {
            "name": "each",
            "steps": [
                {
                    "id": "each",
                    "type": "loop",
                    "items": ["a", "b"],
                    "steps": [{"id": "approve", "type": "wait_for_webhook", "choices": ["ok"]}],
                }
            ],
        }
    )
    run_id = await started_run(stack, deployed["id"])
    for index in range(2):
        waits: list[dict[str, Any]] = []

        async def waiting(index: int = index) -> bool:
            nonlocal waits
            waits = (await stack.run(run_id))["waits"]
            return [w["step"] for w in waits] == [f"each[{index}].approve"]

        await eventually(waiting, within=30)
        (wait,) = waits
        assert wait["step_id"] == "approve"
        async with httpx.AsyncClient(timeout=30) as browser:
            page = await browser.get(wait["resume_url"], headers=BROWSER)
        assert f"each[{index}].approve" in page.text
        key = quote(wait["step"], safe="")
        resumed = await stack.client.post(
            f"/api/v1/runs/{run_id}/steps/{key}/resume", json={"choice": "ok"}
        )
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["step"] == f"each[{index}].approve"
    run = await stack.wait_for_status(run_id)
    assert run["status"] == "SUCCEEDED"
    assert [s["output"]["choice"] for s in run["steps"] if s["step_id"] == "approve"] == [
        "ok",
        "ok",
    ]
