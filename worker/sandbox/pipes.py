"""Non-blocking pipe I/O for the parent's ends of a sandbox's pipes."""

from __future__ import annotations

import asyncio
import os

_READ_BYTES = 64 * 1024
_STALE_OUTPUT_BYTES = 4 * 1024 * 1024


def read(fd: int) -> bytes | None:
    """Some bytes, b"" at end of stream, None if none are ready."""
    try:
        return os.read(fd, _READ_BYTES)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def discard(fd: int) -> None:
    """Drop output written after the previous step's reply (by threads it left behind)."""
    dropped = 0
    while dropped < _STALE_OUTPUT_BYTES and (data := read(fd)):
        dropped += len(data)


async def write(fd: int, data: bytes) -> None:
    """Write all of `data`, waiting for room; stop quietly if the reader is gone (the child's
    exit or the step's timeout then ends the step)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _writable(fd)
        except OSError:
            return


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
