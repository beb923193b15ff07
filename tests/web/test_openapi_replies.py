"""Every reply that ``GET /openapi.json`` documents is produced by the real app (with a
worker) and validated against the schema the document gives it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from app.web.api import document
from tests.flows.stack import ADMIN, running_stack
from tests.flows.twins import twin_runs
from tests.web.apps import ADMIN as WEB_ADMIN
from tests.web.apps import app_client
from tests.web.openapi_rules import (
    Reply,
    conforms,
    documented_replies,
    operations,
)
from tests.web.test_openapi import HELLO

NOT_DRIVEN: set[Reply] = set()
"""Documented replies that the test below does not produce: none. A reply added to the
document must be produced there, or listed here with the reason."""

NO_KEY = {"authorization": "none"}
ADMIN_KEY = {"authorization": f"Bearer {ADMIN}"}
PROJECT_KEY = {"authorization": "Bearer sk_abcdef_0123456789"}
JSON_TYPE = {"content-type": "application/json"}
TOO_LARGE = json.dumps({"name": "x" * 2000}).encode()  # over max_body_bytes=1024
NOWHERE = "00000000-0000-4000-8000-000000000000"
ANY_PARAMETERS = {
    "project_id": 1,
    "name": "x",
    "flow_id": NOWHERE,
    "project": "tests",
    "flow": "x",
    "run_id": NOWHERE,
    "token": "t",
    "step_id": "answer",
    "prefix": "abcdefghij",
    "version": 1,
}
BROWSER = {"accept": "text/html"}
# GitHub's documented test vector (docs.github.com, "Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def hooks(ids: dict[str, str], project: str = "tests") -> list[tuple[str, Any]]:
    """Each webhook URL style, and how it names a flow: by id, and by names (stable)."""
    return [
        ("/webhooks/{flow_id}", lambda name: {"flow_id": ids.get(name, NOWHERE)}),
        ("/webhooks/{project}/{flow}", lambda name: {"project": project, "flow": name}),
    ]


FAILING = {"id": "broken", "type": "respond", "body": "{{ 1 // trigger.body.zero }}"}


def responding(name: str, status: int, body: Any) -> dict[str, Any]:
    reply = {"id": "reply", "type": "respond", "status": status, "body": body}
    return {"name": name, "steps": [reply]}


def asking(name: str, *after: dict[str, Any]) -> dict[str, Any]:
    """Replies with its resume URL (as text), then waits for it, then runs `after`."""
    ask = {"id": "ask", "type": "respond", "body": "{{ resume_urls.answer }}"}
    return {"name": name, "steps": [ask, {"id": "answer", "type": "wait_for_webhook"}, *after]}


FLOWS = [
    responding("json", 200, {"hello": "{{ trigger.body.who }}"}),
    responding("created", 201, {"created": True}),
    responding("created-text", 201, "created"),
    {"name": "fails", "steps": [FAILING]},
    {"name": "signed", "trigger": {"secret": "s3cret"}, "steps": [FAILING]},
    {
        "name": "github",
        "trigger": {"verify": "github", "secret": GITHUB_SECRET},
        "steps": [FAILING],
    },
    {
        "name": "parent",
        "steps": [{"id": "child", "type": "call_flow", "flow": "json", "input": {"who": "parent"}}],
    },
    asking("asks"),
    asking("asks-text", {"id": "thanks", "type": "respond", "body": "thanks"}),
    asking("asks-created", {"id": "thanks", "type": "respond", "status": 201, "body": {}}),
    asking("asks-created-text", {"id": "thanks", "type": "respond", "status": 201, "body": "."}),
    asking("asks-fails", FAILING),
]


@dataclass
class Caller:
    """Calls documented operations, checks every answer against the document and notes
    which documented reply it was."""

    doc: dict[str, Any]
    client: httpx.AsyncClient
    driven: set[Reply]

    async def send(
        self, method: str, path: str, at: Mapping[str, object] | None = None, **kw: Any
    ) -> httpx.Response:
        response = await self.client.request(method.upper(), path.format(**(at or {})), **kw)
        self.driven.add(conforms(self.doc, path, method, response))
        return response

    async def call(
        self, method: str, path: str, at: Mapping[str, object] | None = None, **kw: Any
    ) -> int:
        response = await self.send(method, path, at, **kw)
        return response.status_code

    async def asked(self, flow_id: str) -> dict[str, str]:
        """A new run of an `asking` flow: the parameters of its resume URL."""
        asked = await self.send("post", "/webhooks/{flow_id}/sync", {"flow_id": flow_id})
        assert asked.status_code == 200, asked.text
        run_id, token = asked.text.rsplit("/", 2)[-2:]
        return {"run_id": run_id, "token": token}


async def test_every_documented_reply_is_a_real_reply_of_its_route(
    database_url: str, scratch_database_url: str, tmp_path: Path
) -> None:
    doc = document()
    driven: set[Reply] = set()
    # Not ready: a database without the schema, and none at all.
    unreachable = f"postgresql://postgres@/sluice?host={tmp_path}&connect_timeout=1"
    for not_ready in (scratch_database_url, unreachable):
        with app_client(not_ready) as client:
            driven.add(conforms(doc, "/ready", "get", client.get("/ready")))
    # The database away: every operation that needs it answers 503.
    with app_client(unreachable, database_timeout_seconds=0.2) as client:
        for path, method, operation in operations(doc):
            if "503" not in operation["responses"] or path == "/ready":
                continue
            admin = {"authorization": f"Bearer {WEB_ADMIN}"}
            key = (
                admin if path.startswith(("/api/v1/projects", "/api/v1/api-keys")) else PROJECT_KEY
            )
            body: dict[str, Any] = {}
            if method == "post" and path.endswith("projects"):
                body = {"name": "acme"}
            elif path == "/api/v1/projects/{project_id}":
                body = {"concurrency_limit": 1}
            answer = client.request(
                method.upper(), path.format(**ANY_PARAMETERS), headers=key, json=body
            )
            assert answer.status_code == 503, (method, path, answer.text)
            driven.add(conforms(doc, path, method, answer))

    async with running_stack(database_url, max_body_bytes=1024) as stack:
        api = Caller(doc, stack.client, driven)
        for path in ("/health", "/ready", "/metrics", "/openapi.json", "/api/v1/flow-schema"):
            assert await api.call("get", path) == 200
        for path, method, operation in operations(doc):
            if operation["security"]:
                assert await api.call(method, path, ANY_PARAMETERS, headers=NO_KEY) == 401
        await _drive_projects(api)
        await _drive_flows(api)
        await _drive_secrets(api)
        ids = {flow["name"]: (await stack.deploy(flow))["id"] for flow in FLOWS}
        waiting = await _drive_webhooks(api, ids)
        await _drive_approvals(api, ids)
        await _drive_runs(api, ids, database_url)

    # Slow bodies are a 408 (SLUICE_HTTP_BODY_TIMEOUT_SECONDS); /metrics wants its token.
    async with running_stack(
        database_url,
        with_worker=False,
        project="slow",
        http_body_timeout_seconds=0.3,
        metrics_token=SecretStr("metrics-token"),
        secrets_key=None,
    ) as stack:
        api = Caller(doc, stack.client, driven)
        await _drive_slow_bodies(api, ids, waiting)
        assert await api.call("get", "/metrics") == 401
        # No SLUICE_SECRETS_KEY with an external database: secrets cannot be stored.
        secret = {"name": "TOKEN"}
        assert (
            await api.call("put", "/api/v1/secrets/{name}", secret, json={"value": "abcd"}) == 503
        )
        token = {"authorization": "Bearer metrics-token"}
        assert await api.call("get", "/metrics", headers=token) == 200

    # No worker and a short sync timeout: a sync caller's run cannot reply, so it gets 202.
    async with running_stack(
        database_url, with_worker=False, project="later", sync_timeout_seconds=0.2
    ) as stack:
        api = Caller(doc, stack.client, driven)
        for base, at in hooks(ids):
            assert await api.call("post", base + "/sync", at("json")) == 202
        assert await api.call("post", "/resume/{run_id}/{token}/sync", waiting) == 202

    # A project at its cap on live runs (no worker ends them): 429.
    async with running_stack(
        database_url, with_worker=False, project="capped", max_live_runs=1
    ) as stack:
        api = Caller(doc, stack.client, driven)
        capped = {"capped": (await stack.deploy(responding("capped", 200, {})))["id"]}
        ended = await api.send("post", "/webhooks/{flow_id}", {"flow_id": capped["capped"]})
        ended_at = {"run_id": ended.json()["run_id"]}
        assert await api.call("post", "/api/v1/runs/{run_id}/cancel", ended_at) == 200
        for base, at in hooks(capped, "capped"):
            for path in (base, base + "/sync"):
                assert await api.call("post", base, at("capped")) in (202, 429)
                assert await api.call("post", path, at("capped")) == 429
        assert await api.call("post", "/api/v1/runs/{run_id}/replay", ended_at) == 429

    assert driven & NOT_DRIVEN == set()
    assert sorted(documented_replies(doc) - NOT_DRIVEN - driven) == []


async def _drive_projects(api: Caller) -> None:
    projects, keys = "/api/v1/projects", "/api/v1/projects/{project_id}/api-keys"
    project = "/api/v1/projects/{project_id}"
    created = await api.send("post", projects, json={"name": "acme"}, headers=ADMIN_KEY)
    assert created.status_code == 201
    at = {"project_id": created.json()["project"]["id"]}
    assert await api.call("post", projects, json={"name": "acme"}, headers=ADMIN_KEY) == 409
    assert await api.call("post", keys, at, json={"name": "ci"}, headers=ADMIN_KEY) == 201
    limit = {"concurrency_limit": 3}
    assert await api.call("patch", project, at, json=limit, headers=ADMIN_KEY) == 200
    for method, path in (("post", projects), ("post", keys), ("patch", project)):
        assert await api.call(method, path, at, json={"nom": 1}, headers=ADMIN_KEY) == 422
        assert await api.call(method, path, at, content=b"{", headers=ADMIN_KEY) == 400
        assert await api.call(method, path, at, content=TOO_LARGE, headers=ADMIN_KEY) == 413
    nowhere = {"project_id": 999_999}
    assert await api.call("post", keys, nowhere, json={}, headers=ADMIN_KEY) == 404
    assert await api.call("patch", project, nowhere, json=limit, headers=ADMIN_KEY) == 404
    assert await api.call("get", projects, params={"limit": 1}, headers=ADMIN_KEY) == 200
    assert await api.call("get", projects, params={"cursor": "x"}, headers=ADMIN_KEY) == 422
    listed = await api.send("get", keys, {"project_id": "acme"}, headers=ADMIN_KEY)
    assert listed.status_code == 200
    assert await api.call("get", keys, nowhere, headers=ADMIN_KEY) == 404
    assert await api.call("get", keys, at, params={"limit": 0}, headers=ADMIN_KEY) == 422
    revoke = "/api/v1/api-keys/{prefix}/revoke"
    prefix = {"prefix": listed.json()["api_keys"][0]["prefix"]}
    assert await api.call("post", revoke, prefix, headers=ADMIN_KEY) == 200
    assert await api.call("post", revoke, {"prefix": "nosuchkey0"}, headers=ADMIN_KEY) == 404
    assert await api.call("get", "/api/v1/project") == 200
    assert await api.call("get", "/api/v1/workers", headers=ADMIN_KEY) == 200
    assert await api.call("get", "/api/v1/workers") == 403


async def _drive_slow_bodies(api: Caller, ids: dict[str, str], waiting: dict[str, str]) -> None:
    """Each operation with a body, sent one byte of a 100-byte body (over raw sockets: an
    HTTP client would fail on the connection that the 408 closes)."""
    calls: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("post", "/api/v1/projects", {}, ADMIN),
        ("post", "/api/v1/projects/{project_id}/api-keys", {"project_id": 1}, ADMIN),
        ("patch", "/api/v1/projects/{project_id}", {"project_id": 1}, ADMIN),
        ("put", "/api/v1/flows/{name}", {"name": "slow"}, None),
        ("post", "/api/v1/flows/{name}/rollback", {"name": "slow"}, None),
        ("put", "/api/v1/secrets/{name}", {"name": "SLOW"}, None),
        ("put", "/api/v1/vars/{name}", {"name": "SLOW"}, None),
        ("post", "/webhooks/{flow_id}", {"flow_id": ids["json"]}, None),
        ("post", "/webhooks/{flow_id}/sync", {"flow_id": ids["json"]}, None),
        ("post", "/webhooks/{project}/{flow}", {"project": "tests", "flow": "json"}, None),
        ("post", "/webhooks/{project}/{flow}/sync", {"project": "tests", "flow": "json"}, None),
        ("post", "/resume/{run_id}/{token}", waiting, None),
        ("post", "/resume/{run_id}/{token}/sync", waiting, None),
        ("post", KEY_RESUME, {"run_id": waiting["run_id"], "step_id": "answer"}, None),
        ("post", "/api/v1/runs/{run_id}/retry", {"run_id": NOWHERE}, None),
        ("post", "/api/v1/runs/{run_id}/replay", {"run_id": NOWHERE}, None),
        ("post", "/api/v1/runs/retry", {}, None),
    ]
    url = httpx.URL(str(api.client.base_url))
    project_key = api.client.headers["authorization"]

    async def slow(method: str, path: str, at: dict[str, Any], key: str | None) -> httpx.Response:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        auth = f"Bearer {key}" if key is not None else project_key
        writer.write(
            f"{method.upper()} {path.format(**at)} HTTP/1.1\r\nhost: x\r\n"
            f"authorization: {auth}\r\ncontent-type: application/json\r\n"
            "content-length: 100\r\n\r\n{".encode()
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, content = answer.partition(b"\r\n\r\n")
        status, *lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        response = httpx.Response(int(status.split()[1]), headers=headers, content=content)
        api.driven.add(conforms(api.doc, path, method, response))
        return response

    answers = await asyncio.gather(*(slow(*call) for call in calls))
    assert [answer.status_code for answer in answers] == [408] * len(calls)


async def _drive_flows(api: Caller) -> None:
    flow, hello, nothing = "/api/v1/flows/{name}", {"name": "hello"}, {"name": "nothing"}
    assert await api.call("put", flow, hello, json=HELLO) == 201
    assert await api.call("put", flow, hello, json=HELLO) == 200
    assert await api.call("put", flow, {"name": "bad"}, json={"steps": []}) == 422
    assert await api.call("put", flow, hello, content=b"{") == 400
    assert await api.call("put", flow, hello, content=TOO_LARGE) == 413
    assert await api.call("get", "/api/v1/flows") == 200
    assert await api.call("get", flow, hello) == 200
    assert await api.call("get", flow, hello, params={"defaults": "false"}) == 200
    assert await api.call("get", flow, hello, params={"defaults": "maybe"}) == 422
    versions, rollback = flow + "/versions", flow + "/rollback"
    assert await api.call("get", versions, hello) == 200
    assert await api.call("get", versions, hello, params={"limit": 0}) == 422
    assert await api.call("get", versions, nothing) == 404
    assert await api.call("get", versions + "/{version}", {**hello, "version": 1}) == 200
    assert await api.call("get", versions + "/{version}", {**hello, "version": 9}) == 404
    assert await api.call("post", rollback, hello, json={"version": 1}) == 200
    assert await api.call("post", rollback, hello, json={"version": 9}) == 404
    assert await api.call("post", rollback, hello, json={"version": "1"}) == 422
    assert await api.call("post", rollback, hello, content=b"{", headers=JSON_TYPE) == 400
    assert await api.call("post", rollback, hello, content=TOO_LARGE) == 413
    ticking = {
        **{k: v for k, v in HELLO.items() if k != "name"},
        "trigger": [{"type": "webhook"}, {"type": "schedule", "cron": "0 9 * * 1-5"}],
    }
    assert await api.call("put", flow, {"name": "ticking"}, json=ticking) == 201
    assert await api.call("get", flow, {"name": "ticking"}) == 200
    assert await api.call("get", "/api/v1/schedules") == 200
    assert await api.call("post", flow + "/disable", hello) == 200
    assert await api.call("post", flow + "/enable", hello) == 200
    assert await api.call("delete", flow, hello) == 204
    for method, path in [("get", flow), ("delete", flow), ("post", flow + "/enable")]:
        assert await api.call(method, path, nothing) == 404
    assert await api.call("post", flow + "/disable", nothing) == 404


async def _drive_secrets(api: Caller) -> None:
    for kind, value in (("secrets", "s3cret-value"), ("vars", "plain")):
        one, named, bad = f"/api/v1/{kind}/{{name}}", {"name": "TOKEN"}, {"name": "9-bad"}
        assert await api.call("put", one, named, json={"value": value}) == 201
        assert await api.call("put", one, named, json={"value": value}) == 200
        assert await api.call("put", one, named, json={"nom": 1}) == 422
        assert await api.call("put", one, named, content=b"{") == 400
        assert await api.call("put", one, named, content=TOO_LARGE) == 413
        assert await api.call("get", f"/api/v1/{kind}") == 200
        if kind == "vars":
            assert await api.call("get", one, named) == 200
            assert await api.call("get", one, bad) == 422
            assert await api.call("get", one, {"name": "NOSUCH"}) == 404
        assert await api.call("delete", one, named) == 204
        assert await api.call("delete", one, named) == 404
        assert await api.call("delete", one, bad) == 422


async def _drive_webhooks(api: Caller, ids: dict[str, str]) -> dict[str, str]:
    """Every webhook and resume reply a worker makes; a run left waiting (for a resume
    that no worker will continue)."""
    ping = {"x-github-event": "ping", "x-hub-signature-256": GITHUB_SIGNATURE}
    for base, at in hooks(ids):
        for path in (base, base + "/sync"):
            assert await api.call("post", path, at("nowhere"), json={}) == 404
            assert await api.call("post", path, at("signed"), json={}) == 401
            bad = await api.call("post", path, at("json"), content=b"{", headers=JSON_TYPE)
            assert bad == 400
            assert await api.call("post", path, at("json"), content=TOO_LARGE) == 413
            handshake = await api.send(
                "post", path, at("github"), content=GITHUB_PAYLOAD, headers=ping
            )
            assert handshake.status_code == 200, handshake.text
        replied = await api.send("post", base + "/sync", at("json"), json={"who": "you"})
        assert replied.json() == {"hello": "you"}
        assert await api.call("post", base, at("json"), json={"who": 1}) == 202
        for name, status in [("created", 201), ("created-text", 201), ("fails", 500)]:
            assert await api.call("post", base + "/sync", at(name)) == status
        assert await api.call("post", base + "/sync", at("asks")) == 200  # text: a resume URL

    resume, resume_sync = "/resume/{run_id}/{token}", "/resume/{run_id}/{token}/sync"
    resumed = await api.asked(ids["asks"])
    assert await api.call("post", resume, resumed, json={"ok": True}) == 202
    for path in (resume, resume_sync):
        assert await api.call("post", path, {**resumed, "token": "wrong"}) == 404
        assert await api.call("post", path, resumed, json={}) == 409
        assert await api.call("post", path, resumed, content=b"{", headers=JSON_TYPE) == 400
        assert await api.call("post", path, resumed, content=TOO_LARGE) == 413
    output = await api.send("post", resume_sync, await api.asked(ids["asks"]), json=[1])
    assert output.json() == [1]
    for name, status in [
        ("asks-text", 200),
        ("asks-created", 201),
        ("asks-created-text", 201),
        ("asks-fails", 500),
    ]:
        assert await api.call("post", resume_sync, await api.asked(ids[name])) == status
    return await api.asked(ids["asks"])


KEY_RESUME = "/api/v1/runs/{run_id}/steps/{step_id}/resume"


async def _drive_approvals(api: Caller, ids: dict[str, str]) -> None:
    """Approval pages (HTML for a browser, JSON otherwise) and a key holder's resume."""
    page = "/resume/{run_id}/{token}"
    asked = await api.asked(ids["asks"])
    wrong = {**asked, "token": "wrong"}
    assert await api.call("get", page, asked, headers=BROWSER) == 200
    assert await api.call("get", page, wrong, headers=BROWSER) == 404
    assert await api.call("get", page, wrong) == 404
    form = {"headers": BROWSER, "data": {"choice": "maybe"}}
    assert await api.call("post", page, wrong, **form) == 404
    assert await api.call("post", page, asked, **form) == 400
    form["data"] = {"choice": "approve"}
    assert await api.call("post", page, asked, **form) == 200
    assert await api.call("post", page, asked, **form) == 409
    assert await api.call("get", page, asked, headers=BROWSER) == 200  # decided

    at = {"run_id": (await api.asked(ids["asks"]))["run_id"], "step_id": "answer"}
    assert await api.call("post", KEY_RESUME, at, json={"choice": "maybe"}) == 400
    assert await api.call("post", KEY_RESUME, at, content=b"{", headers=JSON_TYPE) == 400
    assert await api.call("post", KEY_RESUME, at, content=TOO_LARGE) == 413
    assert await api.call("post", KEY_RESUME, {**at, "step_id": "ask"}, json={}) == 404
    assert await api.call("post", KEY_RESUME, {**at, "run_id": NOWHERE}, json={}) == 404
    assert await api.call("post", KEY_RESUME, at, json={"choice": "reject"}) == 202
    assert await api.call("post", KEY_RESUME, at, json={}) == 409


async def _drive_runs(api: Caller, ids: dict[str, str], database_url: str) -> None:
    runs, run = "/api/v1/runs", "/api/v1/runs/{run_id}"
    parent = await api.send("post", "/webhooks/{flow_id}/sync", {"flow_id": ids["parent"]})
    assert parent.status_code == 200, parent.text
    shown = await api.send("get", run, {"run_id": parent.headers["x-sluice-run-id"]})
    assert [child["flow"] for child in shown.json()["children"]] == ["json"]
    page = await api.send("get", runs, params={"flow": "json", "limit": 1})
    assert page.json()["next_cursor"] is not None
    assert await api.call("get", runs, params={"status": "nope"}) == 422
    live = await api.asked(ids["asks"])
    assert await api.call("post", run + "/cancel", live) == 200
    assert await api.call("post", run + "/cancel", live) == 409
    assert await api.call("post", run + "/retry", live) == 202
    assert await api.call("post", run + "/retry", live) == 409
    await _drive_replays(api, ids, live)
    for method, path in [("get", run), ("post", run + "/cancel"), ("post", run + "/retry")]:
        assert await api.call(method, path, {"run_id": NOWHERE}) == 404
    # A short id that two runs' ids start with.
    twin_runs(database_url, live["run_id"], "abcdef")
    for method, path in [
        ("get", run),
        ("post", run + "/cancel"),
        ("post", run + "/retry"),
        ("post", run + "/replay"),
    ]:
        assert await api.call(method, path, {"run_id": "abcdef"}) == 422
    short = {"run_id": "abcdef", "step_id": "answer"}
    assert await api.call("post", KEY_RESUME, short, json={}) == 422


async def _drive_replays(api: Caller, ids: dict[str, str], live: dict[str, str]) -> None:
    """Retry with a body, replay, and bulk retry: bad bodies, unknown steps and flows."""
    runs, run = "/api/v1/runs", "/api/v1/runs/{run_id}"
    failed = await api.send("post", "/webhooks/{flow_id}/sync", {"flow_id": ids["fails"]})
    at = {"run_id": failed.headers["x-sluice-run-id"]}
    for path in (run + "/retry", run + "/replay", runs + "/retry"):
        assert await api.call("post", path, at, json={"version": "newest"}) == 422
        assert await api.call("post", path, at, content=b"{", headers=JSON_TYPE) == 400
        assert await api.call("post", path, at, content=TOO_LARGE) == 413
    assert await api.call("post", run + "/retry", at, json={"from_step": "nosuch"}) == 422
    assert await api.call("post", run + "/replay", at, json={"data": {"zero": 1}}) == 202
    assert await api.call("post", run + "/replay", live) == 409
    assert await api.call("post", run + "/replay", {"run_id": NOWHERE}) == 404
    assert await api.call("post", runs + "/retry", json={"flow": "fails", "dry_run": True}) == 200
    assert await api.call("post", runs + "/retry", json={"flow": "nosuch"}) == 422
    assert await api.call("post", runs + "/retry", json={"since": -4e16}) == 422
    assert await api.call("post", runs + "/retry", json={"until": 1e300}) == 422
    assert await api.call("post", runs + "/retry", json={"flow": "fails"}) == 202
