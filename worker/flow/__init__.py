"""The flow engine: an `execute_run` job runs its run's steps until the run ends or pauses.

Shaped as River shapes a job's life: a pure interpreter decides (`replay`), performers act
(`performers`), one session writes (`session`). This module drives them: it loads the run
and its flow (parsed once per version), walks the replay, hands each effect to the session
or a performer, and ends the execution with the outcome. The job is settled by the session
in the transaction that records what the execution did; only a lost lease or a broken
sandbox leaves the job to the executor (retried).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import pydantic

from app import logs, metrics
from app.flows import parse_flow
from app.flows.control import RunBudget
from app.flows.model import LoadedRun, RunStatus, StepRecord
from app.jobs import Job
from app.run_log import Transition, ended, transition
from app.settings import Settings
from worker.executor import SETTLED, RetryableJobError, Settled
from worker.flow import named, replay, traces
from worker.flow.context import FlowPlan
from worker.flow.effects import (
    Abandon,
    Answer,
    ChildStarted,
    Effect,
    Finish,
    Outcome,
    Render,
    Reschedule,
    RunCode,
    SendHttp,
    Settle,
    StartChild,
    Stopped,
    Wait,
)
from worker.flow.performers import Interrupted, Performers
from worker.flow.session import RunSession, Stop
from worker.flow.step_types import ReplayConfig
from worker.services import WorkerServices

PLAN_CACHE_SIZE = 256


class ExecutePayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    run_id: UUID


class LeaseLost(RetryableJobError):
    def __init__(self, job: Job) -> None:
        super().__init__(
            f"lease on job {job.id} attempt {job.attempt} lost; another worker owns it"
        )


class FlowEngine:
    """The `execute_run` job handler."""

    def __init__(
        self,
        settings: Settings,
        services: WorkerServices,
        performers: Performers,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock` replaces the database's clock, for the run store and the replay alike
        (tests pass time instead of waiting)."""
        self.settings = settings
        self.services = services
        self.performers = performers
        self.clock = clock
        self.config = ReplayConfig.of(settings)
        self._plans: OrderedDict[int, FlowPlan] = OrderedDict()

    async def __call__(self, job: Job) -> Settled:
        payload = ExecutePayload.model_validate(job.payload)
        session = RunSession(
            self.services,
            job,
            payload.run_id,
            budget=RunBudget.of(self.settings),
            paused_ttl_seconds=self.settings.paused_run_ttl,
            now=self.clock or (lambda: None),
        )
        with self.services.cancels.watch(str(payload.run_id)) as canceled:
            ended = await self._execute(session, canceled)
        if ended is Stop.LOST:
            raise LeaseLost(job)
        if isinstance(ended, Abandon):
            raise RetryableJobError(ended.error, delay_seconds=ended.delay_seconds)
        return SETTLED

    async def _execute(self, session: RunSession, canceled: asyncio.Event) -> Stop | Abandon | None:
        began = time.time_ns()
        run = await session.begin()
        if isinstance(run, Stop):
            return run
        logs.bind(flow=run.flow_name, project=run.project_id)
        transition(Transition.RESUMED if run.waitpoints else Transition.STARTED, run.id)
        with traces.execution(run, session.job, began):
            return await self._walk(session, run, canceled)

    async def _walk(
        self, session: RunSession, run: LoadedRun, canceled: asyncio.Event
    ) -> Stop | Abandon | None:
        plan = await self._plan(session, run.flow_version_id)
        clock = self.clock or _Clock(run.db_now).now
        observe = traces.observing(functools.partial(_observe, session.metric_labels))
        names = await named.load(self.services.pool, self.settings, run.project_id, plan.names)
        walk = replay.walk(plan, run, self.config, clock=clock, on_attempt=observe, named=names)
        try:
            effect = next(walk)
            while True:
                performed = await self._perform(session, run, effect, canceled)
                if isinstance(performed, Stop | Abandon):
                    return performed
                effect = walk.send(performed)
        except StopIteration as done:
            outcome: Outcome = done.value
        finally:
            walk.close()
        return await self._end(session, outcome, clock)

    async def _perform(
        self, session: RunSession, run: LoadedRun, effect: Effect, canceled: asyncio.Event
    ) -> Answer | Stop | Abandon:
        if isinstance(effect, Render):
            return await self.performers.render(effect)
        if isinstance(effect, Wait):
            waited = await session.wait(effect)
            if waited is Stop.PAUSED:
                transition(Transition.PAUSED, run.id, waits_for=effect.kind, step=effect.key)
            return waited
        if isinstance(effect, StartChild):
            return _started(run.id, effect, await session.start_child(run.project_id, effect))
        stop = await session.commit(effect.writes)
        if stop is not None:
            return stop
        answer: Answer | Interrupted
        assert isinstance(effect, RunCode | SendHttp), effect
        with traces.step(effect) as answered:
            if isinstance(effect, RunCode):
                answer = await self.performers.run_code(str(run.project_id), effect, canceled)
            else:
                answer = await self.performers.send_http(effect, canceled)
            answered(answer)
        if not isinstance(answer, Interrupted):
            return answer
        status = await session.status()
        if status is RunStatus.RUNNING:
            # A stale notification (a retried run, say): the step is run again.
            return Abandon(error="step interrupted by a cancel notification", delay_seconds=0)
        return Stopped(status)

    async def _end(
        self, session: RunSession, outcome: Outcome, clock: Callable[[], datetime]
    ) -> Stop | Abandon | None:
        if isinstance(outcome, Abandon):
            return outcome
        if isinstance(outcome, Settle):
            return await session.settle(outcome.writes)
        if isinstance(outcome, Reschedule):
            run_at = clock() + timedelta(seconds=outcome.delay_seconds)
            return await session.reschedule(outcome.writes, run_at)
        assert isinstance(outcome, Finish), outcome
        finished = await session.finish(outcome)
        if isinstance(finished, Stop):
            return finished
        if finished.reply is not None:  # None: the run had ended otherwise (a cancel)
            ended(session.run_id, outcome.status, outcome.error)
        return None

    async def _plan(self, session: RunSession, version_id: int) -> FlowPlan:
        """The parsed flow version (immutable: cached by id, least recently used out)."""
        cached = self._plans.get(version_id)
        if cached is not None:
            self._plans.move_to_end(version_id)
            return cached
        plan = FlowPlan(parse_flow(await session.definition(version_id)))
        self._plans[version_id] = plan
        if len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return plan


def _started(run_id: UUID, effect: StartChild, answer: Answer | Stop) -> Answer | Stop:
    """Log what a call_flow step committed: the child's run, the parent's pause."""
    child = effect.child_run_id
    if answer is Stop.PAUSED or isinstance(answer, ChildStarted):
        transition(Transition.ACCEPTED, child, flow=effect.flow, via="call_flow", parent=run_id)
    if answer is Stop.PAUSED:
        transition(Transition.PAUSED, run_id, waits_for="subflow", step=effect.key, child=child)
    return answer


class _Clock:
    """The database's clock, as of the execution's start plus the time since."""

    def __init__(self, db_now: datetime) -> None:
        self._db_now = db_now
        self._start = time.monotonic()

    def now(self) -> datetime:
        return self._db_now + timedelta(seconds=time.monotonic() - self._start)


def _observe(labels: metrics.Labels, record: StepRecord) -> None:
    if record.started_at is not None and record.finished_at is not None:
        seconds = (record.finished_at - record.started_at).total_seconds()
        status = str(record.status)
        metrics.STEP_DURATION.labels(type=record.type, status=status, **labels).observe(seconds)
