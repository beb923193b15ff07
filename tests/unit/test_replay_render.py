"""The replay's templated fields: inline templates render at once, others are asked for as a
`Render` effect with only the context they read, and a failed render is not retried."""

from __future__ import annotations

from app.flows.model import RunStatus, StepStatus
from tests.unit.test_replay import answers, code, respond, run_of, walk
from worker.flow.effects import Done, Failed, RunCode


def test_an_inline_template_is_rendered_without_a_render_process() -> None:
    walked = walk(
        [respond({"who": "{{ trigger.body.who | upper }}"})],
        answers(),
        run_of(trigger_body={"who": "ada"}),
    )
    assert walked.renders == []
    assert walked.finish.output == {"status": 200, "headers": {}, "body": {"who": "ADA"}}


def test_any_other_template_is_asked_for_with_the_context_it_reads_only() -> None:
    steps = [
        code("first"),
        code("second"),
        respond({"n": "{% for i in range(3) %}{{ i }}{% endfor %}{{ steps.first.output }}"}),
    ]
    walked = walk(steps, answers(Done(7), Done({"big": "x" * 1000})))
    (render,) = walked.renders
    assert render.key == "reply"
    assert render.field == "body.n"
    # `range` is Jinja's own, and of the steps only `first` is read.
    assert render.context == {
        "steps": {"first": {"output": 7, "status": "SUCCEEDED", "error": None}}
    }
    assert walked.finish.output["body"] == {"n": "0127"}


def test_a_branch_condition_that_is_not_inline_is_asked_for_as_a_condition() -> None:
    steps = [
        {
            "id": "check",
            "type": "branch",
            "condition": "{{ (trigger.body.tags | join(',')) == 'a,b' }}",
            "then": [respond("yes")],
            "else": [respond("no", id="refuse")],
        }
    ]
    walked = walk(steps, answers(), run_of(trigger_body={"tags": ["a", "b"]}))
    (render,) = walked.renders
    assert render.condition is True
    assert render.field == "condition"
    assert walked.finish.output["output"]["body"] == "yes"


def test_a_failed_render_fails_the_step_naming_the_field_and_uses_no_retry() -> None:
    step = code("compute", input={"text": "{{ nosuch ~ 'x' }}"}, retry={"max_attempts": 3})
    walked = walk([step], answers())
    assert walked.asked == []
    assert walked.finish.status is RunStatus.FAILED
    assert walked.finish.error is not None
    assert walked.finish.error.startswith("step 'compute' failed: input.text: template ")
    assert "'nosuch' is undefined" in walked.finish.error
    (attempt,) = walked.attempts
    assert attempt.status is StepStatus.FAILED
    assert attempt.attempts == 1


def test_a_failed_effect_still_uses_the_step_retries() -> None:
    step = code("compute", retry={"max_attempts": 2, "backoff_seconds": 0})
    walked = walk([step], answers(Failed(StepStatus.FAILED, "boom"), Done(1)))
    assert [type(effect) for effect in walked.effects] == [RunCode, RunCode]
    assert walked.finish.status is RunStatus.SUCCEEDED
    assert [attempt.attempts for attempt in walked.attempts] == [1, 2]
