"""The run a path's ``{run_id}`` names: a whole id, or a unique prefix of one (at least six
hex digits, as git and docker take them), within the caller's project.

Invariant: a short id never reaches another project's runs; it is resolved with the
caller's project id, so a prefix that only another project's run has is "no run" (404).
"""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request

from app.flows import run_ids
from app.web.errors import ApiError
from app.web.schemas import RunCandidate


async def path_run(request: Request, project_id: int) -> UUID:
    """The run ``request.path_params["run_id"]`` names (404 when it names none, 422 with
    the `candidates` when it names more than one)."""
    raw = request.path_params["run_id"]
    try:
        return UUID(raw)  # a whole id needs no lookup here; the operation finds its run or not
    except ValueError:
        pass
    try:
        async with request.state.pool.connection() as conn:
            return await run_ids.resolve(conn, project_id, raw)
    except (run_ids.NotARunId, run_ids.NoRun):
        raise ApiError(404, f"no run {raw!r}") from None
    except run_ids.Ambiguous as exc:
        candidates = [
            RunCandidate(
                id=str(each.id),
                flow=each.flow,
                status=each.status,
                created_at=each.created_at.isoformat(),
            )
            for each in exc.candidates
        ]
        raise ApiError(422, str(exc), candidates=candidates) from None
