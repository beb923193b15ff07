"""The bubblewrap command line, and whether bubblewrap works here.

Invariant: a bwrap sandbox has no network (a network namespace of its own, with only a loopback
nobody listens on), sees of the host's files only the read-only `view` it is given (an empty,
read-only root otherwise: see `view`), has private and size-capped /tmp, /run and /dev/shm
(nothing of the host's, such as PostgreSQL's socket), its own /proc and /dev, its own
PID namespace (killing its init kills every process in it), its own user namespace in which
it is uid/gid 65534 and cannot create further user namespaces, and it dies with the worker.
The child is the namespace's init: when it dies, the kernel kills everything else inside.
A sandbox given `egress` (a step with network) still has no route out: only the egress
proxy's Unix socket, bound at `EGRESS_SOCKET` (see `egress`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence

from worker.sandbox import view as views

SANDBOX_ID = 65534
HOME = "/tmp"
EGRESS_SOCKET = "/run/sluice/egress.sock"


def command(
    inner: Sequence[str],
    *,
    view: Sequence[str],
    binds: Sequence[str] = (),
    tmpfs_bytes: int,
    egress: str | None = None,
    executable: str = "bwrap",
) -> list[str]:
    """`inner` wrapped in bwrap; `view` are the bwrap arguments that mount what it sees of the
    host, `binds` more host paths made visible, read-only, at the same place (a missing one is
    skipped), `egress` the proxy's socket, bound at `EGRESS_SOCKET`."""
    size = str(tmpfs_bytes)
    argv = [
        executable,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid", str(SANDBOX_ID),
        "--gid", str(SANDBOX_ID),
        "--hostname", "sandbox",
        *view,
        "--size", size, "--tmpfs", "/tmp",
        "--size", size, "--tmpfs", "/run",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", size, "--tmpfs", "/dev/shm",
    ]  # fmt: skip
    for path in binds:
        argv += ["--ro-bind-try", path, path]
    if egress is not None:
        argv += ["--ro-bind", egress, EGRESS_SOCKET]
    argv += ["--remount-ro", "/"]
    # --as-pid-1: the child is the namespace's init, so bwrap waits for (and reaps) it directly;
    # with bwrap's own init in between, that init is orphaned to the host's when the child exits.
    argv += ["--chdir", HOME, "--as-pid-1", "--die-with-parent", "--new-session", "--", *inner]
    return argv


@functools.cache
def problem() -> str | None:
    """Why bwrap cannot run our sandboxes here, or None if it can: probed once per process by
    starting a real one (as an unprivileged uid when we are root, as the pool does)."""
    executable = shutil.which("bwrap")
    if executable is None:
        return "bwrap is not on PATH"
    true = os.path.realpath(shutil.which("true") or "/bin/true")
    as_root = os.geteuid() == 0
    try:
        done = subprocess.run(
            command(
                [true],
                view=[*views.system(), "--ro-bind", true, true],
                tmpfs_bytes=1024 * 1024,
                executable=executable,
            ),
            capture_output=True,
            text=True,
            timeout=10,
            env={"PATH": "/usr/bin:/bin"},
            user=SANDBOX_ID if as_root else None,
            group=SANDBOX_ID if as_root else None,
            extra_groups=[] if as_root else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"running bwrap failed: {exc}"
    if done.returncode != 0:
        return f"bwrap exited with {done.returncode}: {done.stderr.strip()[:500]}"
    return None
