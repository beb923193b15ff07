"""One sandbox child, seen from the worker: start it, run steps on it one at a time, tear it down.

Invariants:
- The child's fd 1 and 2 (pipes of their own, see `spawn`) are read here during a step into a
  capped `Capture`: step code cannot make the worker hold more output than the cap.
- A step ends in exactly one `StepResult`. Unless it ends in a well-formed reply, the sandbox is
  terminated (`Spawned.terminate`) before the result is returned.
- `close()` leaves nothing: no process, fd, event-loop reader or temp dir.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from time import perf_counter

from worker.sandbox import outcome, pipes, protocol
from worker.sandbox.capture import STDERR, STDOUT, Capture
from worker.sandbox.launch import Launcher
from worker.sandbox.outcome import Broken, Event, Exited, Overflow, Reply, Timeout
from worker.sandbox.spawn import EXIT_SECONDS, Spawned, spawn
from worker.sandbox.step import Limits, StepResult, StepStatus

EOF_GRACE_SECONDS = 1.0
"""How long a closed reply pipe may precede the child's exit before it counts as broken."""
PING_SECONDS = 10.0
_READS_PER_WAKEUP = 16


class Sandbox:
    """A started child. Not safe for concurrent steps: the pool hands it to one step at a time."""

    def __init__(self, spawned: Spawned, *, max_frame_bytes: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawned = spawned
        self._request_fd = spawned.pipes.request
        self._reply_fd = spawned.pipes.reply
        self._outputs = {spawned.pipes.stdout: STDOUT, spawned.pipes.stderr: STDERR}
        self._max_frame_bytes = max_frame_bytes
        self._decoder = protocol.FrameDecoder(max_frame_bytes)
        self._pending: asyncio.Future[Event] | None = None
        self._capture: Capture | None = None
        self._eof_timer: asyncio.TimerHandle | None = None
        self._broken: str | None = None
        self._abort: str | None = None
        self._closed = False
        self._served = False
        self.uses = 0
        self._loop.add_reader(self._reply_fd, self._on_reply)
        spawned.watch(self._on_exit)

    @classmethod
    async def start(
        cls,
        launcher: Launcher,
        *,
        uid: int | None,
        binds: Sequence[str] = (),
        egress: str | None = None,
    ) -> Sandbox:
        """Spawn a child (on the event loop's thread, as `spawn` requires)."""
        spawned = spawn(launcher, uid=uid, binds=binds, egress=egress)
        return cls(spawned, max_frame_bytes=launcher.max_frame_bytes)

    @property
    def pid(self) -> int:
        return self._spawned.pid

    @property
    def uid(self) -> int | None:
        return self._spawned.uid

    @property
    def returncode(self) -> int | None:
        return self._spawned.returncode

    @property
    def gone(self) -> bool:
        """Every process of the sandbox's uid was seen to end: only then may the uid be reused."""
        return self._spawned.gone

    @property
    def usable(self) -> bool:
        """Alive, idle, and nothing odd seen: it may take another step."""
        return (
            self.returncode is None
            and self._broken is None
            and self._pending is None
            and not self._closed
        )

    async def step(self, frame: bytes, limits: Limits) -> StepResult:
        """Run one encoded step request."""
        self.uses += 1
        started = perf_counter()
        event, capture = await self._exchange(frame, limits.wall_seconds, limits.output_bytes)
        result = outcome.classify(
            event,
            capture,
            limits,
            perf_counter() - started,
            nested=self._spawned.nested,
            abort=self._abort,
        )
        if result.status is not StepStatus.SUCCEEDED and self._broken is None:
            self._broken = f"its last step ended {result.status}"
        healthy = isinstance(event, Reply) and result.status in outcome.HEALTHY
        if not healthy:
            await self._terminate()
        return result

    async def ping(self) -> None:
        """One round trip; raises RuntimeError (and kills the child) without a pong."""
        frame = protocol.encode({"op": "ping"}, self._max_frame_bytes)
        event, capture = await self._exchange(frame, PING_SECONDS, 64 * 1024)
        if not (isinstance(event, Reply) and event.message == {"status": "pong"}):
            await self._terminate()
            raise RuntimeError(f"the sandbox did not answer a ping: {event}; {capture.text(2)}")

    def kill(self, reason: str | None = None) -> None:
        """Stop the sandbox now (`Spawned.kill`); its in-flight step, if any, ends
        INTERNAL_ERROR with `reason`."""
        self._stopping(reason)
        self._spawned.kill()

    def _stopping(self, reason: str | None) -> None:
        if reason is not None and self._abort is None:
            self._abort = reason
        if self._broken is None:
            self._broken = reason or "it was killed"

    async def close(self, *, graceful: bool = True) -> None:
        """Stop the child (by closing its request pipe, if it is idle and `graceful`; else by
        killing it) and release everything it held."""
        if self._closed:
            return
        self._closed = True
        try:
            if graceful and self.returncode is None and self._pending is None:
                os.close(self._request_fd)
                self._request_fd = -1
                await self._spawned.wait_exit(EXIT_SECONDS)
            await self._terminate()
        finally:
            self._release()

    async def _exchange(
        self, frame: bytes, wall_seconds: float, output_limit: int
    ) -> tuple[Event, Capture]:
        if not self.usable:
            raise RuntimeError(f"this sandbox cannot take a request: {self._broken or 'closed'}")
        capture = Capture(output_limit)
        if self._served:  # before the first request, only startup errors: keep those
            for fd in self._outputs:
                pipes.discard(fd)
        self._served = True
        self._capture = capture
        for fd in self._outputs:
            self._loop.add_reader(fd, self._on_output, fd)
        self._pending = pending = self._loop.create_future()
        try:
            async with asyncio.timeout(wall_seconds):
                await pipes.write(self._request_fd, frame)
                event = await pending
        except TimeoutError:
            event = Timeout()
        except BaseException:
            self.kill("the step was cancelled")
            raise
        finally:
            self._pending = None
            self._finish_output(capture)
        return (Overflow() if capture.exceeded else event), capture

    def _resolve(self, event: Event) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(event)

    def _break(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
        self._resolve(Broken(reason))

    def _on_reply(self) -> None:
        while (data := pipes.read(self._reply_fd)) is not None:
            if not data:
                self._loop.remove_reader(self._reply_fd)
                if self.returncode is None and self._eof_timer is None:
                    self._eof_timer = self._loop.call_later(
                        EOF_GRACE_SECONDS, self._break, "the child closed its reply pipe"
                    )
                return
            try:
                messages = self._decoder.feed(data)
            except protocol.ProtocolError as exc:
                self._loop.remove_reader(self._reply_fd)
                self._break(str(exc))
                return
            for message in messages:
                if self._pending is None or self._pending.done():
                    self._break("the child sent a reply nobody asked for")
                else:
                    self._pending.set_result(Reply(message))

    def _on_exit(self, returncode: int) -> None:
        if self._reply_fd >= 0:
            self._on_reply()  # a reply written just before the exit still counts
        self._resolve(Exited(returncode))

    def _on_output(self, fd: int) -> None:
        for _ in range(_READS_PER_WAKEUP):
            data = pipes.read(fd)
            if data is None:
                return
            if not data:
                self._loop.remove_reader(fd)
                return
            if self._capture is not None and not self._capture.add(self._outputs[fd], data):
                for each in self._outputs:
                    self._loop.remove_reader(each)
                self._resolve(Overflow())
                return

    def _finish_output(self, capture: Capture) -> None:
        """Take what is still in the capture pipes: the child flushes before it replies, so
        this is all the step wrote (up to the cap)."""
        self._capture = None
        for fd, stream in self._outputs.items():
            self._loop.remove_reader(fd)
            while not capture.exceeded and (data := pipes.read(fd)):
                capture.add(stream, data)

    async def _terminate(self) -> None:
        self._stopping(None)
        await self._spawned.terminate()

    def _release(self) -> None:
        if self._eof_timer is not None:
            self._eof_timer.cancel()
        for fd in (self._request_fd, self._reply_fd, *self._outputs):
            if fd >= 0:
                self._loop.remove_reader(fd)
                self._loop.remove_writer(fd)
                os.close(fd)
        self._request_fd = self._reply_fd = -1
        self._outputs = {}
        self._spawned.release()
