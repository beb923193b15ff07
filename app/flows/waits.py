"""What runs wait for, and resumes by a project's key holder; the only module that runs
``app/sql/waits.sql``.

Invariant: a key holder's resume completes only a pending ``webhook`` waitpoint of a live
run of their own project, under the waitpoint's row lock (as a pause and a token resume
take it), so it cannot race a pause, another resume or the run's end; a second resume of
the same step changes nothing (`AlreadyResumed`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from app import queries
from app.flows import control, decisions, resume
from app.flows.definition import FlowDefinition, WaitForWebhookStep, parse_flow
from app.flows.model import RunStatus

_SQL = queries.load("waits")


def step_id_of(key: str) -> str:
    """A step instance's step id: ``each[2].approve`` → ``approve``."""
    return key.rsplit(".", 1)[-1]


def webhook_step(definition: FlowDefinition, key: str) -> WaitForWebhookStep | None:
    """The `wait_for_webhook` step of the definition that step instance `key` is of."""
    wanted = step_id_of(key)
    for _path, step in definition.iter_steps():
        if step.id == wanted:
            return step if isinstance(step, WaitForWebhookStep) else None
    return None


@dataclass(frozen=True)
class StepWait:
    """A run and one of its step instances, as an approval page shows them."""

    run_id: UUID
    project_id: int
    status: RunStatus
    resume_secret: bytes
    flow: str
    version: int
    key: str
    step: WaitForWebhookStep | None
    """The step's definition, when it is a `wait_for_webhook` step."""
    kind: str | None
    """The waitpoint's kind; None: the run has not reached the step (or it is cleared)."""
    state: str | None
    resume_at: datetime | None
    payload: Any
    waiting_since: datetime | None
    completed_at: datetime | None
    step_status: str | None
    step_output: Any

    @property
    def pending(self) -> bool:
        return self.state == "pending"

    @property
    def decided(self) -> bool:
        """The step was resumed, or timed out: nothing is left to decide."""
        return self.state == "completed" or self.step_status not in (None, "PAUSED")


async def find(conn: AsyncConnection[Any], run_id: UUID, key: str) -> StepWait | None:
    """Run `run_id` with its step instance `key`; None when there is no such run."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["find_wait"], {"run_id": run_id, "key": key})
        row = await cur.fetchone()
    if row is None:
        return None
    definition = row.pop("definition")
    return StepWait(
        **{**row, "status": RunStatus(row["status"]), "resume_secret": bytes(row["resume_secret"])},
        key=key,
        step=webhook_step(parse_flow(definition), key),
    )


@dataclass(frozen=True)
class Pending:
    """A pending waitpoint of a run: a delay, a webhook (with its resume URL and what it
    asks) or a sub-flow (with the child run)."""

    step: str
    step_id: str
    kind: str
    since: datetime
    resume_at: datetime | None
    child_run_id: UUID | None
    resume_url: str | None = None
    title: str | None = None
    description: str | None = None
    choices: list[str] | None = None
    form: list[dict[str, Any]] | None = None


async def pending(conn: AsyncConnection[Any], run_id: UUID, public_url: str) -> list[Pending]:
    """What run `run_id` waits for (its caller has checked that the run is the project's)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["pending_waits"], {"run_id": run_id})
        rows = await cur.fetchall()
    found: list[Pending] = []
    definition: FlowDefinition | None = None  # one for all the run's waits
    for row in rows:
        key = row["step_key"]
        wait = Pending(
            step=key,
            step_id=step_id_of(key),
            kind=row["kind"],
            since=row["created_at"],
            resume_at=row["resume_at"],
            child_run_id=row["child_run_id"],
        )
        if row["kind"] == "webhook":
            secret = bytes(row["resume_secret"])
            definition = definition or parse_flow(row["definition"])
            step = webhook_step(definition, key)
            wait = dataclasses.replace(
                wait,
                resume_url=resume.url(public_url, run_id, secret, key),
                **(_asks(step) if step is not None else {}),
            )
        found.append(wait)
    return found


def _asks(step: WaitForWebhookStep) -> dict[str, Any]:
    return {
        "title": step.title,
        "description": step.description,
        "choices": list(step.choices),
        "form": [field.model_dump() for field in step.form],
    }


class ResumeRefused(Exception):
    """A key holder's resume that did not happen; the subclass says why."""


class NotWaiting(ResumeRefused):
    """No such run in the project, or the step is not waiting for a webhook there."""


class AlreadyResumed(ResumeRefused):
    """The step was resumed already (or its wait timed out)."""


class RunEnded(ResumeRefused):
    """The run has ended."""

    def __init__(self, status: RunStatus) -> None:
        super().__init__(f"the run has ended ({status}); nothing to resume")
        self.status = status


async def resume_step(
    conn: AsyncConnection[Any],
    project_id: int,
    run_id: UUID,
    key: str,
    body: Any,
    *,
    by: str | None,
    now: datetime | None = None,
) -> Any:
    """Resume step instance `key` of run `run_id` (a step id outside loops) for a key
    holder of project `project_id`: a decision (``{"choice", "comment"?, "fields"?}``,
    checked against the step's choices and form, made `by` someone) or any other body
    becomes the step's output, which is returned. Raises `ResumeRefused` (why, by its
    type) or `decisions.DecisionError`; wake the queue after.

    Runs its own transaction on `conn` (which must not be in one)."""
    found = await find(conn, run_id, key)
    if found is None or found.project_id != project_id:
        raise NotWaiting(f"no run {run_id}")
    if found.status.final:
        raise RunEnded(found.status)
    output = body
    if decisions.is_decision(body):
        if found.step is None:
            raise NotWaiting(f"run {run_id} has no step {key!r} waiting for a webhook")
        output = decisions.decide(
            found.step.choices,
            found.step.form,
            choice=body["choice"],
            comment=body.get("comment"),
            fields=body.get("fields"),
            by=by,
            at=now or datetime.now(UTC),
        )
    async with conn.transaction():
        cur = await conn.execute(
            _SQL["lock_wait"], {"run_id": run_id, "key": key, "project_id": project_id}
        )
        row = await cur.fetchone()
        if row is None or row[0] != "webhook":
            raise NotWaiting(f"step {key!r} of run {run_id} is not waiting for a webhook")
        if row[1] != "pending":
            raise AlreadyResumed(f"step {key!r} was resumed already (or timed out)")
        await control.complete_waitpoint(conn, run_id, key, "webhook", output, now=now)
    return output
