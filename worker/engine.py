"""The flow engine: an `execute_run` job runs its run's steps until the run ends or pauses.

Execution is a replay. Every step instance has a key (its id; inside a loop, prefixed by
the iterations: ``each[2].notify``) and a recorded result; an execution walks the flow from
the top, takes recorded results as they are and runs what is missing. So a run continued
after a pause, a retry backoff or a crash picks up exactly where its records end.

Invariants kept here:

* A step with effects outside the run (code, http, call_flow, a pause) starts only after
  every earlier result is committed. Results of steps without effects (branch, loop,
  respond) ride along with the next commit: a crash before it is indistinguishable from a
  crash just before their write, and re-running them changes nothing outside.
* Every write is fenced on the job's lease (owner, attempt, running): a worker that lost
  its lease writes nothing. The last write of an execution — the run's end, its pause, or
  its reschedule — deletes the job in the same transaction.
* A run that was canceled or timed out meanwhile is never written back to RUNNING: step
  writes check the run's status, and the end of a run updates only a RUNNING run.
* Pauses take the run row, then the waitpoint, then the job (the lock order of
  `app.flows.runs`), so a pause racing a resume, a child's end or a cancel can deadlock
  with none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pydantic
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app import metrics
from app.flows import resume, runs, templating
from app.flows.definition import (
    BranchStep,
    CallFlowStep,
    CodeStep,
    DelayStep,
    FlowDefinition,
    HttpStep,
    LoopStep,
    RespondStep,
    Step,
    WaitForWebhookStep,
    parse_flow,
)
from app.flows.runs import RunStatus, StepRecord, StepStatus
from app.jobs import Job, Queue
from app.settings import Settings
from app.signals import Publisher, Watchers
from worker.code import CodeError, CodeRunner
from worker.executor import SETTLED, RetryableJobError, Settled
from worker.sandbox import StepStatus as SandboxStatus
from worker.steps.http import HttpClient, HttpRequestSpec, HttpStepError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_LOOP_ITEMS = 1000
HTTP_TIMEOUT_SECONDS = 30.0
MAX_STDIO_CHARS = 64 * 1024
DEFINITION_CACHE_SIZE = 256


class ExecutePayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    run_id: UUID


@dataclasses.dataclass(frozen=True)
class EngineServices:
    settings: Settings
    pool: AsyncConnectionPool[Any]
    queue: Queue
    owner: str
    code: CodeRunner
    http: HttpClient
    run_events: Publisher
    cancels: Watchers
    settled: Callable[[int], None] = lambda _job_id: None
    """Told the job's id once the engine has deleted the job (it must not be renewed)."""
    local_replies: Watchers = dataclasses.field(default_factory=Watchers)
    """Sync callers waiting in this process (WORKER_AND_APP): replies handed over directly
    after the commit, besides the NOTIFY for other processes."""


class StepFailure(Exception):
    def __init__(
        self,
        status: StepStatus,
        error: str,
        *,
        output: Any = None,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.output = output
        self.stdout = stdout
        self.stderr = stderr


class _RunTimedOut(StepFailure):
    """The run's active time ran out during (or before) this step: the step is recorded as
    TIMEOUT and the run ends as TIMEOUT, whatever its retry or continue_on_error say."""

    def __init__(self, error: str) -> None:
        super().__init__(StepStatus.TIMEOUT, error)


RUN_TIMEOUT_MESSAGE = "the run ran longer than SLUICE_RUN_TIMEOUT_SECONDS"


class _RunFailed(Exception):
    def __init__(self, status: RunStatus, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class _Stopped(Exception):
    """The execution ended early and its job is settled (paused, rescheduled, canceled)."""


class LeaseLost(RetryableJobError):
    def __init__(self, job: Job) -> None:
        super().__init__(
            f"lease on job {job.id} attempt {job.attempt} lost; another worker owns it"
        )


_RUN_STATUS_FOR_STEP = {
    StepStatus.TIMEOUT: RunStatus.TIMEOUT,
    StepStatus.MEMORY_LIMIT_EXCEEDED: RunStatus.MEMORY_LIMIT_EXCEEDED,
    StepStatus.LOG_SIZE_EXCEEDED: RunStatus.LOG_SIZE_EXCEEDED,
    StepStatus.INTERNAL_ERROR: RunStatus.INTERNAL_ERROR,
    StepStatus.CANCELED: RunStatus.CANCELED,
}

_SANDBOX_TO_STEP = {
    SandboxStatus.FAILED: StepStatus.FAILED,
    SandboxStatus.TIMEOUT: StepStatus.TIMEOUT,
    SandboxStatus.MEMORY_LIMIT_EXCEEDED: StepStatus.MEMORY_LIMIT_EXCEEDED,
    SandboxStatus.LOG_SIZE_EXCEEDED: StepStatus.LOG_SIZE_EXCEEDED,
}


class FlowEngine:
    """The `execute_run` job handler."""

    def __init__(self, services: EngineServices) -> None:
        self.services = services
        self._definitions: OrderedDict[int, _Flow] = OrderedDict()

    async def __call__(self, job: Job) -> Settled:
        payload = ExecutePayload.model_validate(job.payload)
        with self.services.cancels.watch(str(payload.run_id)) as canceled:
            await _Execution(self, job, payload.run_id, canceled).run()
        return SETTLED

    async def flow(self, conn: AsyncConnection[Any], version_id: int) -> _Flow:
        cached = self._definitions.get(version_id)
        if cached is not None:
            self._definitions.move_to_end(version_id)
            return cached
        flow = _Flow(parse_flow(await runs.definition(conn, version_id)))
        self._definitions[version_id] = flow
        if len(self._definitions) > DEFINITION_CACHE_SIZE:
            self._definitions.popitem(last=False)
        return flow


class _Flow:
    """A parsed definition with what the engine derives from it once."""

    def __init__(self, definition: FlowDefinition) -> None:
        self.definition = definition
        # The wait_for_webhook steps reachable in each loop scope (None: the top level),
        # whose resume URLs templates in that scope can use.
        self.waits_by_scope: dict[str | None, list[str]] = {}
        self._collect(definition.steps, None)

    def _collect(self, steps: Sequence[Step], scope: str | None) -> None:
        for step in steps:
            if isinstance(step, WaitForWebhookStep):
                self.waits_by_scope.setdefault(scope, []).append(step.id)
            elif isinstance(step, BranchStep):
                self._collect(step.then, scope)
                self._collect(step.else_, scope)
            elif isinstance(step, LoopStep):
                self._collect(step.steps, step.id)


@dataclasses.dataclass
class _Scope:
    """Where a step runs: its key prefix, the results visible to it, loop variables."""

    prefix: str
    loop: str | None
    steps: dict[str, dict[str, Any]]
    variables: dict[str, Any]

    def child(self, prefix: str, loop: str, item: Any, index: int) -> _Scope:
        return _Scope(prefix, loop, dict(self.steps), {"item": item, "index": index})

    def see(self, step_id: str, record: StepRecord) -> None:
        self.steps[step_id] = {
            "output": record.output,
            "status": str(record.status),
            "error": record.error,
        }


class _Execution:
    def __init__(self, engine: FlowEngine, job: Job, run_id: UUID, canceled: asyncio.Event) -> None:
        self.engine = engine
        self.services = engine.services
        self.settings = engine.services.settings
        self.job = job
        self.run_id = run_id
        self.canceled = canceled
        self.pending: dict[str, StepRecord] = {}
        self.response: dict[str, Any] | None = None
        self._waited = False
        self._db_now = datetime.now().astimezone()
        self._clock = time.monotonic()

    # --- the walk ---------------------------------------------------------------------------

    async def run(self) -> None:
        async with self.services.pool.connection() as conn:
            loaded = await runs.start_run(conn, self.run_id)
            if loaded is None:
                await self._settle_job(conn)
                return
            self.loaded = loaded
            self.flow = await self.engine.flow(conn, loaded.flow_version_id)
        self._db_now, self._clock = loaded.db_now, time.monotonic()
        self._waited = bool(loaded.waitpoints)
        top = _Scope("", None, {}, {})
        try:
            output = await self._steps(self.flow.definition.steps, top)
        except _Stopped:
            return
        except _RunFailed as failure:
            await self._finish(failure.status, error=failure.error)
            return
        await self._finish(RunStatus.SUCCEEDED, output=output)

    async def _steps(self, steps: Sequence[Step], scope: _Scope) -> Any:
        output = None
        for step in steps:
            output = await self._step(step, scope)
        return output

    async def _step(self, step: Step, scope: _Scope) -> Any:
        key = scope.prefix + step.id
        recorded = self.loaded.steps.get(key)
        if recorded is not None and (
            recorded.status is StepStatus.SUCCEEDED
            or (step.continue_on_error and recorded.status not in _UNFINISHED)
        ):
            scope.see(step.id, recorded)
            return recorded.output
        attempts = recorded.attempts if recorded and recorded.status is StepStatus.RETRYING else 0
        while True:
            attempts += 1
            started = self.now()
            try:
                output = await self._perform(step, key, scope)
            except StepFailure as failure:
                outcome = _Output(failure.output, failure.stdout, failure.stderr)
                record = self._record(step, key, failure.status, attempts, outcome, started)
                record = dataclasses.replace(record, error=failure.error)
                if isinstance(failure, _RunTimedOut):
                    self.pending[key] = record
                    raise _RunFailed(RunStatus.TIMEOUT, f"step '{key}': {failure.error}") from None
                if step.retry is not None and attempts < step.retry.max_attempts:
                    self.pending[key] = dataclasses.replace(record, status=StepStatus.RETRYING)
                    if step.retry.backoff_seconds > 0:
                        await self._reschedule(step.retry.backoff_seconds)
                    continue
                self.pending[key] = record
                scope.see(step.id, record)
                if step.continue_on_error:
                    return None
                status = _RUN_STATUS_FOR_STEP.get(failure.status, RunStatus.FAILED)
                raise _RunFailed(status, f"step '{key}' failed: {failure.error}") from None
            record = self._record(step, key, StepStatus.SUCCEEDED, attempts, output, started)
            self.pending[key] = record
            scope.see(step.id, record)
            return output.value

    def _record(
        self,
        step: Step,
        key: str,
        status: StepStatus,
        attempts: int,
        output: _Output,
        started: datetime,
    ) -> StepRecord:
        """The record of one attempt of a step, counted in the step-duration metric."""
        finished = self.now()
        metrics.STEP_DURATION.observe(
            (finished - started).total_seconds(), type=step.type, status=str(status)
        )
        return StepRecord(
            key=key,
            step_id=step.id,
            type=step.type,
            status=status,
            attempts=attempts,
            output=output.value,
            stdout=output.stdout,
            stderr=output.stderr,
            started_at=started,
            finished_at=finished,
        )

    async def _perform(self, step: Step, key: str, scope: _Scope) -> _Output:
        if isinstance(step, CodeStep):
            return await self._code(step, key, scope)
        if isinstance(step, HttpStep):
            return await self._http(step, scope)
        if isinstance(step, BranchStep):
            return await self._branch(step, scope)
        if isinstance(step, LoopStep):
            return await self._loop(step, key, scope)
        if isinstance(step, DelayStep):
            return await self._delay(step, key, scope)
        if isinstance(step, WaitForWebhookStep):
            return await self._wait_for_webhook(step, key)
        if isinstance(step, CallFlowStep):
            return await self._call_flow(step, key, scope)
        return self._respond(step, scope)

    # --- step types ---------------------------------------------------------------------------

    async def _code(self, step: CodeStep, key: str, scope: _Scope) -> _Output:
        context = self._context(scope)
        if step.input is not None:
            given = self._render(step.input, context)
        else:
            given = {name: context[name] for name in ("trigger", "steps", "flow", "run")}
            given.update(scope.variables)
        ctx = {
            "run_id": str(self.run_id),
            "flow": context["flow"],
            "step_id": step.id,
            "step_key": key,
            "resume_urls": context["resume_urls"],
        }
        timeout = step.timeout_seconds or self.settings.step_timeout_seconds
        remaining = self.remaining_seconds()
        await self._flush()
        try:
            result = await self._cancellable(
                self.services.code.run(
                    str(self.loaded.project_id),
                    step.code,
                    given,
                    ctx,
                    requirements=step.requirements,
                    timeout_seconds=max(0.001, min(timeout, remaining)),
                )
            )
        except CodeError as exc:
            raise StepFailure(StepStatus.FAILED, str(exc)) from None
        stdout, stderr = _clip(result.stdout), _clip(result.stderr)
        if result.status is SandboxStatus.SUCCEEDED:
            return _Output(result.output, stdout, stderr)
        if result.status is SandboxStatus.INTERNAL_ERROR:
            # The sandbox broke, not the step: run the job again (the step re-runs).
            raise RetryableJobError(f"sandbox failure in step '{key}': {result.error}")
        status = _SANDBOX_TO_STEP[result.status]
        if status is StepStatus.TIMEOUT and remaining < timeout:
            raise _RunTimedOut(f"stopped: {RUN_TIMEOUT_MESSAGE}")
        error = (result.traceback or result.error or str(result.status)).strip()
        raise StepFailure(status, error, stdout=stdout, stderr=stderr)

    async def _http(self, step: HttpStep, scope: _Scope) -> _Output:
        context = self._context(scope)
        url = self._render(step.url, context)
        headers = self._render(step.headers, context)
        body = self._render(step.body, context)
        if not isinstance(url, str):
            raise StepFailure(StepStatus.FAILED, f"url must render to a string, got {url!r}")
        timeout = step.timeout_seconds or HTTP_TIMEOUT_SECONDS
        remaining = self.remaining_seconds()
        spec = HttpRequestSpec(
            method=step.method,
            url=url,
            headers={str(k): str(v) for k, v in headers.items()},
            body=body,
            timeout_seconds=min(timeout, remaining),
        )
        await self._flush()
        try:
            response = await self._cancellable(self.services.http.send(spec))
        except HttpStepError as exc:
            if remaining < timeout and exc.output is None and self._out_of_time():
                raise _RunTimedOut(f"stopped: {RUN_TIMEOUT_MESSAGE}") from None
            raise StepFailure(StepStatus.FAILED, str(exc), output=exc.output) from None
        return _Output(response)

    def _out_of_time(self) -> bool:
        deadline = self.loaded.deadline_at
        return deadline is not None and self.now() >= deadline

    async def _branch(self, step: BranchStep, scope: _Scope) -> _Output:
        try:
            taken = templating.evaluate_condition(step.condition, self._context(scope))
        except templating.TemplateError as exc:
            raise StepFailure(StepStatus.FAILED, str(exc)) from None
        steps = step.then if taken else step.else_
        output = await self._steps(steps, scope)
        return _Output({"branch": "then" if taken else "else", "output": output})

    async def _loop(self, step: LoopStep, key: str, scope: _Scope) -> _Output:
        items = self._render(step.items, self._context(scope))
        if not isinstance(items, list):
            raise StepFailure(
                StepStatus.FAILED, f"items must be a list, got {type(items).__name__}"
            )
        if len(items) > MAX_LOOP_ITEMS:
            raise StepFailure(
                StepStatus.FAILED, f"{len(items)} items; a loop takes at most {MAX_LOOP_ITEMS}"
            )
        outputs = []
        for index, item in enumerate(items):
            iteration = scope.child(f"{key}[{index}].", step.id, item, index)
            outputs.append(await self._steps(step.steps, iteration))
        return _Output(outputs)

    async def _delay(self, step: DelayStep, key: str, scope: _Scope) -> _Output:
        if step.seconds is not None:
            seconds = step.seconds
        else:
            until = self._render(step.until, self._context(scope))
            try:
                moment = datetime.fromisoformat(str(until))
            except ValueError:
                raise StepFailure(
                    StepStatus.FAILED, f"until must be an ISO 8601 time, got {until!r}"
                ) from None
            if moment.tzinfo is None:
                raise StepFailure(StepStatus.FAILED, f"until has no time zone: {until!r}")
            seconds = (moment - self.now()).total_seconds()
        waitpoint = await self._wait(step, key, "delay", resume_in_seconds=seconds)
        return _Output({"resumed_at": self.now().isoformat(), "waited_until": _iso(waitpoint)})

    async def _wait_for_webhook(self, step: WaitForWebhookStep, key: str) -> _Output:
        waitpoint = await self._wait(step, key, "webhook", resume_in_seconds=step.timeout_seconds)
        if waitpoint.state != "completed":
            raise StepFailure(
                StepStatus.TIMEOUT, f"not resumed within {step.timeout_seconds:g} seconds"
            )
        return _Output(waitpoint.payload)

    async def _call_flow(self, step: CallFlowStep, key: str, scope: _Scope) -> _Output:
        existing = self.loaded.waitpoints.get(key)
        if existing is None:
            given = self._render(step.input, self._context(scope))
            await self._flush()
            child = await self._start_child(step, key, given)
            if not step.wait:
                return _Output({"run_id": str(child)})
        waitpoint = await self._wait(step, key, "subflow")
        outcome = waitpoint.payload or {}
        status = outcome.get("status")
        if status == RunStatus.SUCCEEDED:
            response = outcome.get("response")
            return _Output(response.get("body") if response else outcome.get("output"))
        step_status = StepStatus.TIMEOUT if status == RunStatus.TIMEOUT else StepStatus.FAILED
        raise StepFailure(
            step_status,
            f"child run {outcome.get('run_id')} of flow '{step.flow}' ended {status}: "
            f"{outcome.get('error')}",
            output=outcome,
        )

    def _respond(self, step: RespondStep, scope: _Scope) -> _Output:
        context = self._context(scope)
        headers = {str(k): str(v) for k, v in self._render(step.headers, context).items()}
        for name, value in headers.items():
            if any(c in value for c in "\r\n\x00"):
                raise StepFailure(
                    StepStatus.FAILED,
                    f"header {name!r} renders to a value with a line break or NUL, "
                    "which cannot be sent",
                )
        self.response = {
            "status": step.status,
            "headers": headers,
            "body": self._render(step.body, context),
        }
        return _Output(self.response)

    # --- context ------------------------------------------------------------------------------

    def _context(self, scope: _Scope) -> dict[str, Any]:
        loaded = self.loaded
        urls = {
            step_id: resume.url(
                self.settings.resolved_public_url,
                loaded.id,
                loaded.resume_secret,
                scope.prefix + step_id,
            )
            for step_id in self.flow.waits_by_scope.get(scope.loop, ())
        }
        return {
            "trigger": loaded.trigger,
            "steps": scope.steps,
            "flow": {
                "id": str(loaded.flow_id),
                "name": loaded.flow_name,
                "version": loaded.version,
            },
            "run": {
                "id": str(loaded.id),
                "parent_run_id": str(loaded.parent_run_id) if loaded.parent_run_id else None,
            },
            "resume_urls": urls,
            **scope.variables,
        }

    @staticmethod
    def _render(value: Any, context: Mapping[str, Any]) -> Any:
        try:
            return templating.render(value, context)
        except templating.TemplateError as exc:
            raise StepFailure(StepStatus.FAILED, str(exc)) from None

    def now(self) -> datetime:
        """The database's clock, as of this execution's start plus the time since."""
        return self._db_now + timedelta(seconds=time.monotonic() - self._clock)

    def remaining_seconds(self) -> float:
        deadline = self.loaded.deadline_at
        if deadline is None:
            return self.settings.run_timeout_seconds
        remaining = (deadline - self.now()).total_seconds()
        if remaining <= 0:
            raise _RunTimedOut(f"not started: {RUN_TIMEOUT_MESSAGE}")
        return remaining

    async def _cancellable(self, work: Awaitable[T]) -> T:
        """`work`, unless the run is canceled (or times out) first: then stop it and end."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self.canceled.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled() or not task.done():
            async with self.services.pool.connection() as conn:
                status = await runs.status(conn, self.run_id)
            if status is RunStatus.RUNNING:
                # A stale notification (e.g. a retried run); the step is run again.
                raise RetryableJobError(
                    "step interrupted by a cancel notification", delay_seconds=0
                )
            await self._stop_ended_elsewhere()
        return task.result()

    # --- commits ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        async with self.services.pool.connection() as conn, conn.transaction():
            yield conn

    async def _write_pending(self, conn: AsyncConnection[Any]) -> None:
        await runs.record_steps(conn, self.run_id, list(self.pending.values()))
        if self.response is not None:
            await runs.set_response(conn, self.run_id, self.response)

    async def _flush(self) -> None:
        """Commit what is pending before a step with effects; stop if the run ended."""
        if not self.pending and self.response is None:
            return
        responded = self.response is not None
        async with self.services.pool.connection() as conn:
            held, status = await runs.save_progress(
                conn,
                self.job.lease,
                self.services.owner,
                lease_seconds=self.services.queue.lease_seconds,
                run_id=self.run_id,
                records=list(self.pending.values()),
                response=self.response,
                set_response=responded,
            )
        if not held:
            raise LeaseLost(self.job)
        if responded:
            running = status is RunStatus.RUNNING
            self._announce(runs.Reply(status, self.response, None, None) if running else None)
        self._committed()
        if status is not RunStatus.RUNNING:
            await self._stop_ended_elsewhere()

    def _job_done(self, *, wake: bool) -> None:
        """This execution's job was deleted by a committed write: the worker must stop
        renewing it. With `wake`, idle workers hear that a slot is free: a queued run of a
        limited project may start now (a paused or rescheduled run holds no slot)."""
        self.services.settled(self.job.id)
        if wake:
            self.services.queue.wake()

    def _announce(self, reply: runs.Reply | None) -> None:
        """Wake the run's sync callers after a commit: those in this process get `reply` (as
        committed) directly, and a NOTIFY tells other processes to read it. The NOTIFY is
        left out only when a caller here took the reply and nobody elsewhere can be
        waiting: a run that never paused has one sync caller, in the process that made it."""
        run = str(self.run_id)
        delivered = reply is not None and self.services.local_replies.deliver(run, reply)
        if not delivered or self._waited:
            self.services.run_events.publish(run)

    def _committed(self) -> None:
        self.pending.clear()
        self.response = None

    async def _finish(
        self, status: RunStatus, *, output: Any = None, error: str | None = None
    ) -> None:
        async with self.services.pool.connection() as conn:
            try:
                finished = await runs.finish_execution(
                    conn,
                    self.job.lease,
                    self.services.owner,
                    run_id=self.run_id,
                    status=status,
                    output=output,
                    error=error,
                    records=list(self.pending.values()),
                    response=self.response,
                    set_response=self.response is not None,
                )
            except runs.LeaseLostError:
                raise LeaseLost(self.job) from None
        # Wake idle workers only when it can matter (this is the hot path): for a freed slot
        # of a limited project, or for a parent this run's end scheduled.
        self._job_done(wake=finished.gated or self.loaded.parent_run_id is not None)
        self._committed()
        metrics.RUNS_FINISHED.inc(status=str(status))
        self._announce(finished.reply)

    async def _settle_job(self, conn: AsyncConnection[Any]) -> None:
        """Delete this execution's job; schedule the run again if it is live (retried)."""
        async with conn.transaction():
            await self.services.queue.complete(conn, self.services.owner, [self.job.lease])
            await runs.continue_run(conn, self.run_id)
        self._job_done(wake=True)

    async def _stop_ended_elsewhere(self) -> None:
        async with self.services.pool.connection() as conn:
            await self._settle_job(conn)
        raise _Stopped

    async def _reschedule(self, delay_seconds: float) -> None:
        """Continue the run in `delay_seconds` (a step's retry backoff) and stop."""
        run_at = self.now() + timedelta(seconds=delay_seconds)
        async with self._transaction() as conn:
            await self._write_pending(conn)
            if await self.services.queue.complete(conn, self.services.owner, [self.job.lease]):
                raise LeaseLost(self.job)
            await self.services.queue.enqueue(
                conn, runs.execute_job(self.run_id, self.loaded.project_id, run_at=run_at)
            )
        self._job_done(wake=True)
        self._committed()
        raise _Stopped

    async def _start_child(self, step: CallFlowStep, key: str, given: Any) -> UUID:
        """Start the called flow's run; with `wait`, the parent pauses in the same commit."""
        ended = False
        async with self._transaction() as conn:
            target = await runs.find_flow_by_name(conn, self.loaded.project_id, step.flow)
            if target is None:
                raise StepFailure(
                    StepStatus.FAILED, f"no enabled flow named '{step.flow}' in this project"
                )
            if step.wait and not await self._lock_running(conn):
                ended = True
            else:
                if not step.wait and await self.services.queue.heartbeat(
                    conn, self.services.owner, [self.job.lease]
                ):
                    raise LeaseLost(self.job)
                child = await runs.create_run(
                    conn,
                    self.services.queue,
                    target,
                    {"body": given, "headers": {}, "query": {}},
                    timeout_seconds=self.settings.run_timeout_seconds,
                    parent_run_id=self.run_id,
                    parent_step_key=key if step.wait else None,
                )
                if step.wait:
                    await runs.lock_waitpoint(
                        conn, self.run_id, key, kind="subflow", child_run_id=child
                    )
                    await self._pause_locked(conn, step, key, None)
                else:
                    self.pending[key] = StepRecord(
                        key=key,
                        step_id=step.id,
                        type=step.type,
                        status=StepStatus.SUCCEEDED,
                        output={"run_id": str(child)},
                        started_at=self.now(),
                        finished_at=self.now(),
                    )
                    await self._write_pending(conn)
        if ended:
            self._job_done(wake=True)
            raise _Stopped
        if step.wait:
            self._job_done(wake=False)
        self._committed()
        self.services.queue.wake()  # the child's job, and the slot the paused parent freed
        if step.wait:
            self.services.run_events.publish(str(self.run_id))
            raise _Stopped
        return child

    async def _lock_running(self, conn: AsyncConnection[Any]) -> bool:
        """Lock the run row (first, as pauses do); if it is no longer RUNNING, settle the
        job in this transaction and return False."""
        if await runs.status(conn, self.run_id, lock=True) is RunStatus.RUNNING:
            return True
        await self.services.queue.complete(conn, self.services.owner, [self.job.lease])
        await runs.continue_run(conn, self.run_id)
        return False

    async def _wait(
        self, step: Step, key: str, kind: str, *, resume_in_seconds: float | None = None
    ) -> runs.Waitpoint:
        """The step's waitpoint once it is completed or due; pauses (and stops) until then."""
        self._waited = True  # resumable: sync callers may now wait in other processes
        known = self.loaded.waitpoints.get(key)
        if known is not None and known.state == "completed":
            return known
        outcome = "ended"
        async with self._transaction() as conn:
            if await self._lock_running(conn):
                locked = await runs.lock_waitpoint(
                    conn, self.run_id, key, kind=kind, resume_in_seconds=resume_in_seconds
                )
                if locked.completed or locked.due:
                    # Resumed before the pause, or already due: go on without pausing.
                    if await self.services.queue.heartbeat(
                        conn, self.services.owner, [self.job.lease]
                    ):
                        raise LeaseLost(self.job)
                    await runs.close_waitpoint(conn, self.run_id, key)
                    await self._write_pending(conn)
                    outcome = "go on"
                else:
                    await self._pause_locked(conn, step, key, locked.resume_at)
                    outcome = "paused"
        if outcome in ("ended", "paused"):
            self._job_done(wake=True)
        if outcome == "ended":
            raise _Stopped
        self._committed()
        if outcome == "paused":
            self.services.run_events.publish(str(self.run_id))
            raise _Stopped
        return runs.Waitpoint(
            key, kind, locked.state, locked.resume_at, locked.child_run_id, locked.payload
        )

    async def _pause_locked(
        self, conn: AsyncConnection[Any], step: Step, key: str, resume_at: datetime | None
    ) -> None:
        """Inside the pause transaction, after the run row and the waitpoint are locked:
        record, pause the run, hand the job over (to a continuation at `resume_at`)."""
        if await self.services.queue.complete(conn, self.services.owner, [self.job.lease]):
            raise LeaseLost(self.job)
        if resume_at is not None:
            await self.services.queue.enqueue(
                conn, runs.execute_job(self.run_id, self.loaded.project_id, run_at=resume_at)
            )
        self.pending[key] = StepRecord(
            key=key,
            step_id=step.id,
            type=step.type,
            status=StepStatus.PAUSED,
            started_at=self.now(),
        )
        await self._write_pending(conn)
        await runs.pause_run(
            conn,
            self.run_id,
            expires=not isinstance(step, DelayStep),
            ttl_seconds=self.settings.paused_run_ttl,
        )


_UNFINISHED = frozenset({StepStatus.PAUSED, StepStatus.RETRYING})


@dataclasses.dataclass(frozen=True)
class _Output:
    value: Any
    stdout: str | None = None
    stderr: str | None = None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_STDIO_CHARS else text[: MAX_STDIO_CHARS - 1] + "…"


def _iso(waitpoint: runs.Waitpoint) -> str | None:
    return waitpoint.resume_at.isoformat() if waitpoint.resume_at else None
