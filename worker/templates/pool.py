"""The worker's render processes, and the budget each render runs under.

Invariant: a render never runs on the worker's event loop (only inline templates do, see
`app.flows.inline`), and costs at most the budget: CPU time (the process's own timer),
memory (its address-space cap), output (`max_chars`), and wall time (`wall_seconds`, after
which the process is killed, for a render stuck in one C call). A process that is killed,
dies or retires is replaced by a new one at the next render; at most `processes` run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from types import TracebackType
from typing import Any

from app.settings import Settings
from worker.templates import wire

_CHILD_MODULE = "worker.templates.child"
_START_SECONDS = 30.0
"""How long a render process may take to start (not counted in a render's wall time)."""


@dataclasses.dataclass(frozen=True)
class RenderBudget:
    cpu_seconds: float = 0.1
    memory_bytes: int = 64 * 1024 * 1024
    processes: int = 2
    wall_seconds: float = 0.0
    """After this the process is killed (0: the CPU budget's twentyfold, at least 2 s: a
    busy machine is not a reason to fail; only a render stuck in one C call gets here)."""

    def __post_init__(self) -> None:
        if not self.wall_seconds:
            object.__setattr__(self, "wall_seconds", max(2.0, self.cpu_seconds * 20))

    @classmethod
    def of(cls, settings: Settings) -> RenderBudget:
        return cls(
            settings.template_cpu_ms / 1000,
            settings.template_memory_mb * 1024 * 1024,
            settings.template_processes,
        )


@dataclasses.dataclass(frozen=True)
class Rendered:
    """A render's value, or its error; `limit` when a budget stopped it."""

    value: Any = None
    error: str | None = None
    limit: bool = False


class TemplateRenderer:
    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self._slots = asyncio.Semaphore(budget.processes)
        self._idle: list[_Process] = []
        self._running: set[_Process] = set()

    async def __aenter__(self) -> TemplateRenderer:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def pids(self) -> frozenset[int]:
        """The render processes' ids (started and not yet reaped)."""
        return frozenset(process.pid for process in self._running)

    async def close(self) -> None:
        self._idle.clear()
        for process in list(self._running):
            await process.stop()
        self._running.clear()

    async def render(
        self, source: str, context: dict[str, Any], *, condition: bool, max_chars: int
    ) -> Rendered:
        """`source` rendered against `context` in a render process."""
        request = wire.encode(
            {"source": source, "condition": condition, "context": context, "max_chars": max_chars}
        )
        async with self._slots:
            try:
                process = self._idle.pop() if self._idle else await self._start()
            except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError, ValueError):
                return Rendered(error="a render process could not be started", limit=True)
            keep = False
            try:
                answer = await asyncio.wait_for(process.ask(request), self.budget.wall_seconds)
                keep = not answer.get("retire", False)
            except TimeoutError:
                return Rendered(
                    error=f"took longer than {self.budget.wall_seconds:g} s", limit=True
                )
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError):
                await process.stop()
                return Rendered(
                    error=f"the render process died (exit code {process.exit_code()})",
                    limit=True,
                )
            finally:
                if keep:
                    self._idle.append(process)
                else:
                    self._running.discard(process)
                    await process.stop()
        return Rendered(answer.get("value"), answer.get("error"), bool(answer.get("limit")))

    async def _start(self) -> _Process:
        process = _Process(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                _CHILD_MODULE,
                str(self.budget.cpu_seconds),
                str(self.budget.memory_bytes),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
        self._running.add(process)
        try:
            # Start-up (the interpreter, Jinja) is not a render's time: a busy host may
            # take seconds, which must not count against the first render's wall time.
            await asyncio.wait_for(process.ready(), _START_SECONDS)
        except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError, ValueError):
            self._running.discard(process)
            await process.stop()
            raise
        return process


class _Process:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    async def ready(self) -> None:
        """Wait for the process's first frame, which says it has started."""
        if (await self._read()).get("ready") is not True:
            raise ValueError("a render process did not start as expected")

    async def ask(self, request: bytes) -> dict[str, Any]:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(request)
        await stdin.drain()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        stdout = self._process.stdout
        assert stdout is not None
        header = await stdout.readexactly(wire.HEADER_BYTES)
        answer = json.loads(await stdout.readexactly(wire.size(header)))
        if not isinstance(answer, dict):
            raise ValueError("a render process answered something other than an object")
        return answer

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        return self._process.returncode

    async def stop(self) -> None:
        """Kill the process (if it still runs) and reap it."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self._process.wait()
