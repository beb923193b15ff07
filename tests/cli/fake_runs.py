"""`FakeRuns`: a small app answering the runs and webhook routes of the API contract with
the runs a test sets, so that exact pages, steps, children and status changes make the
formatting and `runs tail` checkable line by line.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.cli.runs import FINISHED


def run_summary(n: int, status: str = "SUCCEEDED", **changes: Any) -> dict[str, Any]:
    finished = status in FINISHED
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
    keys: list[str | None] = field(default_factory=list)
    """The Idempotency-Key of each webhook request."""

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
            if run["status"] in FINISHED:
                return JSONResponse({"error": "the run has finished"}, status_code=409)
            run.update(status="CANCELED")
            return JSONResponse(run)
        run.update(status="QUEUED", error=None, finished_at=None, duration_seconds=None)
        return JSONResponse(run, status_code=202)

    async def webhook(self, request: Request) -> Response:
        if refused := await self._seen(request):
            return refused
        self.keys.append(request.headers.get("idempotency-key"))
        if self.named == "flaky" and len(self.keys) <= 2:
            # The database is away: the first two tries are answered 503.
            unavailable = {"error": "database unavailable", "retry_after_seconds": 0}
            return JSONResponse(unavailable, status_code=503, headers={"retry-after": "0"})
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
