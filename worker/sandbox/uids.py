"""Dedicated uids for sandboxes, and finding and killing every process of one.

When the worker runs as root, each live sandbox runs under a uid of its own, drawn from a block
that its pool holds (a lock file per block, locked while the pool is open; the block derived
from the worker's pid is tried first), so two pools on one host never share a uid. That makes three
things exact: RLIMIT_NPROC (which never applies to root) counts that sandbox's processes and
nothing else; one project's sandbox cannot signal or inspect another's; and "every process of the
sandbox" is "every process of its uid", whatever sessions, groups or double forks it made.

Invariants: a block is used by one open pool at a time; a uid is handed out again only once no
live process of it remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import tempfile
from collections import deque

DEFAULT_BASE = 0x7000_0000
"""Above the ranges distributions and systemd give to users and containers, below 2**31."""
BLOCK = 64
"""Live sandboxes per worker process."""
_PID_SPAN = 1 << 22
"""The largest pid_max the kernel allows."""
_POLL_SECONDS = 0.002


def block(pid: int, base: int = DEFAULT_BASE) -> range:
    """The block tried first by pools of the worker process `pid`."""
    start = base + (pid % _PID_SPAN) * BLOCK
    return range(start, start + BLOCK)


def claim_block(
    pid: int, base: int = DEFAULT_BASE, lock_dir: str | None = None
) -> tuple[range, int]:
    """A block no other open pool holds, and the fd of its lock: closing it frees the block."""
    directory = lock_dir or tempfile.gettempdir()
    for offset in range(_PID_SPAN):
        uids = block(pid + offset, base)
        path = os.path.join(directory, f"sluice-uids-{uids.start}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uids, fd
    raise RuntimeError("every sandbox uid block is held by an open pool")


class UidPool:
    """Free uids of one block; released ones go to the back, so a uid rests before reuse."""

    def __init__(self, uids: range) -> None:
        self.uids = uids
        self._free = deque(uids)

    def acquire(self) -> int:
        if not self._free:
            raise RuntimeError(
                f"all {len(self.uids)} sandbox uids of this worker are in use; "
                "lower the worker's concurrency or the pool's warm/max_idle"
            )
        return self._free.popleft()

    def release(self, uid: int) -> None:
        self._free.append(uid)

    @property
    def free(self) -> int:
        return len(self._free)


def live_processes(uids: range | int) -> list[int]:
    """Pids of live (not zombie) processes whose real or effective uid is in `uids`."""
    wanted = range(uids, uids + 1) if isinstance(uids, int) else uids
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as status:
                text = status.read()
        except OSError:
            continue
        state = text.find(b"\nState:\t")
        if state >= 0 and text[state + 8 : state + 9] in (b"Z", b"X"):
            continue
        start = text.find(b"\nUid:\t")
        if start < 0:
            continue
        real, effective = text[start + 6 : text.index(b"\n", start + 6)].split()[:2]
        if int(real) in wanted or int(effective) in wanted:
            found.append(int(name))
    return found


def kill_all(uids: range | int) -> int:
    """SIGKILL every live process of `uids`; how many there were."""
    pids = live_processes(uids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


async def clear(uid: int, deadline_seconds: float) -> bool:
    """Kill the processes of `uid` until none is left; False if some survive the deadline.
    Processes can only be found by looking, so this polls (briefly: SIGKILL is prompt, and
    RLIMIT_NPROC bounds how many a sandbox can start meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    while kill_all(uid):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)
    return True
