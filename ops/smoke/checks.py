"""The smoke test's checks, against a server reached over HTTP only.

Each check returns what it found or raises `Failure` with the reason. Checks that need a
project key or the deployed flow are skipped (and say so) when the step providing it failed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from ops.smoke import flows
from ops.smoke.report import Failure, Report, Skipped

SYNC_WEBHOOKS = 5
RUN_SECONDS = 60.0
"""How long a run may take to end (the delay flow pauses 5 s of it)."""
LIVE = ("QUEUED", "RUNNING", "PAUSED")


@dataclass
class Target:
    """The server under test and what the checks learn about it."""

    client: httpx.AsyncClient
    api_key: str | None = None
    admin_key: str | None = None
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hello_id: str | None = None

    def project_headers(self) -> dict[str, str]:
        if self.api_key is None:
            raise Skipped("no project key (the project step failed)")
        return {"authorization": f"Bearer {self.api_key}"}

    def name(self, flow: str) -> str:
        return f"smoke-{flow}-{self.tag}"


async def run_basic_checks(target: Target, report: Report) -> bool:
    """Run the checks; False when the server does not even answer /health (then no more)."""
    if not await report.step("health", lambda: health(target)):
        report.note("the server does not answer /health; the other checks are left out")
        return False
    await report.step("ready", lambda: ready(target))
    await report.step("project", lambda: project(target))
    await report.step("deploy", lambda: deploy(target))
    await report.step(f"{SYNC_WEBHOOKS} sync webhooks", lambda: sync_webhooks(target))
    await report.step(f"{flows.DELAY_SECONDS:.0f} s delay flow", lambda: delay_flow(target))
    await report.step("wait-for-webhook flow", lambda: wait_for_webhook_flow(target))
    return True


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The JSON body of a response with one of `statuses`; Failure naming what came instead."""
    if response.status_code not in statuses:
        request = response.request
        raise Failure(
            f"{request.method} {request.url.path} answered {response.status_code}, "
            f"expected {' or '.join(map(str, statuses))}: {response.text[:300]}"
        )
    try:
        return response.json()
    except ValueError:
        raise Failure(
            f"{response.request.url.path} answered {response.text[:300]!r}, not JSON"
        ) from None


async def health(target: Target) -> str:
    body = expect(await target.client.get("/health"), 200)
    if body != {"status": "ok"}:
        raise Failure(f"/health answered {body}")
    return "200 {'status': 'ok'}"


async def ready(target: Target) -> str:
    body = expect(await target.client.get("/ready"), 200)
    if body.get("status") != "ready":
        raise Failure(f"/ready answered {body}")
    return f"ready, schema at {body.get('schema', {}).get('current')}"


async def project(target: Target) -> str:
    if target.api_key is not None:
        found = expect(
            await target.client.get("/api/v1/project", headers=target.project_headers()), 200
        )
        return f"the given key is project {found['name']!r}"
    if target.admin_key is None:
        raise Failure("no key: give --api-key or --admin-key")
    name = f"smoke-{target.tag}"
    created = expect(
        await target.client.post(
            "/api/v1/projects",
            json={"name": name},
            headers={"authorization": f"Bearer {target.admin_key}"},
        ),
        201,
    )
    target.api_key = created["api_key"]
    return f"created project {name!r} with the admin key"


async def deploy_flow(target: Target, definition: dict[str, Any]) -> dict[str, Any]:
    deployed: dict[str, Any] = expect(
        await target.client.put(
            f"/api/v1/flows/{definition['name']}",
            json=definition,
            headers=target.project_headers(),
        ),
        201,
        200,
    )
    return deployed


async def deploy(target: Target) -> str:
    deployed = await deploy_flow(target, flows.hello(target.name("hello")))
    target.hello_id = deployed["id"]
    return f"flow {deployed['name']!r} version {deployed['version']}: {deployed['webhook_url']}"


async def sync_webhooks(target: Target) -> str:
    if target.hello_id is None:
        raise Skipped("no flow (the deploy step failed)")
    slowest = 0.0
    for number in range(SYNC_WEBHOOKS):
        who = f"smoke-{number}"
        started = time.perf_counter()
        reply = expect(
            await target.client.post(f"/webhooks/{target.hello_id}/sync", json={"who": who}),
            200,
        )
        slowest = max(slowest, time.perf_counter() - started)
        if reply != {"hello": who}:
            raise Failure(f"reply {number + 1} was {reply}, expected {{'hello': {who!r}}}")
    return f"{SYNC_WEBHOOKS} replies as expected, slowest {1000 * slowest:.0f} ms"


async def delay_flow(target: Target) -> str:
    deployed = await deploy_flow(target, flows.delay(target.name("delay")))
    accepted = expect(await target.client.post(f"/webhooks/{deployed['id']}", json={}), 202)
    run = await final_run(target, accepted["run_id"])
    if run["status"] != "SUCCEEDED":
        raise Failure(f"run {run['id']} ended {run['status']}: {run['error']}")
    took = run["duration_seconds"]
    if took is None or took < flows.DELAY_SECONDS:
        raise Failure(f"run {run['id']} succeeded after {took} s, before its delay was over")
    return f"run {run['id']} SUCCEEDED after {took:.1f} s"


async def wait_for_webhook_flow(target: Target) -> str:
    deployed = await deploy_flow(target, flows.approval(target.name("approval")))
    asked = await target.client.post(f"/webhooks/{deployed['id']}/sync", json={})
    resume_url = expect(asked, 200).get("approve")
    run_id = asked.headers.get("x-sluice-run-id")
    if not isinstance(resume_url, str) or run_id is None or f"/resume/{run_id}/" not in resume_url:
        raise Failure(f"the reply {asked.text[:300]!r} holds no resume URL of run {run_id}")
    approval = {"approved": True, "nonce": secrets.token_hex(8)}
    resumed = expect(await target.client.post(resume_url, json=approval), 202)
    if resumed.get("step") != "approve":
        raise Failure(f"resuming answered {resumed}")
    run = await final_run(target, run_id)
    if run["status"] != "SUCCEEDED":
        raise Failure(f"run {run_id} ended {run['status']}: {run['error']}")
    outputs = {step["step_id"]: step["output"] for step in run["steps"]}
    if outputs.get("approve") != approval:
        raise Failure(f"the wait step's output is {outputs.get('approve')}, not {approval}")
    return f"run {run_id} resumed through its URL and SUCCEEDED with the posted body"


async def final_run(target: Target, run_id: str, within: float = RUN_SECONDS) -> dict[str, Any]:
    """The run once it has ended, read from the database through the API."""
    deadline = time.monotonic() + within
    while True:
        run: dict[str, Any] = expect(
            await target.client.get(f"/api/v1/runs/{run_id}", headers=target.project_headers()),
            200,
        )
        if run["status"] not in LIVE:
            return run
        if time.monotonic() > deadline:
            raise Failure(f"run {run_id} is still {run['status']} after {within:.0f} s")
        await asyncio.sleep(0.1)  # another process runs it: polling is the only way to know


async def settled_runs(target: Target, flow: str, within: float) -> Counter[str]:
    """Statuses of all runs of `flow`, once none of them is queued, running or paused."""
    headers = target.project_headers()
    deadline = time.monotonic() + within
    while True:
        live = 0
        for status in LIVE:
            page = expect(
                await target.client.get(
                    "/api/v1/runs",
                    params={"flow": flow, "status": status, "limit": 1},
                    headers=headers,
                ),
                200,
            )
            live += len(page["runs"])
        if not live:
            break
        if time.monotonic() > deadline:
            raise Failure(f"runs of {flow} were still unfinished after {within:.0f} s")
        await asyncio.sleep(0.25)  # another process runs them: polling is the only way to know
    counts: Counter[str] = Counter()
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"flow": flow, "limit": 200}
        if cursor is not None:
            params["cursor"] = cursor
        page = expect(await target.client.get("/api/v1/runs", params=params, headers=headers), 200)
        counts.update(run["status"] for run in page["runs"])
        cursor = page["next_cursor"]
        if cursor is None:
            return counts
