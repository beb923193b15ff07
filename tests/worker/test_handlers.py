"""The built-in `run_step` job kind: payload → sandbox → result or a clear failure."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pydantic
import pytest
from pydantic import SecretStr

from app.jobs import Job
from app.settings import Settings
from tests.sandbox import servers
from tests.sandbox.helpers import step
from tests.worker.test_cache_requirements import offline, write_wheel
from worker.cache_requirements import RequirementsInstaller
from worker.code import CodeRunner
from worker.executor import PermanentJobError
from worker.handlers import RUN_STEP, StepRunner, database_endpoints, default_handlers
from worker.sandbox import Limits, SandboxMode, SandboxPool
from worker.sandbox.bwrap import problem as bwrap_problem

MODES = [
    SandboxMode.PROCESS,
    pytest.param(
        SandboxMode.BWRAP,
        marks=pytest.mark.skipif(
            bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}"
        ),
    ),
]


def job(payload: Any) -> Job:
    now = datetime.now(UTC)
    return Job(1, "run_step", 7, None, payload, 0, now, 1, 3, "w", now, None, now)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder sandbox uids can traverse, like a data dir (pytest's tmp_path is private)."""
    directory = Path(tempfile.mkdtemp(prefix="sluice-handlers-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=MODES)
async def runner(request: pytest.FixtureRequest, shared_dir: Path) -> AsyncIterator[StepRunner]:
    wheelhouse = shared_dir / "wheels"
    wheelhouse.mkdir()
    write_wheel(wheelhouse, "sluice_demo", "1.0", "VALUE = 42\n")
    installer = RequirementsInstaller(shared_dir / "envs", pip_args=offline(wheelhouse))
    async with SandboxPool(request.param, warm=0) as pool:
        yield StepRunner(CodeRunner(pool, installer, Limits(wall_seconds=10)))


async def test_a_step_returns_its_output_and_captured_output(runner: StepRunner) -> None:
    result = await runner(
        job(
            {
                "code": "def run(input, ctx):\n    print('working')\n"
                "    return {'double': input * 2, 'who': ctx['who']}",
                "input": 21,
                "ctx": {"who": "me"},
            }
        )
    )
    assert result["output"] == {"double": 42, "who": "me"}
    assert result["stdout"] == "working\n"


async def test_requirements_are_installed_and_importable(runner: StepRunner) -> None:
    result = await runner(
        job(
            {
                "code": "import sluice_demo\ndef run(input, ctx):\n    return sluice_demo.VALUE",
                "requirements": ["sluice-demo==1.0"],
            }
        )
    )
    assert result["output"] == 42


async def test_a_missing_requirement_fails_with_pips_message(runner: StepRunner) -> None:
    with pytest.raises(PermanentJobError, match="requirements could not be installed"):
        await runner(job({"code": "def run(i, c):\n    return 1", "requirements": ["nope==9"]}))


async def test_a_raising_step_fails_for_good_with_its_traceback(runner: StepRunner) -> None:
    with pytest.raises(PermanentJobError, match=r"FAILED: Traceback[\s\S]*ValueError: bad"):
        await runner(job({"code": "def run(input, ctx):\n    raise ValueError('bad')"}))


async def test_the_payload_timeout_applies(runner: StepRunner) -> None:
    with pytest.raises(PermanentJobError, match="TIMEOUT"):
        await runner(
            job({"code": "def run(input, ctx):\n    while True: pass", "timeout_seconds": 0.5})
        )


@pytest.mark.parametrize(
    "payload",
    [None, "code", 3, {"input": 1}, {"code": ""}, {"code": "x", "surprise": 1}],
)
async def test_bad_payloads_are_refused(runner: StepRunner, payload: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        await runner(job(payload))


async def test_the_database_endpoints_are_what_its_url_names_over_tcp() -> None:
    loopback = ip_address("127.0.0.1")
    assert await database_endpoints("postgresql://u:p@localhost:5433/db") == [(loopback, 5433)]
    assert await database_endpoints("host=127.0.0.1 dbname=x") == [(loopback, 5432)]
    two = "host=127.0.0.1,127.0.0.2 port=6001,6002 dbname=x"
    assert await database_endpoints(two) == [(loopback, 6001), (ip_address("127.0.0.2"), 6002)]
    # A Unix socket is no TCP endpoint: the sandbox does not see its directory anyway.
    assert await database_endpoints("postgresql:///db?host=/run/postgresql") == []


@pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")
async def test_steps_with_network_never_reach_the_database_even_with_private_allowed() -> None:
    async with servers.counter() as database, servers.counter() as other:
        settings = Settings(
            database_url=SecretStr(f"postgresql://sluice@localhost:{database.port}/sluice"),
            http_allow_private=True,
        )
        async with default_handlers(settings) as handlers:
            runner = handlers[RUN_STEP]
            assert isinstance(runner, StepRunner)
            code = """
            import urllib.error, urllib.request
            def run(input, ctx):
                try:
                    return urllib.request.urlopen(input, timeout=5).status
                except urllib.error.HTTPError as exc:
                    return exc.code
            """
            results = []
            for port in (database.port, other.port):
                request = dataclasses.replace(step(code, f"http://127.0.0.1:{port}/"), network=True)
                results.append(await runner.code.sandboxes.run("p", request))
    assert [result.output for result in results] == [403, 200], results
    assert (database.hits, other.hits) == (0, 1)
