"""A render process: reads render requests on stdin, answers each on stdout.

Run as ``python -m worker.templates.child CPU_SECONDS MEMORY_BYTES``. Each render runs under
a CPU-time timer (ITIMER_PROF: a long Python-level render is stopped when it fires) in a
process whose address space is capped at its size after start-up plus MEMORY_BYTES (a huge
allocation fails with MemoryError). A render stuck in one C call past the timer is the
parent's to kill (`worker.templates.pool`). After a MemoryError the process answers and
exits, and the parent starts another.

First ``{"ready": true}``; then per request ``{"source", "condition", "context",
"max_chars"}`` an answer ``{"value"}``,
or ``{"error", "limit"}`` (`limit`: a budget was hit, rather than an error in the template),
with ``"retire": true`` when the process exits after it.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from types import FrameType
from typing import Any

from app.flows import templating
from worker.templates import wire


class _OverBudget(BaseException):
    """Raised by the CPU timer; a BaseException so that no `except Exception` in a filter
    or in Jinja swallows it."""


def _on_timer(_signum: int, _frame: FrameType | None) -> None:
    raise _OverBudget


def main(argv: list[str]) -> int:
    cpu_seconds, memory_bytes = float(argv[0]), int(argv[1])
    signal.signal(signal.SIGPROF, _on_timer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's Ctrl-C is the worker's
    _cap_memory(memory_bytes)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(wire.encode({"ready": True}))  # the wall clock starts after start-up
    stdout.flush()
    while True:
        request = wire.read(stdin)
        if request is None:
            return 0
        answer, retire = _answer(request, cpu_seconds, memory_bytes)
        stdout.write(wire.frame(answer) if isinstance(answer, bytes) else wire.encode(answer))
        stdout.flush()
        if retire:
            return 0


def _answer(
    request: dict[str, Any], cpu_seconds: float, memory_bytes: int
) -> tuple[dict[str, Any] | bytes, bool]:
    """The answer to one request (an encoded one when it is a value), and whether this
    process should exit after it."""
    source, max_chars = request["source"], request["max_chars"]
    try:
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
        try:
            if request["condition"]:
                compiled = templating.compile_condition(source)
            else:
                compiled = templating.compile_template(source)
            value = compiled.evaluate(request["context"], max_chars)
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OverBudget:
        return _limit(f"used more than {cpu_seconds * 1000:g} ms of CPU time"), False
    except MemoryError:
        answer = _limit(f"needed more than {memory_bytes // 2**20} MiB of memory")
        return {**answer, "retire": True}, True
    except templating.TemplateLimit as exc:
        return _limit(exc.message), False
    except templating.TemplateError as exc:
        return {"error": exc.message, "limit": False}, False
    if len(text) > max_chars:
        return _limit(f"renders more than {max_chars:,} characters"), False
    return b'{"value":' + text.encode() + b"}", False


def _limit(message: str) -> dict[str, Any]:
    return {"error": message, "limit": True}


def _cap_memory(memory_bytes: int) -> None:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    limit = pages * resource.getpagesize() + memory_bytes
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
