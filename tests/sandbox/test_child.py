from __future__ import annotations

import os
import sys
from typing import Any

from tests.sandbox.helpers import step
from worker.sandbox import SandboxPool, StepStatus, child


def run_here(code: str, input: Any = None) -> Any:
    return child.run_step(code, input, {}, owner=os.getpid(), compiled={})


def test_each_step_gets_fresh_globals() -> None:
    code = "seen = 'seen' in globals()\ndef run(input, ctx):\n    return seen"
    cache: dict[str, Any] = {}
    for _ in range(2):
        reply = child.run_step(code, None, {}, owner=os.getpid(), compiled=cache)
        assert reply == {"status": "succeeded", "output": False}
    assert list(cache) == [code]


def test_a_syntax_error_is_a_failure_with_its_location() -> None:
    reply = run_here("def run(input, ctx)\n    return 1")
    assert reply["status"] == "failed"
    assert reply["error"].startswith("SyntaxError")
    assert 'File "<step>", line 1' in reply["traceback"]


def test_code_without_run_is_a_failure() -> None:
    assert run_here("x = 1") == {
        "status": "failed",
        "error": "step code must define run(input, ctx)",
    }


def test_the_traceback_shows_the_step_source_and_none_of_the_child() -> None:
    reply = run_here(
        "def run(input, ctx):\n    return helper()\ndef helper():\n    raise KeyError('k')"
    )
    assert reply["error"] == "KeyError: 'k'"
    assert "return helper()" in reply["traceback"]
    assert "child.py" not in reply["traceback"]


def test_outputs_json_cannot_carry_become_failures() -> None:
    frame = child.encode_reply({"status": "succeeded", "output": float("nan")}, 1000)
    assert b"not JSON-serialisable" in frame
    frame = child.encode_reply({"status": "succeeded", "output": "x" * 2000}, 1000)
    assert b"the limit is 1000 bytes" in frame


async def test_the_child_imports_only_the_standard_library(pool: SandboxPool) -> None:
    result = await pool.run(
        "p", step("import sys\ndef run(input, ctx):\n    return [sorted(sys.modules), sys.path]")
    )
    assert result.status is StepStatus.SUCCEEDED, result
    modules, path = result.output
    allowed = set(sys.stdlib_module_names) | {"__main__", "_sluice_sandbox_protocol"}
    assert {name.split(".")[0] for name in modules} <= allowed
    assert not {"worker", "app", "psycopg"} & set(modules)
    assert not any("site-packages" in entry or "sandbox" in entry for entry in path)


async def test_a_fork_in_step_code_does_not_reply_twice(pool: SandboxPool) -> None:
    forking = step(
        """
        import os
        def run(input, ctx):
            pid = os.fork()
            return "parent" if pid else "copy"
        """
    )
    assert (await pool.run("p", forking)).output == "parent"
    second = await pool.run("p", step("def run(input, ctx):\n    return input", 2))
    assert (second.status, second.output) == (StepStatus.SUCCEEDED, 2)
