"""Resumes by a project's key holder: ``POST /api/v1/runs/{run_id}/steps/{step_id}/resume``,
and `resume_by_key`, which the console calls too."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse

from app import projects
from app.flows import decisions, waits
from app.web import auth, payloads, replies
from app.web.body import read_limited
from app.web.errors import ApiError
from app.web.run_ref import path_run
from app.web.schemas import Problem, Resumed


async def resume_step(request: Request) -> JSONResponse:
    """Resume a run's waiting `wait_for_webhook` step as the project's key holder; the
    body becomes its output, or, when it is a decision (`choice`, with an optional
    `comment` and `fields`), the decision checked against the step."""
    project_id = await auth.project_id(request)
    run_id = await path_run(request, project_id)
    key = request.path_params["step_id"]
    raw = await read_limited(request)
    body = (await payloads.decode(raw, request.headers, request.state.settings))["body"]
    by = projects.key_prefix(auth.bearer(request))
    await resume_by_key(request.state, project_id, run_id, key, body, by=by)
    return JSONResponse(
        Resumed(run_id=str(run_id), step=key, status="resumed"),
        status_code=202,
        headers={replies.RUN_ID_HEADER: str(run_id)},
    )


async def resume_by_key(
    state: Any,
    project_id: int,
    run_id: UUID,
    key: str,
    body: Any,
    *,
    by: str | None,
) -> Any:
    """Resume step instance `key` of the project's run `run_id` (`request.state` gives the
    pool and the queue); the step's output is returned. `body`: a decision
    (``{"choice", "comment"?, "fields"?}``) or the output itself. Raises `ApiError`: 404
    when the step is not waiting, 409 when it was resumed already or the run has ended,
    400 (with `problems`) when the decision does not fit the step's choices and form."""
    async with state.pool.connection() as conn:
        try:
            output = await waits.resume_step(conn, project_id, run_id, key, body, by=by)
        except waits.NotWaiting as exc:
            raise ApiError(404, str(exc)) from None
        except waits.ResumeRefused as exc:
            raise ApiError(409, str(exc)) from None
        except decisions.DecisionError as exc:
            problems = [Problem(path=p["path"], message=p["message"]) for p in exc.problems]
            raise ApiError(400, "the decision does not fit the step", problems=problems) from None
    state.queue.wake()
    return output
