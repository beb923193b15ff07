"""The replay: a pure walk over a run's flow that decides what happens next.

Execution is a replay. Every step instance has a key (its id; inside a loop, prefixed by
the iterations: ``each[2].notify``) and maybe a recorded result; a walk goes through the
flow from the top, takes recorded results as they are and asks for what is missing. So a
run continued after a pause, a retry backoff or a crash picks up exactly where its records
end. The walk does no I/O: it yields effects (`worker.flow.effects`) and is sent their
answers; it ends by returning an outcome. Time comes from the clock it is given. What each
step type asks for is in `worker.flow.step_types`.

Invariants kept here:

* A step with effects outside the run (code, http, call_flow, a pause) is asked for with
  every result before it attached to the effect (`Effect.writes`), so it starts only after
  they are committed. Results of steps without effects (branch, loop, respond) ride along
  with the next commit: a crash before it is indistinguishable from a crash just before
  their write, and re-running them changes nothing outside.
* A step is skipped on replay only when it succeeded, or failed and was tolerated
  (`continue_on_error`); a paused or retrying step is run (again).
* An attempt the run's deadline cut short ends the run as TIMEOUT, whatever the step's
  retry or continue_on_error say.
* What is recorded, seen by later steps and ends the run is the record, in which the
  flow's secrets are masked: an answer's own values go no further than their record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID, uuid4

from app.flows.definition import (
    BranchStep,
    CallFlowStep,
    CodeStep,
    DelayStep,
    HttpStep,
    LoopStep,
    Step,
    WaitForWebhookStep,
)
from app.flows.model import LoadedRun, RunStatus, StepRecord, StepStatus, Writes
from worker.flow.context import NOTHING_NAMED, FlowPlan, Named, Scope
from worker.flow.effects import (
    Abandon,
    Answer,
    Done,
    Effect,
    Failed,
    Finish,
    Outcome,
    Reschedule,
    Settle,
    Stopped,
)
from worker.flow.step_types import Part, ReplayConfig, StepTypes, ends

Walk: TypeAlias = Generator[Effect, Answer, Outcome]

_RUN_STATUS_FOR_STEP = {
    StepStatus.TIMEOUT: RunStatus.TIMEOUT,
    StepStatus.MEMORY_LIMIT_EXCEEDED: RunStatus.MEMORY_LIMIT_EXCEEDED,
    StepStatus.LOG_SIZE_EXCEEDED: RunStatus.LOG_SIZE_EXCEEDED,
    StepStatus.INTERNAL_ERROR: RunStatus.INTERNAL_ERROR,
    StepStatus.CANCELED: RunStatus.CANCELED,
}


def walk(
    plan: FlowPlan,
    run: LoadedRun,
    config: ReplayConfig,
    *,
    clock: Callable[[], datetime],
    new_id: Callable[[], UUID] = uuid4,
    on_attempt: Callable[[StepRecord], None] = lambda _record: None,
    named: Named = NOTHING_NAMED,
) -> Walk:
    """The walk over `run`: send each yielded effect its answer; it returns the outcome.

    `clock` is the database's time; `new_id` names child runs; `on_attempt` is told of the
    record of every attempt (the step-duration metric); `named` holds the secrets and vars
    the flow names."""
    return _Replay(plan, run, config, clock, new_id, on_attempt, named).run()


class _Replay(StepTypes):
    def __init__(
        self,
        plan: FlowPlan,
        run: LoadedRun,
        config: ReplayConfig,
        clock: Callable[[], datetime],
        new_id: Callable[[], UUID],
        on_attempt: Callable[[StepRecord], None],
        named: Named,
    ) -> None:
        self.plan = plan
        self.named = named
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
        if isinstance(output, Finish | Reschedule | Settle):
            return dataclasses.replace(output, writes=self.take())
        return Finish(status=RunStatus.SUCCEEDED, output=output, writes=self.take())

    def steps(self, steps: list[Step], scope: Scope) -> Part:
        output = None
        for step in steps:
            output = yield from self.step(step, scope)
            if ends(output):
                return output
        return output

    def step(self, step: Step, scope: Scope) -> Part:
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
            if ends(answer):
                return answer
            if isinstance(answer, Stopped):
                error = f"stopped: the run ended ({answer.run_status}) while it ran"
                failed = Failed(answer.step_status, error)
                self.pending[key] = self.record(step, key, failed, attempts, started)
                return Settle()
            record = self.record(step, key, answer, attempts, started)
            if isinstance(answer, Done):
                self.pending[key] = record
                scope.see(step.id, record)
                return record.output
            if answer.cut_short:
                self.pending[key] = record
                return Finish(status=RunStatus.TIMEOUT, error=f"step '{key}': {record.error}")
            if step.retry is not None and attempts < step.retry.max_attempts and not answer.final:
                self.pending[key] = dataclasses.replace(record, status=StepStatus.RETRYING)
                if step.retry.backoff_seconds > 0:
                    return Reschedule(delay_seconds=step.retry.backoff_seconds)
                continue
            self.pending[key] = record
            scope.see(step.id, record)
            if step.continue_on_error:
                return None
            status = _RUN_STATUS_FOR_STEP.get(answer.status, RunStatus.FAILED)
            return Finish(status=status, error=f"step '{key}' failed: {record.error}")

    def record(
        self, step: Step, key: str, answer: Done | Failed, attempts: int, started: datetime
    ) -> StepRecord:
        """The record of one attempt of a step (told to `on_attempt`), the flow's secrets
        masked in it."""
        failed = answer if isinstance(answer, Failed) else None
        mask = self.named.masker
        record = StepRecord(
            key=key,
            step_id=step.id,
            type=step.type,
            status=failed.status if failed else StepStatus.SUCCEEDED,
            attempts=attempts,
            output=mask.value(answer.output),
            error=mask.text(failed.error) if failed else None,
            stdout=None if answer.stdout is None else mask.text(answer.stdout),
            stderr=None if answer.stderr is None else mask.text(answer.stderr),
            started_at=started,
            finished_at=self.clock(),
        )
        self.on_attempt(record)
        return record

    def attempt(self, step: Step, key: str, scope: Scope) -> Part:
        """One attempt of `step`: a `Done` or `Failed` answer, or an outcome."""
        if isinstance(step, CodeStep):
            return (yield from self.code(step, key, scope))
        if isinstance(step, HttpStep):
            return (yield from self.http(step, key, scope))
        if isinstance(step, BranchStep):
            return (yield from self.branch(step, key, scope))
        if isinstance(step, LoopStep):
            return (yield from self.loop(step, key, scope))
        if isinstance(step, DelayStep):
            return (yield from self.delay(step, key, scope))
        if isinstance(step, WaitForWebhookStep):
            return (yield from self.wait_for_webhook(step, key))
        if isinstance(step, CallFlowStep):
            return (yield from self.call_flow(step, key, scope))
        return (yield from self.respond(step, key, scope))
