"""`sluice flow …` against the real app, and `sluice trigger` against `FakeRuns`."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.fake_runs import FLOW_ID, FakeRuns, run_summary
from tests.cli.helpers import Sluice, write
from tests.web.test_flows_api import HELLO


def test_deploy_json_and_yaml_files_then_again(
    project_key: str, app_url: str, sluice: Sluice, tmp_path: Path
) -> None:
    hello = write(tmp_path / "hello.yaml", HELLO)
    greeter = write(tmp_path / "greeter.json", {**HELLO, "name": "greeter"})
    ran = sluice("flow", "deploy", hello, greeter)
    assert ran.code == 0, ran.err
    header, *rows = ran.out.splitlines()
    assert header.split() == ["FLOW", "VERSION", "CHANGE", "WEBHOOK"]
    assert [row.split()[:4] for row in rows] == [
        ["hello", "1", "new", "flow"],
        ["greeter", "1", "new", "flow"],
    ]
    assert all(f"{app_url}/webhooks/" in row for row in rows)
    write(tmp_path / "hello.yaml", {**HELLO, "description": "now documented"})
    again = sluice("flow", "deploy", hello, greeter, "--json")
    assert again.code == 0, again.err
    answers = [json.loads(line) for line in again.out.splitlines()]
    assert [(a["name"], a["version"], a["created"]) for a in answers] == [
        ("hello", 2, True),
        ("greeter", 1, False),
    ]


def test_deploy_reads_stdin(
    project_key: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(HELLO)))
    ran = sluice("flow", "deploy", "-")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[1].split()[:2] == ["hello", "1"]


def test_deploy_reports_each_invalid_file_and_deploys_the_rest(
    project_key: str, sluice: Sluice, tmp_path: Path
) -> None:
    bad = {"name": "bad", "steps": [{"id": "r", "type": "respond", "status": "200"}]}
    ran = sluice(
        "flow", "deploy", write(tmp_path / "bad.yaml", bad), write(tmp_path / "ok.yml", HELLO)
    )
    assert ran.code == 1
    assert ran.err.splitlines() == [
        f"sluice: {tmp_path / 'bad.yaml'}: invalid flow definition",
        "  steps[0].status: Input should be a valid integer",
        "sluice: 1 of 2 files not deployed",
    ]
    assert ran.out.splitlines()[1].startswith("hello")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"steps": []}, "the flow definition has no name"),
        ([HELLO], "a flow definition is an object, not an array"),
    ],
)
def test_deploy_refuses_unusable_files_before_deploying_any(
    project_key: str, sluice: Sluice, tmp_path: Path, document: Any, message: str
) -> None:
    good = write(tmp_path / "good.json", HELLO)
    bad = write(tmp_path / "bad.json", document)
    ran = sluice("flow", "deploy", good, bad)
    assert (ran.code, ran.err) == (2, f"sluice: {bad}: {message}\n")
    assert sluice("flow", "list").err == "no flows\n"


def test_list_show_disable_enable_delete(project_key: str, sluice: Sluice, tmp_path: Path) -> None:
    sluice("flow", "deploy", write(tmp_path / "hello.json", HELLO))
    listed = sluice("flow", "list")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines()[1].split()[:3] == ["hello", "yes", "1"]

    shown = sluice("flow", "show", "hello")
    assert shown.code == 0, shown.err
    assert shown.out.startswith("# hello: version 1, enabled, deployed ")
    assert shown.out.splitlines()[2:4] == ["name: hello", "steps:"]
    assert "  code: |-\n    def run(input, ctx):\n" in shown.out, "code is shown as a block"
    as_json = json.loads(sluice("flow", "show", "hello", "--json").out)
    assert as_json["version"] == 1
    assert yaml.safe_load(shown.out) == as_json["definition"]
    # What was written, less what holds its default (`status: 200` of the reply step).
    written = copy.deepcopy(HELLO)
    del written["steps"][1]["status"]
    assert yaml.safe_load(shown.out) == written
    full = sluice("flow", "show", "hello", "--full")
    assert "continue_on_error: false" in full.out
    assert "continue_on_error" not in shown.out
    (tmp_path / "full.yaml").write_text(full.out)
    assert "unchanged" in sluice("flow", "deploy", str(tmp_path / "full.yaml")).out
    (tmp_path / "shown.yaml").write_text(shown.out)
    redeployed = sluice("flow", "deploy", str(tmp_path / "shown.yaml"))
    assert redeployed.out.splitlines()[1].split()[:3] == ["hello", "1", "unchanged"]

    assert sluice("flow", "disable", "hello").out == "hello: disabled\n"
    assert sluice("flow", "list").out.splitlines()[1].split()[1] == "no"
    assert json.loads(sluice("flow", "enable", "hello", "--json").out) == {
        "name": "hello",
        "enabled": True,
    }
    assert sluice("flow", "delete", "hello").out == "hello: deleted\n"
    gone = sluice("flow", "show", "hello")
    assert (gone.code, gone.err) == (1, "sluice: no flow 'hello'\n")


def test_trigger_starts_a_run_with_the_data_given(
    fake: FakeRuns, fake_url: str, sluice: Sluice, tmp_path: Path
) -> None:
    ran = sluice("trigger", "hello", "--data", '{"who": "ada"}')
    assert (ran.code, ran.out) == (0, run_summary(1)["id"] + "\n")
    assert fake.requests[-1][1:] == (f"/webhooks/{FLOW_ID}", {}, {"who": "ada"})
    sluice("trigger", "hello")
    assert fake.requests[-1][3] == {}
    (tmp_path / "data.yaml").write_text("who: grace\n")
    sluice("trigger", "hello", "--data", f"@{tmp_path / 'data.yaml'}")
    assert fake.requests[-1][3] == {"who": "grace"}
    bad = sluice("trigger", "hello", "--data", "{who}")
    assert bad.code == 2
    assert bad.err.startswith("sluice: --data: invalid JSON: Expecting property name")
    missing = sluice("trigger", "missing")
    assert (missing.code, missing.err) == (1, "sluice: no flow 'missing'\n")


def test_trigger_sends_a_key_and_tries_again_with_it_after_a_503(
    fake: FakeRuns, fake_url: str, sluice: Sluice
) -> None:
    ran = sluice("trigger", "flaky")

    assert (ran.code, ran.out) == (0, run_summary(1)["id"] + "\n")
    assert len(fake.keys) == 3
    assert fake.keys[0] is not None
    assert len(set(fake.keys)) == 1, "every try of one trigger carries the same key"
    sluice("trigger", "flaky")
    assert fake.keys[3] != fake.keys[0], "another trigger is another event"


@pytest.mark.parametrize(
    ("flow", "code", "out", "err"),
    [
        ("hello", 0, '{"hello":"world"}\n', ""),
        ("picky", 1, "no thanks\n", "sluice: the flow replied HTTP 418\n"),
        ("broken", 1, "", f"sluice: run {run_summary(1)['id']} ended FAILED: boom\n"),
        (
            "slow",
            0,
            f"{run_summary(1)['id']}\n",
            f"no reply within the server's wait; run {run_summary(1)['id']} goes on"
            f" (see: sluice runs show {run_summary(1)['id']})\n",
        ),
    ],
)
def test_trigger_sync_prints_the_reply(
    fake: FakeRuns, fake_url: str, sluice: Sluice, flow: str, code: int, out: str, err: str
) -> None:
    ran = sluice("trigger", flow, "--sync")
    assert (ran.code, ran.out, ran.err) == (code, out, err)
    assert fake.requests[-1][1] == f"/webhooks/{FLOW_ID}/sync"


def test_trigger_sync_json_prints_even_a_failed_runs_reply(
    fake: FakeRuns, fake_url: str, sluice: Sluice
) -> None:
    ran = sluice("trigger", "broken", "--sync", "--json")
    assert ran.code == 1
    assert json.loads(ran.out)["status"] == "FAILED"


def test_deploy_prints_the_servers_warnings(
    project_key: str, app_url: str, sluice: Sluice, tmp_path: Path
) -> None:
    caller = {"name": "caller", "steps": [{"id": "call", "type": "call_flow", "flow": "later"}]}
    ran = sluice("flow", "deploy", write(tmp_path / "caller.yaml", caller))
    assert ran.code == 0, ran.err
    assert "caller.yaml: warning: steps[0].flow: no flow 'later' in this project (yet)" in ran.err
