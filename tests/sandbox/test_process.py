from __future__ import annotations

from tests.sandbox.helpers import descendants, open_fds, processes_of, step
from worker.sandbox import Limits, SandboxMode, SandboxPool, StepStatus
from worker.sandbox.launch import Launcher
from worker.sandbox.process import Sandbox


async def test_a_started_sandbox_answers_and_closes_without_a_trace(
    launcher: Launcher, free_uids: range | None
) -> None:
    uid = None if free_uids is None else free_uids[0]
    before, fds = descendants(), open_fds()
    sandbox = await Sandbox.start(launcher, uid=uid)
    assert sandbox.pid in descendants()
    await sandbox.ping()
    assert sandbox.usable
    await sandbox.close()
    assert (sandbox.returncode, sandbox.gone, sandbox.usable) == (0, True, False)
    assert descendants() == before
    assert open_fds() == fds
    if uid is not None:
        assert processes_of(range(uid, uid + 1)) == []


async def test_a_round_trip_returns_what_json_carries(pool: SandboxPool) -> None:
    data = {"text": "héllo ☃", "items": [1, 2.5, None, True], "nested": {"empty": []}}
    result = await pool.run(
        "p", step("def run(input, ctx):\n    return [input, ctx, (1, 2)]", data, k="v")
    )
    assert result.status is StepStatus.SUCCEEDED, result
    assert result.output == [data, {"k": "v"}, [1, 2]]
    assert (result.error, result.traceback, result.stdout, result.stderr) == (None, None, "", "")
    assert 0 < result.duration_seconds < 20


async def test_stdout_and_stderr_are_captured_each_in_order(pool: SandboxPool) -> None:
    code = """
    import os, subprocess, sys
    def run(input, ctx):
        for i in range(50):
            print(f"out {i}")
            print(f"err {i}", file=sys.stderr)
        sys.stdout.write("no newline, flushed at the end ")
        os.write(1, b"raw\\n")
        subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)
        return "the protocol is intact"
    """
    result = await pool.run("p", step(code))
    assert result.status is StepStatus.SUCCEEDED, result
    assert result.output == "the protocol is intact"
    # Python's stdout is line-buffered in the child: the unterminated line comes last.
    assert result.stdout == (
        "".join(f"out {i}\n" for i in range(50))
        + "raw\nfrom a subprocess\n"
        + "no newline, flushed at the end "
    )
    assert result.stderr == "".join(f"err {i}\n" for i in range(50))


async def test_output_over_the_cap_ends_the_step_with_what_fit(pool: SandboxPool) -> None:
    code = """
    import sys
    def run(input, ctx):
        print("a" * 600)
        print("b" * 600, file=sys.stderr)
        return "never seen"
    """
    result = await pool.run("p", step(code, limits=Limits(wall_seconds=20, output_bytes=1000)))
    assert result.status is StepStatus.LOG_SIZE_EXCEEDED
    assert result.error == "the step wrote more than 1000 bytes to stdout and stderr"
    assert len(result.stdout) + len(result.stderr) == 1000
    assert result.output is None


async def test_each_step_gets_only_its_own_output(pool: SandboxPool) -> None:
    echo = "def run(input, ctx):\n    print(input)\n    return input"
    first = await pool.run("p", step(echo, "one"))
    second = await pool.run("p", step(echo, "two"))
    assert (first.stdout, second.stdout) == ("one\n", "two\n")


async def test_frames_larger_than_a_pipe_buffer_cross_both_ways(pool: SandboxPool) -> None:
    big = {"text": "ü" * 3_000_000, "numbers": list(range(100_000))}
    result = await pool.run("p", step("def run(input, ctx):\n    return input", big))
    assert result.status is StepStatus.SUCCEEDED, result.error
    assert result.output == big


async def test_a_child_that_cannot_start_reports_why(mode: SandboxMode) -> None:
    async with SandboxPool(mode, warm=1, python="/bin/sh") as pool:
        result = await pool.run("p", step("def run(input, ctx):\n    return 1"))
    assert result.status is StepStatus.INTERNAL_ERROR
    assert result.error == "the sandbox process exited with code 2 before replying"
    assert "Illegal option" in result.stderr
