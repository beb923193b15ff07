"""An exclusive lock shared by every process on the host, held through an open file.

The lock is taken with non-blocking ``flock`` attempts and a short, growing pause between
them, rather than a blocking ``flock`` in a thread: a waiter that is cancelled then leaves
nothing behind (no thread that would take the lock later and hold it forever), and waiting
for many keys at once does not tie up the default executor. The kernel releases the lock
when the descriptor closes, so a holder that crashes never leaves it stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

FIRST_PAUSE = 0.005
LONGEST_PAUSE = 0.1


@contextlib.asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on `path` (created if missing) for the block's duration."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        pause = FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
        yield
    finally:
        os.close(fd)
