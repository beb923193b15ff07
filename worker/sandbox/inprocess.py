"""Mode ``none``: step code runs in a thread of the worker itself. For development only.

It keeps the result contract (fresh globals, a JSON round trip of the output, the output cap,
TIMEOUT after the wall time) but isolates and limits nothing else: step code sees the worker's
environment and memory, can end the worker (``os._exit``), and a step that times out keeps
running in its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from time import perf_counter
from typing import Any

from worker.sandbox import child, protocol
from worker.sandbox.capture import STDERR, STDOUT, Capture
from worker.sandbox.step import StepRequest, StepResult, StepStatus

logger = logging.getLogger(__name__)


class _CappedWriter(io.TextIOBase):
    def __init__(self, capture: Capture, stream: int) -> None:
        self._capture = capture
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self._capture.add(self._stream, text.encode("utf-8", "backslashreplace")):
            raise OSError("the step's output limit is exceeded")
        return len(text)


async def run(request: StepRequest, *, max_frame_bytes: int) -> StepResult:
    capture = Capture(request.limits.output_bytes)
    compiled: dict[str, Any] = {}

    def execute() -> bytes:
        with (
            contextlib.redirect_stdout(_CappedWriter(capture, STDOUT)),
            contextlib.redirect_stderr(_CappedWriter(capture, STDERR)),
        ):
            reply = child.run_step(
                request.code, request.input, request.ctx, owner=os.getpid(), compiled=compiled
            )
        return child.encode_reply(reply, max_frame_bytes)

    started = perf_counter()
    try:
        frame = await asyncio.wait_for(asyncio.to_thread(execute), request.limits.wall_seconds)
    except TimeoutError:
        logger.warning("sandbox mode 'none': a timed-out step keeps running in its thread")
        reply: Any = {"status": "timeout"}
    else:
        reply = protocol.decode(frame[protocol.HEADER.size :])
    duration = perf_counter() - started
    status, error = _STATUSES[reply["status"]], reply.get("error")
    if capture.exceeded:
        status = StepStatus.LOG_SIZE_EXCEEDED
        error = f"the step wrote more than {request.limits.output_bytes} bytes to stdout and stderr"
    elif status is StepStatus.TIMEOUT:
        error = f"the step ran longer than its wall time limit of {request.limits.wall_seconds:g} s"
    return StepResult(
        status=status,
        output=reply.get("output"),
        error=error,
        traceback=reply.get("traceback"),
        stdout=capture.text(STDOUT),
        stderr=capture.text(STDERR),
        duration_seconds=duration,
    )


_STATUSES = {
    "succeeded": StepStatus.SUCCEEDED,
    "failed": StepStatus.FAILED,
    "memory": StepStatus.MEMORY_LIMIT_EXCEEDED,
    "timeout": StepStatus.TIMEOUT,
}
