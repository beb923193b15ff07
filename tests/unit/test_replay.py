"""The replay, walked over recorded step results with no database: what it asks for, in
which order, with which writes attached, and how the walk ends.

Each case gives a flow, what earlier executions recorded (step results, waitpoints), and
how the world answers each effect; the walk is driven as the engine drives it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from app.flows import parse_flow, templating
from app.flows.model import LoadedRun, RunStatus, StepRecord, StepStatus, Waitpoint
from worker.flow import rendering, replay
from worker.flow.context import FlowPlan, idempotency_key
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
    Render,
    Reschedule,
    RunCode,
    SendHttp,
    Settle,
    StartChild,
    Stopped,
    Wait,
)
from worker.flow.step_types import HTTP_TIMEOUT_SECONDS, ReplayConfig

T0 = datetime(2030, 1, 1, tzinfo=UTC)
RUN = UUID("00000000-0000-4000-8000-000000000001")
CHILD = UUID("00000000-0000-4000-8000-00000000000c")
CONFIG = ReplayConfig("http://sluice.test", step_timeout_seconds=60, run_timeout_seconds=600)
PAUSE = object()
"""What the world answers when the effect pauses the run: the walk is closed."""

World = Callable[[Effect], Any]


@dataclass
class Walked:
    effects: list[Effect] = field(default_factory=list)
    outcome: Outcome | None = None
    """None: the walk was closed at a pause."""
    attempts: list[StepRecord] = field(default_factory=list)
    renders: list[Render] = field(default_factory=list)
    """Templates handed to a render process (answered here, in this process)."""

    @property
    def asked(self) -> list[tuple[str, str]]:
        return [(type(effect).__name__, effect.key) for effect in self.effects]

    @property
    def finish(self) -> Finish:
        assert isinstance(self.outcome, Finish), self.outcome
        return self.outcome


def run_of(
    steps: dict[str, StepRecord] | None = None,
    waitpoints: dict[str, Waitpoint] | None = None,
    *,
    trigger_body: Any = None,
    deadline: datetime | None = T0 + timedelta(seconds=600),
    depth: int = 0,
) -> LoadedRun:
    return LoadedRun(
        id=RUN,
        project_id=1,
        flow_id=UUID(int=2),
        flow_name="f",
        flow_version_id=1,
        version=1,
        trigger={"body": trigger_body or {}, "headers": {}, "query": {}},
        resume_secret=b"s" * 32,
        parent_run_id=None,
        deadline_at=deadline,
        depth=depth,
        db_now=T0,
        steps=steps or {},
        waitpoints=waitpoints or {},
    )


def walk(steps: list[dict[str, Any]], world: World, run: LoadedRun | None = None) -> Walked:
    plan = FlowPlan(parse_flow({"name": "f", "steps": steps}))
    walked = Walked()
    gen = replay.walk(
        plan,
        run or run_of(),
        CONFIG,
        clock=lambda: T0,
        new_id=lambda: CHILD,
        on_attempt=walked.attempts.append,
    )
    try:
        effect = next(gen)
        while True:
            if isinstance(effect, Render):
                walked.renders.append(effect)
                effect = gen.send(render_here(effect))
                continue
            walked.effects.append(effect)
            answer = world(effect)
            if answer is PAUSE:
                gen.close()
                return walked
            effect = gen.send(answer)
    except StopIteration as done:
        walked.outcome = done.value
    return walked


def render_here(effect: Render) -> Done | Failed:
    """What a render process answers, rendered in this process (no budget but the output)."""
    compile_ = templating.compile_condition if effect.condition else templating.compile_template
    try:
        return Done(compile_(effect.source).evaluate(effect.context, effect.max_chars))
    except templating.TemplateError as exc:
        return rendering.failed(effect.field, str(exc), limit=False)


def answers(*given: Answer | object) -> World:
    """Answer the effects in order."""
    queue = list(given)
    return lambda _effect: queue.pop(0)


def record(key: str, status: StepStatus, output: Any = None, attempts: int = 1) -> StepRecord:
    return StepRecord(
        key=key,
        step_id=key.rsplit(".", 1)[-1],
        type="",
        status=status,
        attempts=attempts,
        output=output,
    )


def code(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "code", "code": "def run(input, ctx):\n    return 1", **fields}


def respond(body: Any, **fields: Any) -> dict[str, Any]:
    return {"id": "reply", "type": "respond", "body": body, **fields}


RETRY = {"retry": {"max_attempts": 3, "backoff_seconds": 5}}
LOOP = {"id": "each", "type": "loop", "items": [10, 20, 30], "steps": [code("work")]}


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[dict[str, Any]]
    world: World
    run: LoadedRun = field(default_factory=run_of)
    asked: list[tuple[str, str]] = field(default_factory=list)
    ends: tuple[Any, ...] | None = None
    """(outcome type, status, output or error); None: paused."""


CASES = [
    Case(
        "a fresh run asks for its code step, then ends with the reply as its output",
        [code("compute"), respond("{{ steps.compute.output }}")],
        answers(Done(41)),
        asked=[("RunCode", "compute")],
        ends=(Finish, RunStatus.SUCCEEDED, {"status": 200, "headers": {}, "body": 41}),
    ),
    Case(
        "a replay after a crash mid-loop asks only for the iterations not recorded",
        [LOOP],
        answers(Done("third")),
        run=run_of(
            {
                "each[0].work": record("each[0].work", StepStatus.SUCCEEDED, "first"),
                "each[1].work": record("each[1].work", StepStatus.SUCCEEDED, "second"),
            }
        ),
        asked=[("RunCode", "each[2].work")],
        ends=(Finish, RunStatus.SUCCEEDED, ["first", "second", "third"]),
    ),
    Case(
        "a failed attempt with a backoff reschedules the run",
        [code("flaky", **RETRY)],
        answers(Failed(StepStatus.FAILED, "boom")),
        asked=[("RunCode", "flaky")],
        ends=(Reschedule, None, None),
    ),
    Case(
        "a retrying step is attempted again on replay",
        [code("flaky", **RETRY)],
        answers(Done("ok")),
        run=run_of({"flaky": record("flaky", StepStatus.RETRYING, attempts=1)}),
        asked=[("RunCode", "flaky")],
        ends=(Finish, RunStatus.SUCCEEDED, "ok"),
    ),
    Case(
        "a step out of attempts fails the run",
        [code("flaky", **RETRY)],
        answers(Failed(StepStatus.FAILED, "boom")),
        run=run_of({"flaky": record("flaky", StepStatus.RETRYING, attempts=2)}),
        asked=[("RunCode", "flaky")],
        ends=(Finish, RunStatus.FAILED, "step 'flaky' failed: boom"),
    ),
    Case(
        "without a backoff the step is attempted again at once",
        [code("flaky", retry={"max_attempts": 2, "backoff_seconds": 0})],
        answers(Failed(StepStatus.FAILED, "boom"), Done("ok")),
        asked=[("RunCode", "flaky"), ("RunCode", "flaky")],
        ends=(Finish, RunStatus.SUCCEEDED, "ok"),
    ),
    Case(
        "a tolerated failure lets the next step see it",
        [
            {"id": "call", "type": "http", "url": "http://x.test", "continue_on_error": True},
            respond("{{ steps.call.status }}"),
        ],
        answers(Failed(StepStatus.FAILED, "refused")),
        asked=[("SendHttp", "call")],
        ends=(Finish, RunStatus.SUCCEEDED, {"status": 200, "headers": {}, "body": "FAILED"}),
    ),
    Case(
        "a tolerated failure is not attempted again on replay",
        [code("optional", continue_on_error=True), code("after")],
        answers(Done("after")),
        run=run_of({"optional": record("optional", StepStatus.FAILED)}),
        asked=[("RunCode", "after")],
        ends=(Finish, RunStatus.SUCCEEDED, "after"),
    ),
    Case(
        "a branch takes `then` when its condition holds",
        [
            {
                "id": "big",
                "type": "branch",
                "condition": "trigger.body.n > 1",
                "then": [code("yes")],
                "else": [code("no")],
            }
        ],
        answers(Done("yes")),
        run=run_of(trigger_body={"n": 2}),
        asked=[("RunCode", "yes")],
        ends=(Finish, RunStatus.SUCCEEDED, {"branch": "then", "output": "yes"}),
    ),
    Case(
        "a branch takes `else` otherwise",
        [
            {
                "id": "big",
                "type": "branch",
                "condition": "trigger.body.n > 1",
                "then": [code("yes")],
                "else": [code("no")],
            }
        ],
        answers(Done("no")),
        run=run_of(trigger_body={"n": 0}),
        asked=[("RunCode", "no")],
        ends=(Finish, RunStatus.SUCCEEDED, {"branch": "else", "output": "no"}),
    ),
    Case(
        "a wait for a webhook pauses a fresh run",
        [{"id": "approve", "type": "wait_for_webhook"}, code("after")],
        lambda _effect: PAUSE,
        asked=[("Wait", "approve")],
    ),
    Case(
        "a completed wait is not asked for again: its payload is the output",
        [{"id": "approve", "type": "wait_for_webhook"}, respond("{{ steps.approve.output }}")],
        answers(),
        run=run_of(
            {"approve": record("approve", StepStatus.PAUSED)},
            {"approve": Waitpoint("approve", "webhook", "completed", None, None, {"ok": 1})},
        ),
        ends=(Finish, RunStatus.SUCCEEDED, {"status": 200, "headers": {}, "body": {"ok": 1}}),
    ),
    Case(
        "a wait that came back due but not completed timed out",
        [{"id": "approve", "type": "wait_for_webhook", "timeout_seconds": 30}],
        answers(Waitpoint("approve", "webhook", "pending", T0, None, None)),
        asked=[("Wait", "approve")],
        ends=(Finish, RunStatus.TIMEOUT, "step 'approve' failed: not resumed within 30 seconds"),
    ),
    Case(
        "a call that waits starts the child and pauses",
        [{"id": "call", "type": "call_flow", "flow": "child"}],
        lambda _effect: PAUSE,
        asked=[("StartChild", "call")],
    ),
    Case(
        "a call that does not wait goes on with the child's id",
        [{"id": "call", "type": "call_flow", "flow": "child", "wait": False}],
        answers(ChildStarted(CHILD)),
        asked=[("StartChild", "call")],
        ends=(Finish, RunStatus.SUCCEEDED, {"run_id": str(CHILD)}),
    ),
    Case(
        "a resumed call takes the child's reply body",
        [{"id": "call", "type": "call_flow", "flow": "child"}],
        answers(),
        run=run_of(
            waitpoints={
                "call": Waitpoint(
                    "call",
                    "subflow",
                    "completed",
                    None,
                    CHILD,
                    {
                        "run_id": str(CHILD),
                        "status": "SUCCEEDED",
                        "output": 1,
                        "response": {"body": "from the child"},
                        "error": None,
                    },
                )
            }
        ),
        ends=(Finish, RunStatus.SUCCEEDED, "from the child"),
    ),
    Case(
        "a call to a missing flow fails the step",
        [{"id": "call", "type": "call_flow", "flow": "nosuch", "wait": False}],
        answers(Failed(StepStatus.FAILED, "no enabled flow named 'nosuch' in this project")),
        asked=[("StartChild", "call")],
        ends=(
            Finish,
            RunStatus.FAILED,
            "step 'call' failed: no enabled flow named 'nosuch' in this project",
        ),
    ),
    Case(
        "a broken sandbox abandons the execution (the job is retried)",
        [code("compute")],
        answers(Broken("the child died")),
        asked=[("RunCode", "compute")],
        ends=(Abandon, None, "sandbox failure in step 'compute': the child died"),
    ),
    Case(
        "a step stopped by a cancel elsewhere is recorded as canceled and the job let go",
        [code("long"), code("never")],
        answers(Stopped(RunStatus.CANCELED)),
        asked=[("RunCode", "long")],
        ends=(Settle, None, StepStatus.CANCELED),
    ),
    Case(
        "a step stopped by the run's timeout elsewhere is recorded as timed out",
        [{"id": "call", "type": "http", "url": "http://x.test"}],
        answers(Stopped(RunStatus.TIMEOUT)),
        asked=[("SendHttp", "call")],
        ends=(Settle, None, StepStatus.TIMEOUT),
    ),
    Case(
        "a template that fails fails its step without asking for anything",
        [code("compute", input="{{ nosuch.name }}")],
        answers(),
        ends=(
            Finish,
            RunStatus.FAILED,
            "step 'compute' failed: input: template '{{ nosuch.name }}': 'nosuch' is undefined",
        ),
    ),
    Case(
        "a step is not started after the run's deadline, whatever its retry says",
        [code("late", **RETRY)],
        answers(),
        run=run_of(deadline=T0 - timedelta(seconds=1)),
        ends=(
            Finish,
            RunStatus.TIMEOUT,
            "step 'late': not started: the run ran longer than SLUICE_RUN_TIMEOUT_SECONDS",
        ),
    ),
    Case(
        "a step cut short by the run's deadline times the run out",
        [code("slow", **RETRY)],
        answers(Failed(StepStatus.TIMEOUT, "wall time")),
        run=run_of(deadline=T0 + timedelta(seconds=5)),  # the step's own timeout is 60 s
        asked=[("RunCode", "slow")],
        ends=(
            Finish,
            RunStatus.TIMEOUT,
            "step 'slow': stopped: the run ran longer than SLUICE_RUN_TIMEOUT_SECONDS",
        ),
    ),
    Case(
        "a step that hits its own timeout is retried like any failure",
        [code("slow", timeout_seconds=1, **RETRY)],
        answers(Failed(StepStatus.TIMEOUT, "wall time")),
        asked=[("RunCode", "slow")],
        ends=(Reschedule, None, None),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_walk(case: Case) -> None:
    walked = walk(case.steps, case.world, case.run)
    assert walked.asked == case.asked
    if case.ends is None:
        assert walked.outcome is None
        return
    kind, status, detail = case.ends
    assert isinstance(walked.outcome, kind), walked.outcome
    if isinstance(walked.outcome, Finish):
        assert walked.outcome.status is status
        shown = walked.outcome.error if status is not RunStatus.SUCCEEDED else walked.outcome.output
        assert shown == detail
    elif isinstance(walked.outcome, Abandon):
        assert walked.outcome.error == detail
    elif isinstance(walked.outcome, Settle):
        (stopped,) = walked.outcome.writes.records
        assert stopped.status is detail


def test_results_of_steps_without_effects_ride_along_with_the_next_effect() -> None:
    walked = walk(
        [
            respond("early", status=202),
            {"id": "b", "type": "branch", "condition": "true", "then": [code("work")]},
        ],
        answers(Done("done")),
    )
    (effect,) = walked.effects
    assert isinstance(effect, RunCode)
    assert effect.writes.responded
    assert effect.writes.response == {"status": 202, "headers": {}, "body": "early"}
    assert [r.key for r in effect.writes.records] == ["reply"]
    # After the effect only what came since is written: the code step, then its branch.
    assert [r.key for r in walked.finish.writes.records] == ["work", "b"]
    assert not walked.finish.writes.responded


def test_a_reschedule_carries_the_retrying_record_and_the_backoff() -> None:
    walked = walk([code("flaky", **RETRY)], answers(Failed(StepStatus.FAILED, "boom")))
    assert isinstance(walked.outcome, Reschedule)
    assert walked.outcome.delay_seconds == 5
    (flaky,) = walked.outcome.writes.records
    assert (flaky.status, flaky.attempts, flaky.error) == (StepStatus.RETRYING, 1, "boom")
    # The metric hears of the attempt as it ended: FAILED.
    assert [(a.key, a.status) for a in walked.attempts] == [("flaky", StepStatus.FAILED)]


def test_a_pause_records_the_step_as_paused_and_hands_over_what_came_before() -> None:
    walked = walk(
        [code("first"), {"id": "nap", "type": "delay", "seconds": 30}],
        answers(Done(1), PAUSE),
    )
    wait = walked.effects[-1]
    assert isinstance(wait, Wait)
    assert (wait.kind, wait.resume_in_seconds, wait.expires) == ("delay", 30, False)
    assert (wait.paused.status, wait.paused.started_at) == (StepStatus.PAUSED, T0)
    assert [(r.key, r.status) for r in wait.writes.records] == [("first", StepStatus.SUCCEEDED)]


def test_a_due_delay_goes_on_with_when_it_waited_until() -> None:
    walked = walk(
        [{"id": "nap", "type": "delay", "until": "2029-12-31T23:59:00+00:00"}],
        answers(Waitpoint("nap", "delay", "pending", T0 - timedelta(seconds=60), None, None)),
    )
    (wait,) = walked.effects
    assert isinstance(wait, Wait)
    assert wait.resume_in_seconds == -60
    assert walked.finish.output == {
        "resumed_at": T0.isoformat(),
        "waited_until": (T0 - timedelta(seconds=60)).isoformat(),
    }


def test_a_waiting_call_names_its_child_and_records_both_ways_it_can_go() -> None:
    walked = walk(
        [{"id": "call", "type": "call_flow", "flow": "child", "input": "{{ trigger.body }}"}],
        lambda _effect: PAUSE,
        run_of(trigger_body={"n": 3}),
    )
    (start,) = walked.effects
    assert isinstance(start, StartChild)
    assert (start.flow, start.input, start.child_run_id, start.wait) == (
        "child",
        {"n": 3},
        CHILD,
        True,
    )
    assert start.paused.status is StepStatus.PAUSED
    assert (start.started.status, start.started.output) == (
        StepStatus.SUCCEEDED,
        {"run_id": str(CHILD)},
    )


def test_code_gets_its_context_and_a_timeout_bounded_by_the_deadline() -> None:
    walked = walk(
        [code("compute", timeout_seconds=30)],
        answers(Done(1)),
        run_of(trigger_body={"x": 1}, deadline=T0 + timedelta(seconds=10)),
    )
    (effect,) = walked.effects
    assert isinstance(effect, RunCode)
    assert effect.timeout_seconds == 10
    assert effect.input["trigger"]["body"] == {"x": 1}
    assert effect.ctx["run_id"] == str(RUN)
    assert effect.ctx["step_key"] == "compute"


def test_an_http_step_is_sent_as_rendered() -> None:
    walked = walk(
        [
            {
                "id": "call",
                "type": "http",
                "method": "POST",
                "url": "http://x.test/{{ trigger.body.p }}",
                "headers": {"x-n": "{{ trigger.body.n }}"},
                "body": {"n": "{{ trigger.body.n }}"},
            }
        ],
        answers(Done({"status": 200})),
        run_of(trigger_body={"p": "path", "n": 7}),
    )
    (effect,) = walked.effects
    assert isinstance(effect, SendHttp)
    assert (effect.method, effect.url, effect.headers, effect.body, effect.timeout_seconds) == (
        "POST",
        "http://x.test/path",
        {"x-n": "7"},
        {"n": 7},
        HTTP_TIMEOUT_SECONDS,
    )


def test_loop_iterations_see_their_item_and_index_and_earlier_iterations_do_not_leak() -> None:
    walked = walk(
        [
            {
                "id": "each",
                "type": "loop",
                "items": ["a", "b"],
                "steps": [respond("{{ index }}:{{ item }}")],
            }
        ],
        answers(),
    )
    assert walked.finish.output == [
        {"status": 200, "headers": {}, "body": "0:a"},
        {"status": 200, "headers": {}, "body": "1:b"},
    ]
    assert [r.key for r in walked.finish.writes.records] == [
        "each[0].reply",
        "each[1].reply",
        "each",
    ]


def test_an_http_step_can_name_its_effect_the_same_way_on_every_attempt() -> None:
    step = {
        "id": "charge",
        "type": "http",
        "method": "POST",
        "url": "http://x.test",
        "idempotency_key": True,
        "retry": {"max_attempts": 2, "backoff_seconds": 0},
    }
    walked = walk([step], answers(Failed(StepStatus.FAILED, "503"), Done({"status": 200})))
    first, second = walked.effects
    assert isinstance(first, SendHttp)
    assert isinstance(second, SendHttp)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.headers["Idempotency-Key"].startswith("sluice-")

    own = walk([{**step, "headers": {"idempotency-key": "mine"}}], answers(Done({"status": 200})))
    (effect,) = own.effects
    assert isinstance(effect, SendHttp)
    assert effect.headers == {"idempotency-key": "mine"}
    plain = walk([{**step, "idempotency_key": False}], answers(Done({"status": 200})))
    (effect,) = plain.effects
    assert isinstance(effect, SendHttp)
    assert effect.headers == {}


def test_code_sees_the_same_idempotency_key_as_an_http_step_would() -> None:
    walked = walk([code("compute")], answers(Done(1)))
    (effect,) = walked.effects
    assert isinstance(effect, RunCode)
    assert effect.ctx["idempotency_key"] == idempotency_key(RUN, "compute")
    assert idempotency_key(RUN, "compute") != idempotency_key(RUN, "each[0].compute")
