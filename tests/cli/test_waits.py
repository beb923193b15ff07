"""`sluice runs show` of a paused run, `sluice runs resume` and `sluice open`, against a
real app and worker (the commands run in a thread: they block, and the app serves in this
test's loop)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.cli.browse import can_open, console_url
from tests.cli.helpers import Ran, Sluice
from tests.flows.helpers import started_run, step
from tests.flows.stack import running_stack

FLOW: dict[str, Any] = {
    "name": "approve-me",
    "steps": [
        {
            "id": "approve",
            "type": "wait_for_webhook",
            "title": "Ship it?",
            "form": [
                {"name": "amount", "type": "number", "required": True},
                {"name": "where", "type": "select", "options": ["eu", "us"]},
            ],
        },
    ],
}


async def test_show_prints_what_a_paused_run_waits_for_and_resume_decides(
    database_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run(*args: str) -> Ran:
        return await asyncio.to_thread(sluice, *args)

    async with running_stack(database_url) as stack:
        monkeypatch.setenv("SLUICE_URL", stack.base_url)
        monkeypatch.setenv("SLUICE_API_KEY", stack.api_key)
        deployed = await stack.deploy(FLOW)
        run_id = await started_run(stack, deployed["id"])
        paused = await stack.wait_for_status(run_id, {"PAUSED"})
        url = paused["waits"][0]["resume_url"]

        shown = await run("runs", "show", run_id)
        assert shown.code == 0, shown.err
        waiting = shown.out.split("waiting for\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert waiting[0].startswith("  approve  webhook  since ")
        assert waiting[1:] == [
            "    asks     Ship it?",
            f"    resume   {url}",
            "    choices  approve, reject",
            "    form     amount (number, required), where (select: eu|us)",
        ]

        lone = await run("runs", "resume", run_id, "approve", "--comment", "hm")
        assert (lone.code, lone.err) == (2, "sluice: --comment goes with --choice\n")
        bad = await run("runs", "resume", run_id, "approve", "--choice", "approve")
        assert bad.code == 1
        assert "the decision does not fit the step" in bad.err
        assert "fields.amount: is required" in bad.err

        done = await run(
            "runs",
            "resume",
            run_id,
            "approve",
            "--choice",
            "approve",
            "--comment",
            "go",
            "--data",
            '{"amount": 3, "where": "eu"}',
        )
        assert done.code == 0, done.err
        assert done.out == f"{run_id}  approve  resumed\n"
        finished = await stack.wait_for_status(run_id)
        assert finished["status"] == "SUCCEEDED"
        output = step(finished, "approve")["output"]
        assert (output["choice"], output["comment"]) == ("approve", "go")
        assert output["fields"] == {"amount": 3, "where": "eu"}
        assert output["by"] == stack.api_key.split("_")[1]

        again = await run("runs", "resume", run_id, "approve", "--data", "{}")
        assert again.code == 1
        assert "has ended" in again.err


def test_open_prints_the_console_url_and_opens_no_browser_without_a_terminal(
    sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def record(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", record)
    monkeypatch.setenv("SLUICE_URL", "http://sluice.example:8000/")
    assert sluice("open").out == "http://sluice.example:8000/console\n"
    run = sluice("open", "0b1f4a2e-0000-4000-8000-000000000001", "--print")
    assert (
        run.out == "http://sluice.example:8000/console/runs/0b1f4a2e-0000-4000-8000-000000000001\n"
    )
    assert json.loads(sluice("open", "--json").out) == {"url": "http://sluice.example:8000/console"}
    assert opened == []  # captured output is no terminal


def test_a_browser_is_opened_only_from_a_terminal_with_a_display() -> None:
    assert can_open(True, {"DISPLAY": ":0"}, "linux")
    assert can_open(True, {}, "darwin")
    assert not can_open(False, {"DISPLAY": ":0"}, "linux")
    assert not can_open(True, {}, "linux")
    assert not can_open(True, {"DISPLAY": ":0", "CI": "true"}, "linux")
    assert console_url("http://h:1/", "a/b") == "http://h:1/console/runs/a%2Fb"
