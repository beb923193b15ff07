"""Invariant 8: each way step code can misbehave ends in a precise status and harms nothing."""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator

import pytest

from tests.sandbox.helpers import descendants, processes_of, step
from worker.sandbox import Limits, SandboxMode, SandboxPool, StepStatus

pytestmark = pytest.mark.usefixtures("mode")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real server on 127.0.0.1, so that a failed connection can only be the sandbox's doing."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@pytest.mark.slow
async def test_an_endless_loop_is_stopped_at_the_wall_time(pool: SandboxPool) -> None:
    result = await pool.run(
        "p", step("def run(input, ctx):\n    while True: pass", limits=Limits(wall_seconds=1))
    )
    assert result.status is StepStatus.TIMEOUT
    assert result.error == "the step ran longer than its wall time limit of 1 s"
    assert 1 <= result.duration_seconds < 5


@pytest.mark.slow
async def test_the_cpu_limit_ends_a_busy_step(pool: SandboxPool) -> None:
    limits = Limits(wall_seconds=30, cpu_seconds=1)
    result = await pool.run("p", step("def run(input, ctx):\n    while True: pass", limits=limits))
    assert result.status is StepStatus.TIMEOUT
    assert result.error == "the step used more than its CPU time limit of 1 s"
    assert result.duration_seconds < 10


async def test_allocating_10_gb_exceeds_the_memory_limit(pool: SandboxPool) -> None:
    code = "def run(input, ctx):\n    b = bytearray(10 * 1024**3)\n    return len(b)"
    result = await pool.run("p", step(code))
    assert result.status is StepStatus.MEMORY_LIMIT_EXCEEDED
    assert result.error is not None
    assert "MemoryError" in result.error
    assert result.traceback is not None
    assert "bytearray(10 * 1024**3)" in result.traceback


async def test_a_fork_bomb_is_contained_and_leaves_no_process(mode: SandboxMode) -> None:
    before = descendants()
    bomb = step("import os\ndef run(input, ctx):\n    while True: os.fork()", limits=Limits(10))
    async with SandboxPool(mode, warm=0) as pool:
        result = await pool.run("p", bomb)
        after = await pool.run("p", step("def run(input, ctx):\n    return 'still serving'"))
    assert result.status in (StepStatus.FAILED, StepStatus.TIMEOUT), result
    assert after.output == "still serving"
    assert processes_of(pool.uids) == []
    assert descendants() == before


async def test_processes_a_step_starts_do_not_outlive_it(pool: SandboxPool) -> None:
    start = """
    import subprocess, sys
    def run(input, ctx):
        sleep = [sys.executable, "-c", "import time; time.sleep(1000)"]
        return subprocess.Popen(sleep, start_new_session=True).pid
    """
    check = """
    import os
    def run(input, ctx):
        try:
            os.kill(input, 0)
        except ProcessLookupError:
            return "gone"
        return "alive"
    """
    pid = (await pool.run("p", step(start))).output
    assert (await pool.run("p", step(check, pid))).output == "gone"


SPAWN_THEN_SPIN = """
import signal, subprocess, sys
SLEEP = "import time; time.sleep(1000)"
def run(input, ctx):
    if input == "ignore SIGTERM":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = [subprocess.Popen([sys.executable, "-c", SLEEP]) for _ in range(5)]
    fork_then_sleep = f"import os; os.fork(); {SLEEP}"
    subprocess.Popen([sys.executable, "-c", fork_then_sleep], start_new_session=True)
    while True:
        pass
"""


@pytest.mark.slow
async def test_a_step_stopped_amid_subprocesses_leaves_no_process_not_even_a_zombie(
    mode: SandboxMode,
) -> None:
    before = descendants()
    async with SandboxPool(mode, warm=0) as pool:
        result = await pool.run("p", step(SPAWN_THEN_SPIN, limits=Limits(wall_seconds=0.5)))
    assert result.status is StepStatus.TIMEOUT
    assert processes_of(pool.uids) == []
    assert descendants() == before


@pytest.mark.slow
async def test_a_step_that_ignores_sigterm_is_killed_all_the_same(mode: SandboxMode) -> None:
    before = descendants()
    request = step(SPAWN_THEN_SPIN, "ignore SIGTERM", limits=Limits(wall_seconds=0.5))
    async with SandboxPool(mode, warm=0) as pool:
        result = await pool.run("p", request)
    assert result.status is StepStatus.TIMEOUT
    # In process mode the SIGKILL fallback orphans the step's dead children to the host's init
    # (bwrap's namespace reaps them): only live processes are certain to be gone there.
    assert processes_of(pool.uids, zombies=mode is SandboxMode.BWRAP) == []
    assert descendants() == before


async def test_printing_100_mb_is_stopped_at_the_cap_without_buffering_it(
    pool: SandboxPool,
) -> None:
    code = """
    import sys
    def run(input, ctx):
        chunk = "x" * (1 << 20)
        for _ in range(100):
            sys.stdout.write(chunk)
    """
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = await pool.run("p", step(code))
    assert result.status is StepStatus.LOG_SIZE_EXCEEDED
    assert len(result.stdout) == Limits().output_bytes
    assert result.duration_seconds < 5
    peak_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert peak_growth_kib < 50 * 1024


async def test_there_is_no_network_in_bwrap(
    pool: SandboxPool, listener: socket.socket, mode: SandboxMode
) -> None:
    code = """
    import socket
    def run(input, ctx):
        socket.create_connection(("127.0.0.1", input), timeout=5).close()
        return "connected"
    """
    result = await pool.run("p", step(code, listener.getsockname()[1]))
    if mode is SandboxMode.BWRAP:
        assert result.status is StepStatus.FAILED
        assert result.error is not None
        assert result.error.startswith("ConnectionRefusedError")
    else:  # the control: process mode has the host's network, and the listener is real
        assert result.output == "connected"


async def test_the_workers_secrets_are_not_visible(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", "postgresql://sluice:hunter2@db/sluice")
    monkeypatch.setenv("SECRET_TOKEN", "s3cr3t")
    code = """
    import os
    def run(input, ctx):
        try:
            with open(f"/proc/{ctx['worker']}/environ", "rb") as environ:
                theirs = environ.read()
        except OSError as exc:
            theirs = type(exc).__name__
        return [os.environ.get("SLUICE_DATABASE_URL"), os.environ.get("SECRET_TOKEN"), theirs]
    """
    result = await pool.run("p", step(code, worker=os.getpid()))
    url, token, worker_environ = result.output
    assert (url, token) == (None, None)
    if os.geteuid() == 0 or pool.mode is SandboxMode.BWRAP:
        assert worker_environ in ("PermissionError", "FileNotFoundError")


async def test_exiting_is_an_internal_error_naming_the_code(pool: SandboxPool) -> None:
    result = await pool.run("p", step("import os\ndef run(input, ctx):\n    os._exit(3)"))
    assert result.status is StepStatus.INTERNAL_ERROR
    assert result.error == "the sandbox process exited with code 3 before replying"
    replaced = await pool.run("p", step("def run(input, ctx):\n    return 'replaced'"))
    assert replaced.output == "replaced"


async def test_death_by_a_signal_is_an_internal_error_naming_it(pool: SandboxPool) -> None:
    result = await pool.run(
        "p", step("import ctypes\ndef run(input, ctx):\n    ctypes.string_at(0)")
    )
    assert result.status is StepStatus.INTERNAL_ERROR
    assert result.error == "the sandbox process was killed by signal 11 (SIGSEGV) before replying"


async def test_garbage_on_the_protocol_is_an_internal_error(pool: SandboxPool) -> None:
    code = """
    import fcntl, os
    def run(input, ctx):
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                pipe = os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
            except OSError:  # the directory listing's own fd
                continue
            if fd > 2 and pipe and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                os.write(fd, b"\\xff\\xff\\xff\\xffgarbage")
        return "after the garbage"
    """
    result = await pool.run("p", step(code))
    assert result.status is StepStatus.INTERNAL_ERROR
    assert result.error is not None
    assert result.error.startswith("sandbox protocol error: a frame")


async def test_an_exception_fails_the_step_with_its_traceback(pool: SandboxPool) -> None:
    result = await pool.run("p", step("def run(input, ctx):\n    raise ValueError('x')"))
    assert (result.status, result.error) == (StepStatus.FAILED, "ValueError: x")
    assert result.traceback is not None
    assert result.traceback.endswith("    raise ValueError('x')\nValueError: x\n")


async def test_a_value_json_cannot_carry_fails_the_step(pool: SandboxPool) -> None:
    result = await pool.run("p", step("def run(input, ctx):\n    return {'a': {1, 2}}"))
    assert result.status is StepStatus.FAILED
    assert result.error == (
        "run() returned a value that is not JSON-serialisable: "
        "TypeError: Object of type set is not JSON serializable"
    )
