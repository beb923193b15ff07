"""What each step type asks for, and how its answer becomes the step's output.

Part of the replay (`worker.flow.replay`), which walks the flow, keeps the records and
judges each attempt; the methods here are its step types, and do no I/O either: a step with
effects yields one (`worker.flow.effects`) with the writes made before it, and is sent the
answer. Every attempt is bounded by the run's deadline: one it cut short answers with
`Failed(cut_short=True)`, which ends the run as TIMEOUT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

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
from app.flows.structure import MAX_LOOP_ITEMS
from app.settings import Settings
from worker.flow import rendering
from worker.flow.code_context import code_ctx
from worker.flow.context import FlowPlan, Named, Scope, idempotency_key, template_context
from worker.flow.effects import (
    Abandon,
    Answer,
    Broken,
    ChildStarted,
    Done,
    Effect,
    Failed,
    Finish,
    Reschedule,
    RunCode,
    SendHttp,
    Settle,
    StartChild,
    Wait,
)

HTTP_TIMEOUT_SECONDS = 30.0
RUN_TIMEOUT_MESSAGE = "the run ran longer than SLUICE_RUN_TIMEOUT_SECONDS"
IDEMPOTENCY_HEADER = "Idempotency-Key"

Part: TypeAlias = Generator[Effect, Answer, Any]
"""A part of the walk: returns an output (an answer, for one attempt of a step), or an
`Outcome` when the run ends there."""


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    public_url: str
    step_timeout_seconds: float
    """A code step's wall time unless it sets its own."""
    run_timeout_seconds: float
    """The budget of a run that has no deadline (it is timed out by maintenance anyway)."""
    max_call_depth: int = 16
    """A run this deep (calls below a webhook's run) cannot call another flow."""
    template_max_chars: int = 1024 * 1024

    @classmethod
    def of(cls, settings: Settings) -> ReplayConfig:
        return cls(
            settings.resolved_public_url,
            settings.step_timeout_seconds,
            settings.run_timeout_seconds,
            settings.max_call_depth,
            settings.template_max_output_chars,
        )


class StepTypes:
    """The step types of a replay; the replay supplies the walk (`steps`) and the writes
    (`take`)."""

    plan: FlowPlan
    run_: LoadedRun
    config: ReplayConfig
    clock: Callable[[], datetime]
    new_id: Callable[[], UUID]
    response: dict[str, Any] | None
    responded: bool
    named: Named

    def steps(self, steps: list[Step], scope: Scope) -> Part:
        raise NotImplementedError

    def take(self) -> Writes:
        raise NotImplementedError

    # --- steps with effects ------------------------------------------------------------------

    def code(self, step: CodeStep, key: str, scope: Scope) -> Part:
        context = self.context(scope)
        if step.input is not None:
            given = yield from self.render(step.input, context, key, "input")
            if isinstance(given, Failed):
                return given
        else:
            given = {name: context[name] for name in ("trigger", "steps", "flow", "run")}
            given.update(scope.variables)
        sent = code_ctx(self.run_, self.plan, step, key, context, self.named)
        if isinstance(sent, Failed):
            return sent
        ctx, network = sent
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
            network=network,
            writes=self.take(),
        )
        if isinstance(answer, Broken):
            error = self.named.masker.text(answer.error)
            return Abandon(error=f"sandbox failure in step '{key}': {error}")
        if (
            isinstance(answer, Failed)
            and answer.status is StepStatus.TIMEOUT
            and remaining < timeout
        ):
            # The sandbox's wall time was the run's deadline, not the step's own timeout.
            return _stopped(stdout=answer.stdout, stderr=answer.stderr)
        return answer

    def http(self, step: HttpStep, key: str, scope: Scope) -> Part:
        context = self.context(scope)
        if self.plan.names.secrets:
            if self.named.unavailable is not None:
                return Failed(StepStatus.FAILED, self.named.unavailable, final=True)
            context["secrets"] = self.named.secrets
        fields = {"url": step.url, "headers": step.headers, "body": step.body}
        rendered = yield from self.render_fields(fields, context, key)
        if isinstance(rendered, Failed):
            return rendered
        url, headers, body = rendered["url"], rendered["headers"], rendered["body"]
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
            headers=self.http_headers(step, key, headers),
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

    def delay(self, step: DelayStep, key: str, scope: Scope) -> Part:
        if step.seconds is not None:
            seconds = step.seconds
        else:
            until = yield from self.render(step.until, self.context(scope), key, "until")
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

    def wait_for_webhook(self, step: WaitForWebhookStep, key: str) -> Part:
        waitpoint = yield from self.wait(step, key, "webhook", step.timeout_seconds)
        if not waitpoint.completed:
            return Failed(
                StepStatus.TIMEOUT, f"not resumed within {step.timeout_seconds:g} seconds"
            )
        return Done(waitpoint.payload)

    def call_flow(self, step: CallFlowStep, key: str, scope: Scope) -> Part:
        if key not in self.run_.waitpoints:
            if self.run_.depth >= self.config.max_call_depth:
                return Failed(
                    StepStatus.FAILED,
                    f"this run is {self.run_.depth} calls deep; SLUICE_MAX_CALL_DEPTH "
                    f"({self.config.max_call_depth}) allows no deeper call",
                )
            given = yield from self.render(step.input, self.context(scope), key, "input")
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

    def branch(self, step: BranchStep, key: str, scope: Scope) -> Part:
        taken = yield from rendering.condition(
            step.condition, self.context(scope), key=key, max_chars=self.config.template_max_chars
        )
        if isinstance(taken, Failed):
            return taken
        output = yield from self.steps(step.then if taken else step.else_, scope)
        if ends(output):
            return output
        return Done({"branch": "then" if taken else "else", "output": output})

    def loop(self, step: LoopStep, key: str, scope: Scope) -> Part:
        items = yield from self.render(step.items, self.context(scope), key, "items")
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
            if ends(output):
                return output
            outputs.append(output)
        return Done(outputs)

    def respond(self, step: RespondStep, key: str, scope: Scope) -> Part:
        context = self.context(scope)
        rendered = yield from self.render_fields(
            {"headers": step.headers, "body": step.body}, context, key
        )
        if isinstance(rendered, Failed):
            return rendered
        headers, body = rendered["headers"], rendered["body"]
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

    def http_headers(self, step: HttpStep, key: str, rendered: dict[str, Any]) -> dict[str, str]:
        headers = {str(name): str(value) for name, value in rendered.items()}
        named = {name.lower() for name in headers}
        if step.idempotency_key and IDEMPOTENCY_HEADER.lower() not in named:
            headers[IDEMPOTENCY_HEADER] = idempotency_key(self.run_.id, key)
        return headers

    # --- context and time --------------------------------------------------------------------

    def context(self, scope: Scope) -> dict[str, Any]:
        config = self.config
        return template_context(self.run_, self.plan, scope, config.public_url, self.named.vars)

    def render(self, value: Any, context: Mapping[str, Any], key: str, field: str) -> Part:
        """`value` rendered, or a `Failed` answer naming the field and template that failed."""
        max_chars = self.config.template_max_chars
        return (
            yield from rendering.value(value, context, key=key, field=field, max_chars=max_chars)
        )

    def render_fields(self, fields: dict[str, Any], context: Mapping[str, Any], key: str) -> Part:
        """Each of `fields` rendered (by name), or the first `Failed` answer."""
        rendered: dict[str, Any] = {}
        for field, value in fields.items():
            out = yield from self.render(value, context, key, field)
            if isinstance(out, Failed):
                return out
            rendered[field] = out
        return rendered

    def remaining_seconds(self) -> float:
        deadline = self.run_.deadline_at
        if deadline is None:
            return self.config.run_timeout_seconds
        return (deadline - self.clock()).total_seconds()

    def out_of_time(self) -> bool:
        deadline = self.run_.deadline_at
        return deadline is not None and self.clock() >= deadline


def ends(value: Any) -> bool:
    """Whether a part of the walk ended the execution instead of producing an output."""
    return isinstance(value, Finish | Reschedule | Abandon | Settle)


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
