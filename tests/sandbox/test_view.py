"""What step code sees of the host's files: in bwrap only what it needs; in process mode, all."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import step
from worker.sandbox import SandboxMode, SandboxPool, StepStatus, bwrap, launch, protocol, view
from worker.sandbox.launch import Launcher

CHECKOUT = Path(__file__).resolve().parents[2]
LOOK = """
import os
def run(input, ctx):
    seen = {}
    for path in input:
        if not os.path.lexists(path):
            seen[path] = None
        elif os.path.isdir(path):
            try:
                seen[path] = sorted(os.listdir(path))
            except OSError as exc:
                seen[path] = type(exc).__name__
        else:
            seen[path] = True
    return seen
"""
TZDATA = os.path.isdir("/usr/share/zoneinfo")
HOST_PLACES = ["/root", "/home", "/var", "/var/tmp", "/srv", "/opt", "/mnt", "/etc/passwd"]
HOST_PLACES += ["/etc/group", "/etc/shadow", "/etc/hostname", "/etc/hosts", "/etc/ssh"]


@pytest.fixture
async def sandboxes() -> AsyncIterator[SandboxPool]:
    if (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap is not usable here: {reason}")
    async with SandboxPool(SandboxMode.BWRAP, warm=0) as pool:
        yield pool


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory outside /tmp (the sandbox has its own /tmp), any uid may traverse."""
    path = Path(tempfile.mkdtemp(prefix="sluice-view-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def interpreter() -> view.Interpreter:
    """What the pool's sandboxes run (as `Launcher` finds it)."""
    return view.interpreter(launch.find_python(None, for_others=os.geteuid() == 0))


def way_to_interpreter(directory: str) -> list[str]:
    """The names in `directory` a sandbox must see to reach its interpreter's files."""
    python = interpreter()
    names = set()
    for path in (python.executable, *python.libraries, *python.paths):
        relative = os.path.relpath(path, directory)
        if not relative.startswith(".."):
            names.add(relative.split(os.sep)[0])
    return sorted(names)


async def look(pool: SandboxPool, paths: list[str], project: str = "p") -> dict[str, Any]:
    result = await pool.run(project, step(LOOK, paths))
    assert result.status is StepStatus.SUCCEEDED, result
    seen: dict[str, Any] = result.output
    return seen


async def test_the_checkout_its_git_and_its_venv_are_invisible(sandboxes: SandboxPool) -> None:
    paths = [str(CHECKOUT), str(CHECKOUT / ".git"), str(CHECKOUT / "worker" / "sandbox")]
    if sys.prefix != sys.base_prefix:  # the worker runs in a venv (perhaps in the checkout)
        paths.append(sys.prefix)
    assert await look(sandboxes, paths) == dict.fromkeys(paths)


async def test_home_directories_var_tmp_and_host_configuration_are_invisible(
    mode: SandboxMode,
) -> None:
    async with SandboxPool(mode, warm=0) as pool:
        seen = await look(pool, HOST_PLACES)
    if mode is SandboxMode.PROCESS:  # the control: the fallback mode sees the host's files
        assert seen["/etc/passwd"] is True
        return
    # A home directory exists only if it holds the interpreter, and then shows only the way.
    expected = {path: way_to_interpreter(path) or None for path in HOST_PLACES}
    assert seen == expected


async def test_the_root_holds_the_interpreter_the_libraries_and_the_sandboxs_own_places(
    sandboxes: SandboxPool,
) -> None:
    python = interpreter()
    places = ["/", "/etc", "/usr", "/usr/bin", os.path.dirname(python.executable)]
    seen = await look(sandboxes, places)
    libraries = {"lib", "lib32", "lib64", "libx32"}
    allowed = {"dev", "etc", "proc", "run", "tmp", "sluice", "usr", *libraries}
    assert set(seen["/"]) <= allowed | set(way_to_interpreter("/"))
    assert set(seen["/"]) >= {"dev", "proc", "tmp", "sluice"}
    assert set(seen["/etc"]) <= {"ld.so.cache", "localtime"}
    assert set(seen["/usr"]) <= {"share", *libraries, *way_to_interpreter("/usr")}
    # No host program but the interpreter: a shell, for one, is not there.
    assert seen[os.path.dirname(python.executable)] == [os.path.basename(python.executable)]


async def test_other_projects_requirement_environments_are_invisible(
    sandboxes: SandboxPool, data_dir: Path
) -> None:
    cache = data_dir / "cache" / "requirements"
    for name in ("ours", "theirs"):
        package = cache / f"{name}-key" / f"pkg_{name}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"NAME = {name!r}\n")
        for path in (data_dir, data_dir / "cache", cache, package.parent, package):
            path.chmod(0o755)
        (package / "__init__.py").chmod(0o644)
    (cache / "installs.log").write_text("{}\n")
    code = """
    import os
    def run(input, ctx):
        import pkg_ours
        return [pkg_ours.NAME, sorted(os.listdir(input)), os.path.exists(input + "/theirs-key")]
    """
    request = dataclasses.replace(step(code, str(cache)), extra_paths=[str(cache / "ours-key")])
    result = await sandboxes.run("ours", request)
    assert result.status is StepStatus.SUCCEEDED, result
    assert result.output == ["ours", ["ours-key"], False]
    # A step without requirements sees no environment at all.
    assert await look(sandboxes, [str(data_dir)]) == {str(data_dir): None}


async def test_the_standard_library_and_the_interpreter_work(pool: SandboxPool) -> None:
    code = """
    import ctypes, datetime, decimal, json, sqlite3, ssl, subprocess, sys, time, zoneinfo
    def run(input, ctx):
        database = sqlite3.connect(":memory:")
        ssl.create_default_context()
        offset = None
        if input:
            paris = zoneinfo.ZoneInfo("Europe/Paris")
            offset = datetime.datetime(2024, 7, 1, tzinfo=paris).utcoffset().seconds
        python = [sys.executable, "-c", "print(6 * 7)"]
        return [
            database.execute("select 6 * 7").fetchone()[0],
            str(decimal.Decimal("0.1") * 3),
            json.loads("[1]"),
            offset,
            subprocess.run(python, capture_output=True, text=True, check=True).stdout.strip(),
            time.localtime().tm_year > 2000,
        ]
    """
    result = await pool.run("p", step(code, TZDATA))
    assert result.status is StepStatus.SUCCEEDED, result
    assert result.output == [42, "0.3", [1], 7200 if TZDATA else None, "42", True]


async def test_tmp_is_private_writable_and_shared_with_no_other_sandbox(
    sandboxes: SandboxPool,
) -> None:
    code = """
    import os
    def run(input, ctx):
        before = sorted(os.listdir("/tmp"))
        with open(f"/tmp/{input}", "w") as mark:
            mark.write(input)
        return [before, os.environ["TMPDIR"]]
    """
    first = await sandboxes.run("a", step(code, "a"))
    second = await sandboxes.run("b", step(code, "b"))
    assert (first.output, second.output) == ([[], "/tmp"], [[], "/tmp"])


def test_a_venvs_interpreter_runs_as_its_base_and_nothing_of_the_checkout_is_bound() -> None:
    launcher = Launcher(
        SandboxMode.BWRAP,
        dedicated_uids=False,
        python=sys.executable,
        max_uses=1,
        max_frame_bytes=protocol.DEFAULT_MAX_FRAME_BYTES,
        tmpfs_bytes=1 << 20,
    )
    base = getattr(sys, "_base_executable", sys.executable)
    assert launcher.python == os.path.realpath(base)
    sources = [launcher.view[i + 1] for i, arg in enumerate(launcher.view) if "bind" in arg]
    assert [s for s in sources if Path(s).resolve().is_relative_to(CHECKOUT)] == []
    assert launcher.child == Path(view.CHILD_DIR, "child.py")
