"""`code` steps through a real app and worker: input, ctx, stdout, failures, limits."""

from __future__ import annotations

from typing import Any

from tests.flows.helpers import code, problem_at, rejected, started_run, step
from tests.flows.stack import Stack, running_stack


async def test_input_defaults_to_the_context_or_is_templated_and_ctx_names_the_step(
    stack: Stack,
) -> None:
    flow = await stack.deploy(
        {
            "name": "adder",
            "steps": [
                code("first", "def run(input, ctx):\n    return {'n': 2}"),
                code(
                    "second",
                    """
                    def run(input, ctx):
                        print('adding', input['trigger']['body']['x'])
                        return {
                            'sum': input['trigger']['body']['x']
                            + input['steps']['first']['output']['n'],
                            'first_status': input['steps']['first']['status'],
                            'keys': sorted(input),
                            'ctx': {k: ctx[k] for k in ('run_id', 'step_id', 'step_key')},
                            'flow': ctx['flow']['name'],
                        }
                    """,
                ),
                code(
                    "third",
                    "def run(input, ctx):\n    return input",
                    input={
                        "total": "{{ steps.second.output.sum }}",
                        "label": "x is {{ trigger.body.x }}",
                        "literal": [1, "two", None],
                    },
                ),
            ],
        }
    )

    reply = await stack.trigger(flow["id"], {"x": 40}, sync=True)

    assert reply.status_code == 200, reply.text
    assert reply.json() == {"total": 42, "label": "x is 40", "literal": [1, "two", None]}
    run_id = reply.headers["x-sluice-run-id"]
    run = await stack.run(run_id)
    assert run["status"] == "SUCCEEDED"
    second = step(run, "second")
    assert second["status"] == "SUCCEEDED"
    assert second["attempts"] == 1
    assert second["stdout"] == "adding 40\n"
    assert second["output"] == {
        "sum": 42,
        "first_status": "SUCCEEDED",
        "keys": ["flow", "run", "steps", "trigger"],
        "ctx": {"run_id": run_id, "step_id": "second", "step_key": "second"},
        "flow": "adder",
    }
    assert run["output"] == step(run, "third")["output"]


async def test_an_exception_fails_the_step_and_the_run_with_its_traceback(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "explodes",
            "steps": [
                code(
                    "explode",
                    """
                    def run(input, ctx):
                        print('about to fail')
                        raise ValueError('boom')
                    """,
                ),
                {"id": "after", "type": "respond", "body": "never"},
            ],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, flow["id"]))

    assert run["status"] == "FAILED"
    assert run["error"].startswith("step 'explode' failed: Traceback")
    assert "ValueError: boom" in run["error"]
    explode = step(run, "explode")
    assert explode["status"] == "FAILED"
    assert "Traceback" in explode["error"]
    assert explode["error"].rstrip().endswith("ValueError: boom")
    assert explode["stdout"] == "about to fail\n"
    assert [s["key"] for s in run["steps"]] == ["explode"]
    assert run["response"] is None


async def test_a_step_over_its_timeout_times_out_the_run(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "spins",
            "steps": [
                code(
                    "spin",
                    "def run(input, ctx):\n    while True:\n        pass",
                    timeout_seconds=0.5,
                )
            ],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, flow["id"]))

    assert run["status"] == "TIMEOUT"
    assert run["error"].startswith("step 'spin' failed:")
    assert step(run, "spin")["status"] == "TIMEOUT"
    assert run["duration_seconds"] < 10


async def test_a_template_error_in_input_fails_the_step_naming_the_expression(
    stack: Stack,
) -> None:
    template = "{{ trigger.body.missing.deeper }}"
    flow = await stack.deploy(
        {
            "name": "misses",
            "steps": [code("use", "def run(input, ctx):\n    return input", input={"v": template})],
        }
    )

    run = await stack.wait_for_status(await started_run(stack, flow["id"], {"present": 1}))

    assert run["status"] == "FAILED"
    use = step(run, "use")
    assert use["status"] == "FAILED"
    assert template in use["error"]
    assert "missing" in use["error"]
    assert run["error"] == f"step 'use' failed: {use['error']}"


async def test_bad_code_steps_are_refused_at_deploy_with_their_paths(database_url: str) -> None:
    def flow(**fields: Any) -> dict[str, Any]:
        return {"name": "bad", "steps": [{"id": "c", "type": "code", **fields}]}

    ok = "def run(input, ctx):\n    return 1"
    async with running_stack(database_url, with_worker=False) as stack:
        assert "required" in problem_at(await rejected(stack, flow()), "steps[0].code").lower()
        assert "string" in problem_at(await rejected(stack, flow(code=7)), "steps[0].code")
        extra = await rejected(stack, flow(code=ok, inputs={}))
        assert "not permitted" in problem_at(extra, "steps[0].inputs")
        zero = await rejected(stack, flow(code=ok, timeout_seconds=0))
        assert "greater than 0" in problem_at(zero, "steps[0].timeout_seconds")
        syntax = await rejected(stack, flow(code=ok, input={"v": "{{ trigger.body. }}"}))
        assert problem_at(syntax, "steps[0].input.v")
        requirement = await rejected(stack, flow(code=ok, requirements=["x; rm -rf /"]))
        assert "requirement" in problem_at(requirement, "steps[0].requirements[0]")


async def test_a_step_cut_short_by_the_run_timeout_is_recorded(database_url: str) -> None:
    async with running_stack(database_url, run_timeout_seconds=1) as stack:
        flow = await stack.deploy(
            {
                "name": "overrun",
                "steps": [code("spin", "def run(input, ctx):\n    while True:\n        pass")],
            }
        )

        run = await stack.wait_for_steps(await started_run(stack, flow["id"]), ["spin"])

    assert run["status"] == "TIMEOUT"
    assert step(run, "spin")["status"] == "TIMEOUT"
    # The engine's deadline or the maintenance pass, whichever came first, ended the run.
    assert "longer than SLUICE_RUN_TIMEOUT_SECONDS" in run["error"]


async def test_a_nul_character_in_output_or_stdout_is_the_steps_problem(
    database_url: str,
) -> None:
    async with running_stack(database_url, retry_base_seconds=0.05, retry_max_seconds=0.1) as stack:
        returns = await stack.deploy(
            {
                "name": "returns",
                "steps": [code("nul", "def run(input, ctx):\n    return 'a\\x00b'")],
            }
        )
        prints = await stack.deploy(
            {
                "name": "prints",
                "steps": [code("nul", "def run(input, ctx):\n    print('a\\x00b')\n    return 1")],
            }
        )

        returning, printing = [await started_run(stack, f["id"]) for f in (returns, prints)]
        returned = await stack.wait_for_status(returning)
        printed = await stack.wait_for_status(printing)

    for run in (returned, printed):
        assert step(run, "nul")["attempts"] == 1
        assert "psycopg" not in (run["error"] or "")
