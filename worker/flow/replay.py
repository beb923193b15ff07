"""The replay: a pure walk over a run's flow that decides what happens next.

Execution is a replay. Every step instance has a key (its id; inside a loop, prefixed by
the iterations: ``each[2].notify``) and maybe a recorded result; a walk goes through the
flow from the top, takes recorded results as they are and asks for what is missing. So a
run continued after a pause, a retry backoff or a crash picks up exactly where its records
end. The walk does no I/O: it yields effects (`worker.flow.effects`) and is sent their
answers; it ends by returning an outcome. Time comes from the clock it is given.

Invariants kept here:

* A step with effects outside the run (code, http, call_flow, a pause) is asked for with
  every result before it attached to the effect (`Effect.writes`), so it starts only after
  they are committed. Results of steps without effects (branch, loop, respond) ride along
  with the next commit: a crash before it is indistinguishable from a crash just before
  their write, and re-running them changes nothing outside.
* A step is skipped on replay only when it succeeded, or failed and was tolerated
  (`continue_on_error`); a paused or retrying step is run (again).
* The run's deadline bounds every attempt; an attempt it cut short ends the run as
  TIMEOUT, whatever the step's retry or continue_on_error say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID, uuid4

from app.flows import templating
from app.flows.definition import (
    BranchStep,
    CallFlowStep,
    CodeStep,
    DelayStep,
    HttpStep,
    LoopStep,
    RespondStep,
    Step,
    WaitForWebhookStep,
)
from app.flows.model import LoadedRun, RunStatus, StepRecord, StepStatus, Waitpoint, Writes
from app.settings import Settings
from worker.flow.context import FlowPlan, Scope, template_context
from worker.flow.effects import (
    Abandon,
    Answer,
    Broken,
    ChildStarted,
    Done,
    Effect,
    Failed,
    Finish,
    Outcome,
    Reschedule,
    RunCode,
    SendHttp,
    StartChild,
    Wait,
)

MAX_LOOP_ITEMS = 1000
HTTP_TIMEOUT_SECONDS = 30.0
RUN_TIMEOUT_MESSAGE = "the run ran longer than SLUICE_RUN_TIMEOUT_SECONDS"

Walk: TypeAlias = Generator[Effect, Answer, Outcome]
_Steps: TypeAlias = Generator[Effect, Answer, Any]
"""A part of the walk: returns an output, or an `Outcome` when the run ends there."""

_RUN_STATUS_FOR_STEP = {
    StepStatus.TIMEOUT: RunStatus.TIMEOUT,
    StepStatus.MEMORY_LIMIT_EXCEEDED: RunStatus.MEMORY_LIMIT_EXCEEDED,
    StepStatus.LOG_SIZE_EXCEEDED: RunStatus.LOG_SIZE_EXCEEDED,
    StepStatus.INTERNAL_ERROR: RunStatus.INTERNAL_ERROR,
    StepStatus.CANCELED: RunStatus.CANCELED,
}


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    public_url: str
    step_timeout_seconds: float
    """A code step's wall time unless it sets its own."""
    run_timeout_seconds: float
    """The budget of a run that has no deadline (it is timed out by maintenance anyway)."""

    @classmethod
    def of(cls, settings: Settings) -> ReplayConfig:
        return cls(
            settings.resolved_public_url,
            settings.step_timeout_seconds,
            settings.run_timeout_seconds,
        )


def walk(
    plan: FlowPlan,
    run: LoadedRun,
    config: ReplayConfig,
    *,
    clock: Callable[[], datetime],
    new_id: Callable[[], UUID] = uuid4,
    on_attempt: Callable[[StepRecord], None] = lambda _record: None,
) -> Walk:
    """The walk over `run`: send each yielded effect its answer; it returns the outcome.

    `clock` is the database's time; `new_id` names child runs; `on_attempt` is told of the
    record of every attempt (the step-duration metric)."""
    return _Replay(plan, run, config, clock, new_id, on_attempt).run()


@dataclasses.dataclass(frozen=True)
class _Attempted:
    """A step's attempt, before it is judged: its answer and when it started."""

    answer: Done | Failed
    started: datetime


class _Replay:
    def __init__(
        self,
        plan: FlowPlan,
        run: LoadedRun,
        config: ReplayConfig,
        clock: Callable[[], datetime],
        new_id: Callable[[], UUID],
        on_attempt: Callable[[StepRecord], None],
    ) -> None:
        self.plan = plan
        self.run_ = run
        self.config = config
        self.clock = clock
        self.new_id = new_id
        self.on_attempt = on_attempt
        self.pending: dict[str, StepRecord] = {}
        self.response: dict[str, Any] | None = None
        self.responded = False

    def take(self) -> Writes:
        """The writes made since the last effect, handed over with the next one."""
        writes = Writes(tuple(self.pending.values()), self.response, self.responded)
        self.pending.clear()
        self.response, self.responded = None, False
        return writes

    def run(self) -> Walk:
        output = yield from self.steps(self.plan.definition.steps, Scope())
        if isinstance(output, Abandon):
            return output  # asked for right after an effect: nothing is pending
        if isinstance(output, Finish | Reschedule):
            return dataclasses.replace(output, writes=self.take())
        return Finish(status=RunStatus.SUCCEEDED, output=output, writes=self.take())

    def steps(self, steps: list[Step], scope: Scope) -> _Steps:
        output = None
        for step in steps:
            output = yield from self.step(step, scope)
            if _ends(output):
                return output
        return output

    def step(self, step: Step, scope: Scope) -> _Steps:
        key = scope.prefix + step.id
        recorded = self.run_.steps.get(key)
        if recorded is not None and (
            recorded.status is StepStatus.SUCCEEDED
            or (step.continue_on_error and not recorded.status.unfinished)
        ):
            scope.see(step.id, recorded)
            return recorded.output
        attempts = recorded.attempts if recorded and recorded.status is StepStatus.RETRYING else 0
        while True:
            attempts += 1
            started = self.clock()
            answer = yield from self.attempt(step, key, scope)
            if _ends(answer):
                return answer
            record = self.record(step, key, answer, attempts, started)
            if isinstance(answer, Done):
                self.pending[key] = record
                scope.see(step.id, record)
                return answer.output
            if answer.cut_short:
                self.pending[key] = record
                return Finish(status=RunStatus.TIMEOUT, error=f"step '{key}': {answer.error}")
            if step.retry is not None and attempts < step.retry.max_attempts:
                self.pending[key] = dataclasses.replace(record, status=StepStatus.RETRYING)
                if step.retry.backoff_seconds > 0:
                    return Reschedule(delay_seconds=step.retry.backoff_seconds)
                continue
            self.pending[key] = record
            scope.see(step.id, record)
            if step.continue_on_error:
                return None
            status = _RUN_STATUS_FOR_STEP.get(answer.status, RunStatus.FAILED)
            return Finish(status=status, error=f"step '{key}' failed: {answer.error}")

    def record(
        self, step: Step, key: str, answer: Done | Failed, attempts: int, started: datetime
    ) -> StepRecord:
        """The record of one attempt of a step (told to `on_attempt`)."""
        failed = answer if isinstance(answer, Failed) else None
        record = StepRecord(
            key=key,
            step_id=step.id,
            type=step.type,
            status=failed.status if failed else StepStatus.SUCCEEDED,
            attempts=attempts,
            output=answer.output,
            error=failed.error if failed else None,
            stdout=answer.stdout,
            stderr=answer.stderr,
            started_at=started,
            finished_at=self.clock(),
        )
        self.on_attempt(record)
        return record

    def attempt(self, step: Step, key: str, scope: Scope) -> _Steps:
        """One attempt of `step`: a `Done` or `Failed` answer, or an outcome."""
        if isinstance(step, CodeStep):
            return (yield from self.code(step, key, scope))
        if isinstance(step, HttpStep):
            return (yield from self.http(step, key, scope))
        if isinstance(step, BranchStep):
            return (yield from self.branch(step, scope))
        if isinstance(step, LoopStep):
            return (yield from self.loop(step, key, scope))
        if isinstance(step, DelayStep):
            return (yield from self.delay(step, key, scope))
        if isinstance(step, WaitForWebhookStep):
            return (yield from self.wait_for_webhook(step, key))
        if isinstance(step, CallFlowStep):
            return (yield from self.call_flow(step, key, scope))
        return self.respond(step, scope)

    # --- steps with effects ------------------------------------------------------------------

    def code(self, step: CodeStep, key: str, scope: Scope) -> _Steps:
        context = self.context(scope)
        if step.input is not None:
            given = self.render(step.input, context)
            if isinstance(given, Failed):
                return given
        else:
            given = {name: context[name] for name in ("trigger", "steps", "flow", "run")}
            given.update(scope.variables)
        ctx = {
            "run_id": str(self.run_.id),
            "flow": context["flow"],
            "step_id": step.id,
            "step_key": key,
            "resume_urls": context["resume_urls"],
        }
        timeout = step.timeout_seconds or self.config.step_timeout_seconds
        remaining = self.remaining_seconds()
        if remaining <= 0:
            return _not_started()
        answer = yield RunCode(
            key=key,
            code=step.code,
            input=given,
            ctx=ctx,
            requirements=tuple(step.requirements),
            timeout_seconds=max(0.001, min(timeout, remaining)),
            writes=self.take(),
        )
        if isinstance(answer, Broken):
            return Abandon(error=f"sandbox failure in step '{key}': {answer.error}")
        if (
            isinstance(answer, Failed)
            and answer.status is StepStatus.TIMEOUT
            and remaining < timeout
        ):
            # The sandbox's wall time was the run's deadline, not the step's own timeout.
            return _stopped(stdout=answer.stdout, stderr=answer.stderr)
        return answer

    def http(self, step: HttpStep, key: str, scope: Scope) -> _Steps:
        context = self.context(scope)
        url, headers, body = (self.render(v, context) for v in (step.url, step.headers, step.body))
        for rendered in (url, headers, body):
            if isinstance(rendered, Failed):
                return rendered
        if not isinstance(url, str):
            return Failed(StepStatus.FAILED, f"url must render to a string, got {url!r}")
        timeout = step.timeout_seconds or HTTP_TIMEOUT_SECONDS
        remaining = self.remaining_seconds()
        if remaining <= 0:
            return _not_started()
        answer = yield SendHttp(
            key=key,
            method=step.method,
            url=url,
            headers={str(k): str(v) for k, v in headers.items()},
            body=body,
            timeout_seconds=min(timeout, remaining),
            writes=self.take(),
        )
        if (
            isinstance(answer, Failed)
            and answer.output is None
            and remaining < timeout
            and self.out_of_time()
        ):
            # No response before the run's deadline, which bounded the request.
            return _stopped()
        return answer

    def delay(self, step: DelayStep, key: str, scope: Scope) -> _Steps:
        if step.seconds is not None:
            seconds = step.seconds
        else:
            until = self.render(step.until, self.context(scope))
            if isinstance(until, Failed):
                return until
            try:
                moment = datetime.fromisoformat(str(until))
            except ValueError:
                return Failed(StepStatus.FAILED, f"until must be an ISO 8601 time, got {until!r}")
            if moment.tzinfo is None:
                return Failed(StepStatus.FAILED, f"until has no time zone: {until!r}")
            seconds = (moment - self.clock()).total_seconds()
        waitpoint = yield from self.wait(step, key, "delay", seconds)
        waited_until = waitpoint.resume_at.isoformat() if waitpoint.resume_at else None
        return Done({"resumed_at": self.clock().isoformat(), "waited_until": waited_until})

    def wait_for_webhook(self, step: WaitForWebhookStep, key: str) -> _Steps:
        waitpoint = yield from self.wait(step, key, "webhook", step.timeout_seconds)
        if not waitpoint.completed:
            return Failed(
                StepStatus.TIMEOUT, f"not resumed within {step.timeout_seconds:g} seconds"
            )
        return Done(waitpoint.payload)

    def call_flow(self, step: CallFlowStep, key: str, scope: Scope) -> _Steps:
        if key not in self.run_.waitpoints:
            given = self.render(step.input, self.context(scope))
            if isinstance(given, Failed):
                return given
            child = self.new_id()
            answer = yield StartChild(
                key=key,
                flow=step.flow,
                input=given,
                child_run_id=child,
                wait=step.wait,
                paused=self.paused(step, key),
                started=dataclasses.replace(
                    self.paused(step, key),
                    status=StepStatus.SUCCEEDED,
                    output={"run_id": str(child)},
                    finished_at=self.clock(),
                ),
                writes=self.take(),
            )
            if not isinstance(answer, ChildStarted):
                return answer  # no such flow
            return Done({"run_id": str(answer.run_id)})
        waitpoint = yield from self.wait(step, key, "subflow", None)
        outcome = waitpoint.payload or {}
        status = outcome.get("status")
        if status == RunStatus.SUCCEEDED:
            response = outcome.get("response")
            return Done(response.get("body") if response else outcome.get("output"))
        step_status = StepStatus.TIMEOUT if status == RunStatus.TIMEOUT else StepStatus.FAILED
        return Failed(
            step_status,
            f"child run {outcome.get('run_id')} of flow '{step.flow}' ended {status}: "
            f"{outcome.get('error')}",
            output=outcome,
        )

    def wait(
        self, step: Step, key: str, kind: str, resume_in_seconds: float | None
    ) -> Generator[Effect, Answer, Waitpoint]:
        """The step's waitpoint once it is completed or due; the run pauses until then."""
        known = self.run_.waitpoints.get(key)
        if known is not None and known.completed:
            return known
        answer = yield Wait(
            key=key,
            kind=kind,
            resume_in_seconds=resume_in_seconds,
            paused=self.paused(step, key),
            expires=not isinstance(step, DelayStep),
            writes=self.take(),
        )
        assert isinstance(answer, Waitpoint), answer
        return answer

    def paused(self, step: Step, key: str) -> StepRecord:
        return StepRecord(
            key=key,
            step_id=step.id,
            type=step.type,
            status=StepStatus.PAUSED,
            started_at=self.clock(),
        )

    # --- steps without effects ---------------------------------------------------------------

    def branch(self, step: BranchStep, scope: Scope) -> _Steps:
        try:
            taken = templating.evaluate_condition(step.condition, self.context(scope))
        except templating.TemplateError as exc:
            return Failed(StepStatus.FAILED, str(exc))
        output = yield from self.steps(step.then if taken else step.else_, scope)
        if _ends(output):
            return output
        return Done({"branch": "then" if taken else "else", "output": output})

    def loop(self, step: LoopStep, key: str, scope: Scope) -> _Steps:
        items = self.render(step.items, self.context(scope))
        if isinstance(items, Failed):
            return items
        if not isinstance(items, list):
            return Failed(StepStatus.FAILED, f"items must be a list, got {type(items).__name__}")
        if len(items) > MAX_LOOP_ITEMS:
            return Failed(
                StepStatus.FAILED, f"{len(items)} items; a loop takes at most {MAX_LOOP_ITEMS}"
            )
        outputs = []
        for index, item in enumerate(items):
            output = yield from self.steps(step.steps, scope.iteration(key, step.id, item, index))
            if _ends(output):
                return output
            outputs.append(output)
        return Done(outputs)

    def respond(self, step: RespondStep, scope: Scope) -> Done | Failed:
        context = self.context(scope)
        headers, body = self.render(step.headers, context), self.render(step.body, context)
        for rendered in (headers, body):
            if isinstance(rendered, Failed):
                return rendered
        headers = {str(k): str(v) for k, v in headers.items()}
        for name, value in headers.items():
            if any(c in value for c in "\r\n\x00"):
                return Failed(
                    StepStatus.FAILED,
                    f"header {name!r} renders to a value with a line break or NUL, "
                    "which cannot be sent",
                )
        self.response = {"status": step.status, "headers": headers, "body": body}
        self.responded = True
        return Done(self.response)

    # --- context and time --------------------------------------------------------------------

    def context(self, scope: Scope) -> dict[str, Any]:
        return template_context(self.run_, self.plan, scope, self.config.public_url)

    @staticmethod
    def render(value: Any, context: Mapping[str, Any]) -> Any:
        """`value` rendered, or a `Failed` answer naming the template that failed."""
        try:
            return templating.render(value, context)
        except templating.TemplateError as exc:
            return Failed(StepStatus.FAILED, str(exc))

    def remaining_seconds(self) -> float:
        deadline = self.run_.deadline_at
        if deadline is None:
            return self.config.run_timeout_seconds
        return (deadline - self.clock()).total_seconds()

    def out_of_time(self) -> bool:
        deadline = self.run_.deadline_at
        return deadline is not None and self.clock() >= deadline


def _ends(value: Any) -> bool:
    """Whether a part of the walk ended the execution instead of producing an output."""
    return isinstance(value, Finish | Reschedule | Abandon)


def _not_started() -> Failed:
    return Failed(StepStatus.TIMEOUT, f"not started: {RUN_TIMEOUT_MESSAGE}", cut_short=True)


def _stopped(stdout: str | None = None, stderr: str | None = None) -> Failed:
    return Failed(
        StepStatus.TIMEOUT,
        f"stopped: {RUN_TIMEOUT_MESSAGE}",
        stdout=stdout,
        stderr=stderr,
        cut_short=True,
    )
