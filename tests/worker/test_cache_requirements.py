"""Real pip runs against a wheelhouse written by hand: no network, no mocks."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from worker.cache_requirements import (
    INSTALL_LOG,
    RequirementsError,
    RequirementsInstaller,
    environment_key,
    normalise,
)

REPO = Path(__file__).resolve().parents[2]


def write_wheel(wheelhouse: Path, name: str, version: str, source: str) -> Path:
    """A minimal pure-Python wheel: one package, METADATA, WHEEL and a RECORD with hashes."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: sluice-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = wheelhouse / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wheelhouse")
    write_wheel(directory, "sluice_demo", "1.0", "VALUE = 42\n")
    return directory


def offline(wheelhouse: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheelhouse), "--no-cache-dir"]


@pytest.fixture
def envs(tmp_path: Path) -> Path:
    return tmp_path / "envs"


@pytest.fixture
def installer(envs: Path, wheelhouse: Path) -> RequirementsInstaller:
    return RequirementsInstaller(envs, pip_args=offline(wheelhouse))


def pip_runs(envs: Path) -> list[dict[str, Any]]:
    log = envs / INSTALL_LOG
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def python(code: str, *args: str, pythonpath: Path | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    return out.decode().strip()


async def test_installed_environment_is_importable_and_reused(
    installer: RequirementsInstaller, envs: Path, wheelhouse: Path
) -> None:
    env = await installer.ensure(["sluice_demo==1.0"])

    assert env.parent == envs
    assert await python("import sluice_demo; print(sluice_demo.VALUE)", pythonpath=env) == "42"
    assert await installer.ensure(["Sluice-Demo == 1.0"]) == env
    restarted = RequirementsInstaller(envs, pip_args=offline(wheelhouse))
    assert await restarted.ensure(["sluice.demo==1.0"]) == env
    assert [run["exit"] for run in pip_runs(envs)] == [0]


async def test_concurrent_tasks_install_once(installer: RequirementsInstaller, envs: Path) -> None:
    results = await asyncio.wait_for(
        asyncio.gather(*(installer.ensure(["sluice_demo"]) for _ in range(5))), 60
    )

    assert len(set(results)) == 1
    assert len(pip_runs(envs)) == 1


CONTENDER = """
import asyncio, sys
from pathlib import Path
from worker.cache_requirements import RequirementsInstaller

async def main() -> None:
    installer = RequirementsInstaller(Path(sys.argv[1]), pip_args=sys.argv[2:])
    print("ready", flush=True)
    print(await installer.ensure(["sluice_demo==1.0"]), flush=True)

asyncio.run(main())
"""


async def test_concurrent_processes_install_once(
    installer: RequirementsInstaller, envs: Path, wheelhouse: Path
) -> None:
    """Three processes and two local tasks want one key; the test holds its lock until all run."""
    key = environment_key(["sluice_demo==1.0"])
    held = os.open(envs / f"{key}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        local = [asyncio.create_task(installer.ensure(["sluice_demo==1.0"])) for _ in range(2)]
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CONTENDER,
                str(envs),
                *offline(wheelhouse),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        for process in processes:
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        assert pip_runs(envs) == []
    finally:
        os.close(held)

    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
    paths = {Path(out.decode().strip()) for out, _ in outputs}
    paths |= set(await asyncio.wait_for(asyncio.gather(*local), 60))

    assert [p.returncode for p in processes] == [0, 0, 0]
    assert paths == {envs / key}
    assert len(pip_runs(envs)) == 1


async def test_failed_install_raises_with_pip_output_and_is_retried(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    envs = tmp_path / "envs"
    installer = RequirementsInstaller(envs, pip_args=offline(wheelhouse))

    with pytest.raises(RequirementsError, match="exit 1") as failure:
        await installer.ensure(["sluice_late==2.0"])

    assert "sluice-late==2.0" in failure.value.output
    assert "no matching distribution" in failure.value.output.lower()
    assert listing(envs) == sorted([INSTALL_LOG, f"{environment_key(['sluice_late==2.0'])}.lock"])

    write_wheel(wheelhouse, "sluice_late", "2.0", "VALUE = 'late'\n")
    env = await installer.ensure(["sluice_late==2.0"])

    assert await python("import sluice_late; print(sluice_late.VALUE)", pythonpath=env) == "late"
    assert [run["exit"] for run in pip_runs(envs)] == [1, 0]


async def test_install_timeout_kills_pip_and_leaves_nothing(envs: Path, wheelhouse: Path) -> None:
    installer = RequirementsInstaller(envs, pip_args=offline(wheelhouse), timeout_seconds=0.05)

    with pytest.raises(RequirementsError, match="timed out"):
        await installer.ensure(["sluice_demo"])

    assert [run["exit"] for run in pip_runs(envs)] == [None]
    assert not (envs / environment_key(["sluice_demo"])).exists()
    assert not [name for name in listing(envs) if name.endswith(".tmp")]


async def test_leftovers_of_a_crashed_install_are_not_used_and_are_removed(
    installer: RequirementsInstaller, envs: Path
) -> None:
    key = environment_key(["sluice_demo"])
    leftover = envs / f".{key}.crashed.tmp"
    (leftover / "sluice_demo").mkdir(parents=True)

    env = await installer.ensure(["sluice_demo"])

    assert env == envs / key
    assert (env / "sluice_demo" / "__init__.py").exists()
    assert len(pip_runs(envs)) == 1
    assert not [name for name in listing(envs) if name.endswith(".tmp")]


@pytest.mark.parametrize(
    "requirement",
    [
        "",
        "   ",
        "-e .",
        "--index-url=https://evil.example/simple",
        "-r requirements.txt",
        "six==1.16.0 -i https://evil.example/simple",
        "six==1.16.0 --hash=sha256:00",
        "./six",
        "/tmp/six",
        "six.whl/../x",
        "https://evil.example/six.whl",
        "six @ https://evil.example/six.whl",
        "six; python_version > '3'",
        "six\n--pre",
        "six[",
        "six==",
    ],
)
async def test_bad_requirements_are_rejected_before_pip(
    installer: RequirementsInstaller, envs: Path, requirement: str
) -> None:
    with pytest.raises(RequirementsError, match="invalid requirement"):
        await installer.ensure(["sluice_demo", requirement])

    assert pip_runs(envs) == []


@pytest.mark.parametrize(
    ("requirements", "message"),
    [([], "no requirements"), ("sluice_demo", "not one string"), ([42], "invalid requirement")],
)
def test_requirements_must_be_a_non_empty_list_of_strings(requirements: Any, message: str) -> None:
    with pytest.raises(RequirementsError, match=message):
        normalise(requirements)


@pytest.mark.parametrize(
    ("spellings", "expected"),
    [
        (["Six==1.16.0", " six == 1.16.0 ", "SIX==1.16.0"], ["six==1.16.0"]),
        (["zope.interface[Foo, bar_baz] <6 , >=5"], ["zope-interface[bar-baz,foo]<6,>=5"]),
        (["b", "a~=1.0", "b"], ["a~=1.0", "b"]),
    ],
)
def test_requirements_are_normalised(spellings: Sequence[str], expected: list[str]) -> None:
    assert normalise(spellings) == expected
    assert environment_key(spellings) == environment_key(expected)
