from __future__ import annotations

import os
import resource
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tests.sandbox.helpers import step
from worker.sandbox import Limits, SandboxMode, SandboxPool, StepStatus, launch

SECRETS = {
    "SLUICE_DATABASE_URL": "postgresql://sluice:hunter2@db/sluice",
    "PGPASSWORD": "hunter2",
    "SECRET_TOKEN": "s3cr3t",
}
REPORT_SPAWN_SETTINGS = """
import os, resource
NAMES = ["RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_CORE"]
def run(input, ctx):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "env": dict(os.environ),
        "rlimits": {name: resource.getrlimit(getattr(resource, name)) for name in NAMES},
        "cpu_used": usage.ru_utime + usage.ru_stime,
        "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
        "cwd": os.getcwd(),
    }
"""


async def test_the_limits_and_the_allow_listed_environment_reach_the_child_and_nothing_else(
    mode: SandboxMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SECRETS, "TZ": "UTC", "LANG": "C.UTF-8", "PYTHONHASHSEED": "7"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LC_ALL", raising=False)
    limits = Limits(
        wall_seconds=20, cpu_seconds=7, memory_bytes=300 << 20, processes=20, open_files=100
    )
    async with SandboxPool(mode, warm=0) as pool:
        result = await pool.run("p", step(REPORT_SPAWN_SETTINGS, limits=limits))
    assert result.status is StepStatus.SUCCEEDED, result
    report = result.output
    home = report["env"]["HOME"]
    # bwrap's --chdir sets PWD: the sandbox's own directory, nothing of the worker's.
    cwd = {"PWD": home} if mode is SandboxMode.BWRAP else {}
    assert report["env"] == {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONHASHSEED": "7",
        "HOME": home,
        "TMPDIR": home,
        **cwd,
    }
    assert report["cwd"] == home
    rlimits = report["rlimits"]
    assert rlimits["RLIMIT_AS"] == [300 << 20, 300 << 20]
    assert rlimits["RLIMIT_NOFILE"] == [100, 100]
    assert rlimits["RLIMIT_CORE"] == [0, 0]
    soft, hard = rlimits["RLIMIT_CPU"]
    assert 7 <= soft - report["cpu_used"] <= 9
    assert soft < hard != resource.RLIM_INFINITY
    uid, euid, gid, groups = report["uid"]
    if mode is SandboxMode.BWRAP:
        assert home == "/tmp"
        assert (uid, euid, gid) == (65534, 65534, 65534)
    else:
        assert home.startswith(os.path.join(tempfile.gettempdir(), "sluice-sandbox-"))
    if os.geteuid() == 0:
        assert rlimits["RLIMIT_NPROC"] == [20, 20]
        assert 0 not in (uid, euid, gid, *groups)
        if mode is SandboxMode.PROCESS:
            assert pool.uids is not None
            assert uid == euid == gid
            assert uid in pool.uids


def test_a_sandbox_uid_needs_every_directory_on_the_way_to_be_searchable(
    public_dir: Path,
) -> None:
    private = public_dir / "private"
    (private / "bin").mkdir(parents=True)
    tool = private / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    for path in (private, private / "bin", tool):
        path.chmod(0o755)
    assert launch.usable_by_others(str(tool), stat.S_IXOTH)
    link = public_dir / "link"
    link.symlink_to(tool)
    assert launch.usable_by_others(str(link), stat.S_IXOTH)
    private.chmod(0o700)
    assert not launch.usable_by_others(str(tool), stat.S_IXOTH)
    assert not launch.usable_by_others(str(link), stat.S_IXOTH)


def test_an_interpreter_a_sandbox_uid_cannot_run_is_refused(public_dir: Path) -> None:
    hidden = public_dir / "python"
    hidden.write_text("")
    hidden.chmod(0o700)
    with pytest.raises(RuntimeError, match="pass python= to the pool"):
        launch.find_python(str(hidden), for_others=True)
    assert launch.find_python(str(hidden), for_others=False) == str(hidden)


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids are used only by a root worker")
async def test_code_below_a_private_directory_is_staged_where_sandbox_uids_can_read_it(
    mode: SandboxMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkout in /root (mode 0700): a sandbox uid cannot reach child.py there.
    with tempfile.TemporaryDirectory(prefix="sluice-private-") as private:
        os.chmod(private, 0o700)
        child, protocol = Path(private, "child.py"), Path(private, "protocol.py")
        shutil.copyfile(launch.CHILD, child)
        shutil.copyfile(launch.PROTOCOL, protocol)
        assert not launch.usable_by_others(str(child), stat.S_IROTH)
        monkeypatch.setattr(launch, "CHILD", child)
        monkeypatch.setattr(launch, "PROTOCOL", protocol)

        async with SandboxPool(mode, warm=0) as pool:
            result = await pool.run("p", step("def run(input, ctx):\n    return input + 1", 41))

    assert result.status is StepStatus.SUCCEEDED, result.error
    assert result.output == 42
