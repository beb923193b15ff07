"""`sluice runs …` against `FakeRuns`: the list, a run's view, cancel and retry, and `runs tail`."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC
from typing import Any

from app.cli.client import Client
from app.cli.output import Console, timestamp
from app.cli.runs import RunWatch, follow, run_view, runs_table
from tests.cli.fake_runs import FakeRuns, run_summary
from tests.cli.helpers import Sluice


def test_runs_list_passes_its_filters_and_shows_a_table(
    fake: FakeRuns, fake_url: str, sluice: Sluice
) -> None:
    fake.runs = [run_summary(1), run_summary(2, "FAILED"), run_summary(3, "RUNNING")]
    ran = sluice("runs", "list", "--flow", "hello", "--status", "failed", "--limit", "5")
    assert ran.code == 0, ran.err
    assert fake.requests[-1][2] == {"flow": "hello", "status": "FAILED", "limit": "5"}
    header, row = ran.out.splitlines()
    assert header.split() == ["RUN", "FLOW", "VERSION", "STATUS", "CREATED", "DURATION", "ERROR"]
    created = timestamp(run_summary(2)["created_at"])
    assert re.split(r"\s{2,}", row) == [
        run_summary(2)["id"],
        "hello",
        "2",
        "FAILED",
        created,
        "1m 00s",
        "ZeroDivisionError: division by zero",
    ]
    everything = json.loads(sluice("runs", "list", "--json").out)
    assert [run["status"] for run in everything["runs"]] == ["RUNNING", "FAILED", "SUCCEEDED"]


def test_runs_list_says_how_to_get_the_next_page(
    fake: FakeRuns, fake_url: str, sluice: Sluice
) -> None:
    fake.runs = [run_summary(n) for n in range(3)]
    ran = sluice("runs", "list", "--limit", "2")
    assert len(ran.out.splitlines()) == 3
    assert ran.err == "more: add --cursor 2\n"
    rest = sluice("runs", "list", "--limit", "2", "--cursor", "2")
    assert (len(rest.out.splitlines()), rest.err) == (2, "")


DETAIL: dict[str, Any] = {
    "trigger": {"body": {"who": "ada"}, "headers": {}, "query": {}},
    "output": {"hello": "ada"},
    "response": {"status": 200, "headers": {}, "body": {"hello": "ada"}},
    "steps": [
        {
            "key": "compute",
            "step_id": "compute",
            "type": "code",
            "status": "SUCCEEDED",
            "attempts": 1,
            "duration_seconds": 0.25,
            "output": {"hello": "ada"},
            "error": None,
            "stdout": "computing\n",
            "stderr": "",
        },
        {
            "key": "each[2].inner",
            "step_id": "inner",
            "type": "code",
            "status": "FAILED",
            "attempts": 3,
            "duration_seconds": 1.5,
            "output": None,
            "error": "Traceback (most recent call last):\nZeroDivisionError: division by zero",
            "stdout": "",
            "stderr": "",
        },
    ],
    "children": [run_summary(9, flow="child")],
}


def test_runs_show_is_a_readable_view_of_steps_and_children(
    fake: FakeRuns, fake_url: str, sluice: Sluice
) -> None:
    run = run_summary(1, "FAILED", parent_run_id=run_summary(5)["id"])
    fake.runs = [run]
    fake.details[run["id"]] = DETAIL
    ran = sluice("runs", "show", run["id"])
    assert ran.code == 0, ran.err
    assert ran.out == run_view_text(run) + "\n"
    assert json.loads(sluice("runs", "show", run["id"], "--json").out)["steps"] == DETAIL["steps"]
    missing = sluice("runs", "show", "nope")
    assert (missing.code, missing.err) == (1, "sluice: no run 'nope'\n")


def run_view_text(run: dict[str, Any]) -> str:
    children = "\n".join("  " + line for line in runs_table(DETAIL["children"]).split("\n"))
    return f"""\
run       {run["id"]}
flow      hello (version 2)
status    FAILED
created   {timestamp(run["created_at"])}
started   {timestamp(run["started_at"])}
finished  {timestamp(run["finished_at"])} (1m 00s)
parent    {run["parent_run_id"]}
error     ZeroDivisionError: division by zero
trigger   {{"who": "ada"}}
response  200 {{"hello": "ada"}}

steps
  STEP           TYPE  STATUS     DURATION  ATTEMPTS
  compute        code  SUCCEEDED  250ms     1
    output  {{"hello": "ada"}}
    stdout  computing
  each[2].inner  code  FAILED     1.5s      3
    error  Traceback (most recent call last):
           ZeroDivisionError: division by zero

output
  {{"hello": "ada"}}

children
{children}"""


def test_runs_show_cuts_long_values_only_in_a_terminal() -> None:
    run = {**run_summary(1), **DETAIL, "output": {"lines": [f"line {n}" for n in range(100)]}}
    assert "more characters (--json shows everything)" in run_view(run, terminal=True)
    assert '"line 99"' in run_view(run, terminal=False, tz=UTC)


def test_cancel_and_retry(fake: FakeRuns, fake_url: str, sluice: Sluice) -> None:
    running, failed = run_summary(1, "RUNNING"), run_summary(2, "FAILED")
    fake.runs = [running, failed]
    canceled = sluice("runs", "cancel", running["id"])
    assert canceled.code == 0, canceled.err
    assert f"{running['id']}  CANCELED   hello v2" in canceled.out
    again = sluice("runs", "cancel", running["id"])
    assert (again.code, again.err) == (1, "sluice: the run has finished\n")
    retried = sluice("runs", "retry", failed["id"], "--json")
    assert (retried.code, json.loads(retried.out)["status"]) == (0, "QUEUED")
    assert fake.requests[-1][:2] == ("POST", f"/api/v1/runs/{failed['id']}/retry")


def test_tail_prints_new_runs_and_status_changes_until_ctrl_c(
    fake: FakeRuns, fake_url: str
) -> None:
    fake.runs = [run_summary(n, "SUCCEEDED") for n in range(12)]
    fake.runs.append(run_summary(12, "RUNNING"))
    printed: list[list[str]] = []
    out, err = io.StringIO(), io.StringIO()

    def events() -> list[str]:
        """`STATUS NN` per line printed (NN: the end of the run's id)."""
        lines = [line.split() for line in out.getvalue().splitlines()]
        out.truncate(0)
        out.seek(0)
        return [f"{words[3]} {words[2][-2:]}" for words in lines]

    steps: list[Callable[[], None]] = [
        lambda: fake.runs.append(run_summary(13, "QUEUED")),
        lambda: fake.runs[-1].update(status="RUNNING"),
        lambda: fake.runs[12].update(run_summary(12, "FAILED")),
        lambda: None,
    ]

    def wait(seconds: float) -> None:
        assert seconds == 0.5
        printed.append(events())
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    with Client(fake_url, api_key="sk_test") as client:
        code = follow(client, Console(out, err), interval=0.5, wait=wait)
    assert code == 0
    assert printed == [
        [*(f"SUCCEEDED {n:02d}" for n in range(3, 12)), "RUNNING 12"],
        ["QUEUED 13"],
        ["RUNNING 13"],
        ["FAILED 12"],
        [],
    ]


def test_tail_follows_a_printed_run_that_left_the_filtered_list(
    fake: FakeRuns, fake_url: str
) -> None:
    fake.runs = [run_summary(1, "RUNNING")]
    with Client(fake_url, api_key="sk_test") as client:
        watch = RunWatch(client, flow=None, status="RUNNING")
        assert [run["status"] for run in watch.poll()] == ["RUNNING"]
        fake.runs[0].update(status="SUCCEEDED")
        assert [run["status"] for run in watch.poll()] == ["SUCCEEDED"]
        assert fake.requests[-1][1] == f"/api/v1/runs/{run_summary(1)['id']}"
        assert watch.poll() == []


def test_tail_reads_every_page_of_a_burst(fake: FakeRuns, fake_url: str) -> None:
    fake.runs = [run_summary(0)]
    with Client(fake_url, api_key="sk_test") as client:
        watch = RunWatch(client, flow=None, status=None)
        watch.PAGE = 4
        assert len(watch.poll()) == 1
        fake.runs += [run_summary(n) for n in range(1, 11)]
        assert [run["id"][-2:] for run in watch.poll()] == [f"{n:02d}" for n in range(1, 11)]


def test_tail_interval_must_be_positive(fake_url: str, sluice: Sluice) -> None:
    ran = sluice("runs", "tail", "--interval", "0")
    assert (ran.code, ran.err) == (2, "sluice: --interval must be more than 0 seconds\n")
