"""The `sluice` client commands over real HTTP, in this process.

Flows, projects, API keys and workers run against the real app, served by uvicorn on an
ephemeral port over a fresh database. `runs …` and `trigger` run against `FakeRuns`, a
small app answering the runs and webhook contract with runs the test sets: exact pages,
steps, children and status changes make the formatting and `runs tail` checkable line by
line. The same commands run against a real `sluice serve` in tests/e2e/test_cli_e2e.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.cli import main
from app.cli import runs as cli_runs
from app.cli.client import Client
from app.cli.output import Console, timestamp
from app.web import create_app
from ops.ports import free_port
from tests.web.apps import ADMIN, app_settings
from tests.web.test_flows_api import HELLO


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextlib.contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """`app` served by uvicorn in a thread on an ephemeral port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _Server(uvicorn.Config(app, lifespan="on", log_config=None, ws="none"))

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            server.ready.set()

    thread = threading.Thread(target=run, name="test-server")
    thread.start()
    try:
        if not server.ready.wait(30) or not server.started:
            raise RuntimeError("the test server did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class Ran:
    code: int
    out: str
    err: str


Sluice = Callable[..., Ran]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLUICE_URL", "SLUICE_API_KEY", "SLUICE_ADMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sluice(capsys: pytest.CaptureFixture[str]) -> Sluice:
    """Run `sluice ARGS` in this process: its exit status, stdout and stderr."""

    def run(*args: str) -> Ran:
        code = main(list(args))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@pytest.fixture
def app_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real app; SLUICE_URL and SLUICE_ADMIN_API_KEY point the CLI at it."""
    with serving(create_app(app_settings(database_url))) as url:
        monkeypatch.setenv("SLUICE_URL", url)
        monkeypatch.setenv("SLUICE_ADMIN_API_KEY", ADMIN)
        yield url


@pytest.fixture
def project_key(app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new project's key, also in SLUICE_API_KEY."""
    created = sluice("project", "create", "acme", "--json")
    assert created.code == 0, created.err
    key: str = json.loads(created.out)["api_key"]
    monkeypatch.setenv("SLUICE_API_KEY", key)
    return key


def write(path: Path, document: Any) -> str:
    text = json.dumps(document) if path.suffix == ".json" else yaml.safe_dump(document)
    path.write_text(text)
    return str(path)


# Projects, API keys, workers


def test_project_create_prints_its_key_once_with_a_note(app_url: str, sluice: Sluice) -> None:
    ran = sluice("project", "create", "acme", "--concurrency-limit", "3")
    assert ran.code == 0, ran.err
    pattern = r"project {12}acme\nid {17}\d+\nconcurrency limit  3\napi key {12}sk_[\w-]+\n"
    assert re.fullmatch(pattern, ran.out), ran.out
    assert ran.err == "Store the API key now: it is shown only this once.\n"
    again = sluice("project", "create", "acme")
    assert (again.code, again.err) == (1, "sluice: a project named 'acme' exists\n")


def test_api_key_create_adds_a_working_key(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = json.loads(sluice("project", "create", "acme", "--json").out)["project"]
    ran = sluice("api-key", "create", str(project["id"]), "--name", "ci", "--json")
    assert ran.code == 0, ran.err
    created = json.loads(ran.out)
    assert (created["project_id"], created["name"]) == (project["id"], "ci")
    monkeypatch.setenv("SLUICE_API_KEY", created["api_key"])
    assert sluice("flow", "list").code == 0
    missing = sluice("api-key", "create", "999")
    assert (missing.code, missing.err) == (1, "sluice: no project 999\n")


def test_administration_needs_the_admin_key(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_ADMIN_API_KEY")
    ran = sluice("project", "create", "acme")
    assert (ran.code, ran.err) == (
        2,
        "sluice: no admin API key: set SLUICE_ADMIN_API_KEY or pass --admin-key\n",
    )
    wrong = sluice("project", "create", "acme", "--admin-key", "wrong")
    assert wrong.code == 1
    assert wrong.err == (
        "sluice: invalid admin API key (check SLUICE_ADMIN_API_KEY or --admin-key)\n"
    )


def test_workers_show_when_each_was_last_seen(
    project_key: str, sluice: Sluice, database_url: str
) -> None:
    empty = sluice("workers")
    assert (empty.code, empty.out, empty.err) == (0, "", "no workers\n")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workers (id, host, pid, container_type, slots, version, last_seen)"
            " VALUES ('w-1', 'box', 42, 'WORKER', 8, '0.1.0', now() - interval '2 hours')"
        )
    ran = sluice("workers")
    assert ran.code == 0, ran.err
    header, row = ran.out.splitlines()
    assert header.split() == [
        "WORKER", "HOST", "PID", "TYPE", "SLOTS", "VERSION", "STARTED", "LAST", "SEEN", "STOPPED"
    ]  # fmt: skip
    assert row.startswith("w-1     box   42   WORKER  8      0.1.0")
    assert row.endswith("2h ago     -")
    assert json.loads(sluice("workers", "--json").out)["workers"][0]["id"] == "w-1"


# Flows


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


def test_options_win_over_the_environment(
    project_key: str, app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SLUICE_API_KEY", "sk_wrong")
    ran = sluice("flow", "list", "--url", app_url, "--api-key", project_key, "--json")
    assert (ran.code, json.loads(ran.out)) == (0, {"flows": []})


def test_key_problems_are_explained(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = sluice("flow", "list")
    assert (missing.code, missing.err) == (
        2,
        "sluice: no API key: set SLUICE_API_KEY or pass --api-key\n",
    )
    monkeypatch.setenv("SLUICE_API_KEY", "sk_wrong")
    wrong = sluice("flow", "list")
    assert (wrong.code, wrong.err) == (
        1,
        "sluice: invalid API key (check SLUICE_API_KEY or --api-key)\n",
    )


def test_a_server_that_is_not_running_is_one_line(
    sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SLUICE_API_KEY", "sk_any")
    ran = sluice("flow", "list", "--url", url)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err == (
        f"sluice: cannot reach {url}: connection refused (is `sluice serve` running?)\n"
    )


def test_usage_errors_exit_2(sluice: Sluice, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_API_KEY", "sk_any")
    bad_url = sluice("flow", "list", "--url", "localhost:8000")
    assert (bad_url.code, bad_url.err) == (
        2,
        "sluice: invalid server URL: not an http(s) URL: 'localhost:8000'"
        " (expected http://HOST:PORT)\n",
    )
    with pytest.raises(SystemExit) as exited:
        sluice("runs", "list", "--status", "sleepy")
    assert exited.value.code == 2


# Runs and webhooks, against a fake of their contract


def run_summary(n: int, status: str = "SUCCEEDED", **changes: Any) -> dict[str, Any]:
    finished = status in cli_runs.FINISHED
    return {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "flow": "hello",
        "flow_id": FLOW_ID,
        "version": 2,
        "status": status,
        "parent_run_id": None,
        "created_at": f"2030-01-01T10:00:{n:02d}+00:00",
        "started_at": f"2030-01-01T10:00:{n:02d}+00:00",
        "finished_at": f"2030-01-01T10:01:{n:02d}+00:00" if finished else None,
        "duration_seconds": 60.0 if finished else None,
        "error": "ZeroDivisionError: division by zero" if status == "FAILED" else None,
        **changes,
    }


FLOW_ID = str(uuid.UUID(int=7))


@dataclass
class FakeRuns:
    """The runs and webhook routes of the API contract, over runs a test sets."""

    url: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    named: str = ""
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/flows/{name}", self.flow),
                Route("/api/v1/runs", self.list_runs),
                Route("/api/v1/runs/{id}", self.show),
                Route("/api/v1/runs/{id}/{action}", self.act, methods=["POST"]),
                Route("/webhooks/{id}", self.webhook, methods=["POST"]),
                Route("/webhooks/{id}/sync", self.webhook_sync, methods=["POST"]),
            ]
        )

    async def _seen(self, request: Request) -> JSONResponse | None:
        body = json.loads(await request.body() or b"null")
        self.requests.append((request.method, request.url.path, dict(request.query_params), body))
        if not request.headers.get("authorization", "").startswith("Bearer sk_"):
            return JSONResponse({"error": "invalid API key"}, status_code=401)
        return None

    async def flow(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        name = request.path_params["name"]
        if name == "missing":
            return JSONResponse({"error": "no flow 'missing'"}, status_code=404)
        # Each flow's webhook behaves as its name says (see `webhook_sync`).
        self.named = name
        return JSONResponse({"id": FLOW_ID, "name": name, "webhook_url": f"/webhooks/{FLOW_ID}"})

    async def list_runs(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        query = request.query_params
        found = [
            run
            for run in reversed(self.runs)
            if query.get("status", run["status"]) == run["status"]
            and query.get("flow", run["flow"]) == run["flow"]
        ]
        start = int(query.get("cursor", 0))
        end = start + int(query.get("limit", 50))
        cursor = str(end) if end < len(found) else None
        return JSONResponse({"runs": found[start:end], "next_cursor": cursor})

    async def show(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        run_id = request.path_params["id"]
        for run in self.runs:
            if run["id"] == run_id:
                detail: dict[str, Any] = {
                    "trigger": None,
                    "output": None,
                    "response": None,
                    "steps": [],
                }
                return JSONResponse(
                    {**run, **detail, "children": [], **self.details.get(run_id, {})}
                )
        return JSONResponse({"error": f"no run {run_id!r}"}, status_code=404)

    async def act(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        run = next(r for r in self.runs if r["id"] == request.path_params["id"])
        if request.path_params["action"] == "cancel":
            if run["status"] in cli_runs.FINISHED:
                return JSONResponse({"error": "the run has finished"}, status_code=409)
            run.update(status="CANCELED")
            return JSONResponse(run)
        run.update(status="QUEUED", error=None, finished_at=None, duration_seconds=None)
        return JSONResponse(run, status_code=202)

    async def webhook(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        return JSONResponse({"run_id": run_summary(1)["id"]}, status_code=202)

    async def webhook_sync(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        run_id = run_summary(1)["id"]
        match self.named:
            case "broken":
                body = {"run_id": run_id, "status": "FAILED", "error": "boom"}
                return JSONResponse(body, status_code=500)
            case "slow":
                return JSONResponse({"run_id": run_id}, status_code=202)
            case "picky":
                return PlainTextResponse("no thanks\n", status_code=418)
        return JSONResponse({"hello": "world"}, headers={"x-greeting": "yes"})


@pytest.fixture
def fake() -> Iterator[FakeRuns]:
    fake = FakeRuns()
    with serving(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def fake_url(fake: FakeRuns, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake's URL, also in SLUICE_URL (and a key in SLUICE_API_KEY)."""
    monkeypatch.setenv("SLUICE_URL", fake.url)
    monkeypatch.setenv("SLUICE_API_KEY", "sk_test")
    return fake.url


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
    children = "\n".join(
        "  " + line for line in cli_runs.runs_table(DETAIL["children"]).split("\n")
    )
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
    assert "more characters (--json shows everything)" in cli_runs.run_view(run, terminal=True)
    assert '"line 99"' in cli_runs.run_view(run, terminal=False, tz=UTC)


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
        code = cli_runs.follow(client, Console(out, err), interval=0.5, wait=wait)
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
        watch = cli_runs.RunWatch(client, flow=None, status="RUNNING")
        assert [run["status"] for run in watch.poll()] == ["RUNNING"]
        fake.runs[0].update(status="SUCCEEDED")
        assert [run["status"] for run in watch.poll()] == ["SUCCEEDED"]
        assert fake.requests[-1][1] == f"/api/v1/runs/{run_summary(1)['id']}"
        assert watch.poll() == []


def test_tail_reads_every_page_of_a_burst(fake: FakeRuns, fake_url: str) -> None:
    fake.runs = [run_summary(0)]
    with Client(fake_url, api_key="sk_test") as client:
        watch = cli_runs.RunWatch(client, flow=None, status=None)
        watch.PAGE = 4
        assert len(watch.poll()) == 1
        fake.runs += [run_summary(n) for n in range(1, 11)]
        assert [run["id"][-2:] for run in watch.poll()] == [f"{n:02d}" for n in range(1, 11)]


def test_tail_interval_must_be_positive(fake_url: str, sluice: Sluice) -> None:
    ran = sluice("runs", "tail", "--interval", "0")
    assert (ran.code, ran.err) == (2, "sluice: --interval must be more than 0 seconds\n")
