"""The console: server-rendered pages of the app under ``/console`` (see README, Console)."""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.web.console import flows, health, pages, run, runs, signin, waiting


async def _home(_request: object) -> RedirectResponse:
    return RedirectResponse("/console/runs", status_code=307)


def routes() -> list[BaseRoute]:
    """``GET /`` (to the console) and the ``/console`` mount."""
    pages_ = [
        Route("/", _home, methods=["GET"]),
        Route("/sign-in", signin.sign_in_form, methods=["GET"]),
        Route("/sign-in", signin.sign_in, methods=["POST"]),
        Route("/sign-out", signin.sign_out, methods=["POST"]),
        Route("/project", signin.pick_project, methods=["POST"]),
        Route("/runs", runs.runs_page, methods=["GET"]),
        Route("/runs/rows", runs.runs_rows, methods=["GET"]),
        Route("/runs/{run_id}", run.run_page, methods=["GET"]),
        Route("/runs/{run_id}/cancel", run.cancel_run, methods=["POST"]),
        Route("/runs/{run_id}/retry", run.retry_run, methods=["POST"]),
        Route("/runs/{run_id}/decide", waiting.decide, methods=["POST"]),
        Route("/flows", flows.flows_page, methods=["GET"]),
        Route("/flows/{name}", flows.flow_page, methods=["GET"]),
        Route("/flows/{name}/enabled", flows.switch_flow, methods=["POST"]),
        Route("/waiting", waiting.waiting_page, methods=["GET"]),
        Route("/health", health.health_page, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("app.web.console", "static")]), name="static"),
        Route("/{path:path}", pages.not_found),
    ]
    return [
        Route("/", _home, methods=["GET"]),
        Route("/console", _home, methods=["GET"]),
        Mount("/console", routes=pages_),
    ]
