from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from time import perf_counter

import pytest

from tests.sandbox.helpers import (
    QUICK,
    descendants,
    open_fds,
    processes_of,
    step,
    temp_dirs,
)
from worker.sandbox import Limits, SandboxMode, SandboxPool, StepRequest, StepStatus

WHO_AM_I = step(
    """
    import os
    def run(input, ctx):
        if not hasattr(os, "sluice_test_token"):
            os.sluice_test_token = os.urandom(8).hex()
        return os.sluice_test_token
    """
)
"""Names the child that runs it: the token lives in a module, which outlives a step."""
FAIL = step("def run(input, ctx):\n    raise RuntimeError('planned')")


async def child_of(pool: SandboxPool, project: str) -> str:
    result = await pool.run(project, WHO_AM_I)
    assert result.status is StepStatus.SUCCEEDED, result
    assert isinstance(result.output, str)
    return result.output


async def test_globals_do_not_leak_between_steps_on_a_reused_child(pool: SandboxPool) -> None:
    first = await child_of(pool, "p")
    setter = step(
        """
        counter = 41
        def run(input, ctx):
            global counter
            counter += 1
            return counter
        """
    )
    assert (await pool.run("p", setter)).output == 42
    assert (await pool.run("p", setter)).output == 42
    probe = step("def run(input, ctx):\n    return sorted(k for k in globals() if k != 'run')")
    assert (await pool.run("p", probe)).output == ["__builtins__", "__name__"]
    assert await child_of(pool, "p") == first


async def test_a_child_serves_one_project_only(pool: SandboxPool) -> None:
    a = await child_of(pool, "a")
    b = await child_of(pool, "b")
    assert a != b
    assert await child_of(pool, "a") == a
    assert await child_of(pool, "b") == b


async def test_concurrent_steps_of_one_project_get_a_child_each(pool: SandboxPool) -> None:
    tokens = await asyncio.gather(*(child_of(pool, "p") for _ in range(4)))
    assert len(set(tokens)) == 4
    again = await asyncio.gather(*(child_of(pool, "p") for _ in range(4)))
    assert set(again) == set(tokens)


async def test_a_child_with_other_limits_or_paths_is_another_child(pool: SandboxPool) -> None:
    default = await child_of(pool, "p")
    other_limits = StepRequest(WHO_AM_I.code, None, {}, Limits(wall_seconds=19))
    other_paths = StepRequest(WHO_AM_I.code, None, {}, QUICK, extra_paths=["/usr/lib"])
    tokens = [(await pool.run("p", request)).output for request in (other_limits, other_paths)]
    assert len({default, *tokens}) == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes get uids of their own only under root")
async def test_pools_open_at_once_never_share_a_uid(mode: SandboxMode) -> None:
    async with SandboxPool(mode, warm=1) as one, SandboxPool(mode, warm=1) as two:
        assert one.uids is not None
        assert two.uids is not None
        assert not set(one.uids) & set(two.uids)
        assert (await one.run("p", WHO_AM_I)).succeeded
    async with SandboxPool(mode, warm=0) as three:
        assert three.uids == one.uids


async def test_a_child_is_recycled_after_max_uses(mode: SandboxMode) -> None:
    async with SandboxPool(mode, warm=0, max_uses=3) as pool:
        children = [await child_of(pool, "p") for _ in range(7)]
    assert len(set(children[:3])) == 1
    assert len(set(children[3:6])) == 1
    assert len({children[0], children[3], children[6]}) == 3


FAILURES = {
    StepStatus.FAILED: "raise RuntimeError('planned')",
    StepStatus.INTERNAL_ERROR: "import os; os._exit(3)",
    StepStatus.MEMORY_LIMIT_EXCEEDED: "bytearray(10 * 1024**3)",
    StepStatus.LOG_SIZE_EXCEEDED: "print('x' * 1000)",
    StepStatus.TIMEOUT: "while True: pass",
}


async def test_a_child_is_recycled_after_any_failure_not_after_a_success(pool: SandboxPool) -> None:
    limits = Limits(wall_seconds=1, output_bytes=100)
    who = StepRequest(WHO_AM_I.code, None, {}, limits)
    seen = [(await pool.run("p", who)).output]
    for status, statement in FAILURES.items():
        assert (await pool.run("p", who)).output == seen[-1]
        failure = StepRequest(f"def run(input, ctx):\n    {statement}", None, {}, limits)
        assert (await pool.run("p", failure)).status is status
        seen.append((await pool.run("p", who)).output)
    assert len(set(seen)) == len(seen)


async def test_warm_children_wait_for_any_project(mode: SandboxMode) -> None:
    before = descendants()
    async with SandboxPool(mode, warm=2) as pool:
        assert len(descendants() - before) >= 2
        started = perf_counter()
        a, b = await child_of(pool, "a"), await child_of(pool, "b")
        assert a != b
        assert perf_counter() - started < 10


async def test_extra_paths_are_importable(pool: SandboxPool, public_dir: Path) -> None:
    module = public_dir / "sluice_test_requirement.py"
    module.write_text("VALUE = 'installed'\n")
    module.chmod(0o644)
    code = "from sluice_test_requirement import VALUE\ndef run(input, ctx):\n    return VALUE"
    request = StepRequest(code, None, {}, QUICK, extra_paths=[str(public_dir)])
    result = await pool.run("p", request)
    assert (result.status, result.output) == (StepStatus.SUCCEEDED, "installed"), result
    missing = await pool.run("p", step(code))
    assert missing.error == "ModuleNotFoundError: No module named 'sluice_test_requirement'"


async def test_a_request_that_cannot_be_sent_is_refused_without_a_child(mode: SandboxMode) -> None:
    before = descendants()
    async with SandboxPool(mode, warm=0, max_frame_bytes=1000) as pool:
        unserialisable = await pool.run("p", step("def run(i, c):\n    pass", {1, 2}))
        too_large = await pool.run("p", step("def run(i, c):\n    pass", "x" * 1000))
        assert descendants() == before
    assert unserialisable.status is too_large.status is StepStatus.FAILED
    assert unserialisable.error is not None
    assert "not JSON-serialisable" in unserialisable.error
    assert too_large.error is not None
    assert too_large.error.endswith("the limit is 1000")


@pytest.mark.slow
async def test_a_thousand_steps_leak_no_process_fd_or_temp_dir(
    mode: SandboxMode, public_dir: Path
) -> None:
    echo = step("def run(input, ctx):\n    print(input)\n    return input")
    before = (descendants(), open_fds(), len(asyncio.all_tasks()))
    started = perf_counter()
    async with SandboxPool(mode, warm=2, temp_root=str(public_dir)) as pool:
        for n in range(1000):
            if n % 50 == 49:
                assert (await pool.run(f"p{n % 3}", FAIL)).status is StepStatus.FAILED
            else:
                request = StepRequest(echo.code, n, {}, QUICK)
                result = await pool.run(f"p{n % 3}", request)
                assert (result.output, result.stdout) == (n, f"{n}\n")
    assert perf_counter() - started < 60
    assert processes_of(pool.uids) == []
    assert (descendants(), open_fds(), len(asyncio.all_tasks())) == before
    assert temp_dirs(public_dir) == []


async def test_aclose_kills_running_steps_and_leaves_nothing(
    mode: SandboxMode, public_dir: Path
) -> None:
    before = (descendants(), open_fds())
    endless = step("def run(input, ctx):\n    while True: pass")
    async with SandboxPool(mode, warm=2, temp_root=str(public_dir)) as pool:
        await child_of(pool, "idle")
        running = asyncio.create_task(pool.run("busy", endless))
        await asyncio.sleep(0)  # let the task send its request and wait for the reply
        await pool.aclose()
        result = await running
    assert result.status is StepStatus.INTERNAL_ERROR
    assert result.error == "the sandbox was killed: the sandbox pool is closing"
    assert processes_of(pool.uids) == []
    assert (descendants(), open_fds()) == before
    assert temp_dirs(public_dir) == []
    with pytest.raises(RuntimeError, match="not open"):
        await pool.run("p", endless)


async def test_a_cancelled_step_kills_its_child(mode: SandboxMode) -> None:
    before = descendants()
    async with SandboxPool(mode, warm=0) as pool:
        running = asyncio.create_task(pool.run("p", step("def run(i, c):\n    while True: pass")))
        await asyncio.sleep(0)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert (await pool.run("p", step("def run(i, c):\n    return 1"))).output == 1
    assert processes_of(pool.uids) == []
    assert descendants() == before


async def test_mode_none_keeps_the_contract_and_says_it_is_unsafe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        async with SandboxPool("none") as pool:
            ok = await pool.run(
                "p", step("def run(input, ctx):\n    print('hi')\n    return (input,)", 1)
            )
            failed = await pool.run("p", FAIL)
            flood = await pool.run(
                "p", step("def run(i, c):\n    print('x' * 2000)", limits=Limits(output_bytes=100))
            )
    assert "no isolation" in caplog.text
    assert (ok.status, ok.output, ok.stdout) == (StepStatus.SUCCEEDED, [1], "hi\n")
    assert failed.error == "RuntimeError: planned"
    assert failed.traceback is not None
    assert "raise RuntimeError('planned')" in failed.traceback
    assert flood.status is StepStatus.LOG_SIZE_EXCEEDED
    assert pool.uids is None


async def test_aclose_does_not_wait_for_a_step_that_ignores_sigterm(public_dir: Path) -> None:
    fifo = public_dir / "running"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    code = """
    import signal
    def run(input, ctx):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(input, "w") as fifo:
            fifo.write("running")
        while True:
            pass
    """
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        async with SandboxPool(SandboxMode.PROCESS, warm=0) as pool:
            running = asyncio.create_task(pool.run("p", step(code, str(fifo))))
            assert await readable(reader) == b"running"
            started = perf_counter()
            await pool.aclose()
            result = await running
    finally:
        os.close(reader)
    assert perf_counter() - started < QUICK.wall_seconds / 2
    assert result.error == "the sandbox was killed: the sandbox pool is closing"
    assert processes_of(pool.uids, zombies=False) == []


async def readable(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    data: asyncio.Future[bytes] = loop.create_future()

    def read() -> None:
        if not data.done():
            data.set_result(os.read(fd, 100))

    loop.add_reader(fd, read)
    try:
        return await asyncio.wait_for(data, QUICK.wall_seconds)
    finally:
        loop.remove_reader(fd)


async def test_a_pool_that_cannot_start_its_spares_leaves_nothing(public_dir: Path) -> None:
    before = (descendants(), open_fds())
    # A directory passes the interpreter check but cannot be executed.
    pool = SandboxPool(SandboxMode.PROCESS, warm=2, python="/usr", temp_root=str(public_dir))
    with pytest.raises(PermissionError):
        await pool.start()
    assert (descendants(), open_fds()) == before
    assert temp_dirs(public_dir) == []
    with pytest.raises(RuntimeError, match="not open"):
        await pool.run("p", WHO_AM_I)
