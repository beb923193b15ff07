"""One sandbox child, seen from the worker: start it, run steps on it one at a time, tear it down.

Invariants:
- The protocol has two pipes of its own. The child's fd 1 and 2 are capture pipes, read here
  during a step into a capped `Capture`: step code cannot reach the protocol stream by printing,
  nor make the worker hold more output than the cap.
- A step ends in exactly one `StepResult`. Unless it ends in a well-formed reply, the sandbox is
  killed (its namespace's init, or its process group and every process of its uid) before the
  result is returned.
- `close()` leaves nothing: no process, fd, event-loop reader or temp dir. `gone` says whether
  every process of the sandbox's uid was seen to end; only then may the uid be reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from time import perf_counter

from worker.sandbox import outcome, protocol, uids
from worker.sandbox.capture import STDERR, STDOUT, Capture
from worker.sandbox.launch import Launch, Launcher
from worker.sandbox.outcome import Broken, Event, Exited, Overflow, Reply, Timeout
from worker.sandbox.step import Limits, StepResult, StepStatus

logger = logging.getLogger(__name__)

EXIT_SECONDS = 2.0
"""How long a child may take to exit once its request pipe is closed, or once it is killed."""
STOP_SECONDS = 0.5
"""How long a child asked to stop (process mode: SIGTERM) may take before it is killed."""
CLEAR_SECONDS = 5.0
"""How long killing the last processes of a sandbox uid may take."""
EOF_GRACE_SECONDS = 1.0
"""How long a closed reply pipe may precede the child's exit before it counts as broken."""
PING_SECONDS = 10.0
_READ_BYTES = 64 * 1024
_READS_PER_WAKEUP = 16
_STALE_OUTPUT_BYTES = 4 * 1024 * 1024


class Sandbox:
    """A started child. Not safe for concurrent steps: the pool hands it to one step at a time."""

    def __init__(
        self,
        launch: Launch,
        popen: subprocess.Popen[bytes],
        *,
        pidfd: int,
        request_fd: int,
        reply_fd: int,
        stdout_fd: int,
        stderr_fd: int,
        max_frame_bytes: int,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._launch = launch
        self._popen = popen
        self._pidfd = pidfd
        self._request_fd = request_fd
        self._reply_fd = reply_fd
        self._outputs = {stdout_fd: STDOUT, stderr_fd: STDERR}
        self._max_frame_bytes = max_frame_bytes
        self._decoder = protocol.FrameDecoder(max_frame_bytes)
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._pending: asyncio.Future[Event] | None = None
        self._capture: Capture | None = None
        self._eof_timer: asyncio.TimerHandle | None = None
        self._escalation: asyncio.TimerHandle | None = None
        self._broken: str | None = None
        self._abort: str | None = None
        self._closed = False
        self._terminated = False
        self._served = False
        self.uses = 0
        self.returncode: int | None = None
        self.gone = False
        self._loop.add_reader(reply_fd, self._on_reply)
        self._loop.add_reader(pidfd, self._on_exit)

    @classmethod
    async def start(
        cls, launcher: Launcher, *, uid: int | None, binds: Sequence[str] = ()
    ) -> Sandbox:
        """Spawn a child. The fork happens on the event loop's thread on purpose: bwrap's
        --die-with-parent follows the thread that forked it, which must live as long as we do."""
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        ours = [request_w, reply_r, stdout_r, stderr_r]
        launch: Launch | None = None
        popen: subprocess.Popen[bytes] | None = None
        try:
            launch = launcher.prepare(request_fd=request_r, reply_fd=reply_w, uid=uid, binds=binds)
            popen = subprocess.Popen(  # noqa: ASYNC220 (see the docstring)
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout_w,
                stderr=stderr_w,
                pass_fds=(request_r, reply_w),
                env=launch.env,
                cwd=launch.cwd,
                user=launch.uid,
                group=launch.uid,
                extra_groups=None if launch.uid is None else [],
                start_new_session=True,
            )
            pidfd = os.pidfd_open(popen.pid)
        except BaseException:
            if popen is not None:
                popen.kill()
                popen.wait()
            for fd in ours:
                os.close(fd)
            if launch is not None and launch.temp_dir is not None:
                shutil.rmtree(launch.temp_dir, ignore_errors=True)
            raise
        finally:
            for fd in (request_r, reply_w, stdout_w, stderr_w):
                os.close(fd)
        for fd in ours:
            os.set_blocking(fd, False)
        return cls(
            launch,
            popen,
            pidfd=pidfd,
            request_fd=request_w,
            reply_fd=reply_r,
            stdout_fd=stdout_r,
            stderr_fd=stderr_r,
            max_frame_bytes=launcher.max_frame_bytes,
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def uid(self) -> int | None:
        return self._launch.uid

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
            nested=self._launch.nested,
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
        """Stop the sandbox now; its in-flight step, if any, ends INTERNAL_ERROR with `reason`.

        bwrap: SIGKILL the namespace's init (the child), which kills everything in the namespace;
        bwrap then reaps it and exits. Process mode: SIGTERM the child, whose handler kills every
        other process of its uid, reaps them (it is their subreaper) and exits; SIGKILL follows
        STOP_SECONDS later if it has not. Either way no zombie is left to the host's init, which
        may never reap it."""
        if reason is not None and self._abort is None:
            self._abort = reason
        if self._broken is None:
            self._broken = reason or "it was killed"
        if self.returncode is not None:
            return
        if not self._launch.nested:
            _signal(self.pid, signal.SIGTERM)
            if self._escalation is None:
                self._escalation = self._loop.call_later(STOP_SECONDS, self._kill_hard)
            return
        targets = _children(self.pid)
        for pid in targets:
            _signal(pid, signal.SIGKILL)
        if not targets:  # bwrap has not started it yet
            _signal(-self.pid, signal.SIGKILL)

    def _kill_hard(self) -> None:
        if self.returncode is None:
            _signal(-self.pid, signal.SIGKILL)
        if self.uid is not None and not self._launch.nested:
            uids.kill_all(self.uid)

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
                await self._wait_exit(EXIT_SECONDS)
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
                _discard(fd)
        self._served = True
        self._capture = capture
        for fd in self._outputs:
            self._loop.add_reader(fd, self._on_output, fd)
        self._pending = pending = self._loop.create_future()
        try:
            async with asyncio.timeout(wall_seconds):
                await self._send(frame)
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

    async def _send(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            try:
                view = view[os.write(self._request_fd, view) :]
            except BlockingIOError:
                await self._writable()
            except OSError:
                return  # the child is gone or stopped reading; its exit or the timeout ends it

    async def _writable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(self._request_fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_writer(self._request_fd)

    def _resolve(self, event: Event) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(event)

    def _break(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
        self._resolve(Broken(reason))

    def _on_reply(self) -> None:
        while (data := _read(self._reply_fd)) is not None:
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

    def _on_exit(self) -> None:
        if not self._launch.nested:
            # Until the child is reaped its pid still names its group: kill what is left of it.
            _signal(-self.pid, signal.SIGKILL)
        returncode = self._popen.poll()
        if returncode is None:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self.returncode = returncode
        if self._escalation is not None:
            self._escalation.cancel()
        if self._reply_fd >= 0:
            self._on_reply()  # a reply written just before the exit still counts
        self._resolve(Exited(returncode))
        if not self._exited.done():
            self._exited.set_result(returncode)

    def _on_output(self, fd: int) -> None:
        for _ in range(_READS_PER_WAKEUP):
            data = _read(fd)
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
            while not capture.exceeded and (data := _read(fd)):
                capture.add(stream, data)

    async def _wait_exit(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), seconds)
        except TimeoutError:
            return False
        return True

    async def _terminate(self) -> None:
        """Stop whatever of the sandbox still runs (SIGKILL if asking is not enough) and wait
        until it is gone."""
        if self._terminated:
            return
        self._terminated = True
        self.kill()
        if not await self._wait_exit(STOP_SECONDS + EXIT_SECONDS):
            self._kill_hard()
            if not await self._wait_exit(EXIT_SECONDS):
                logger.error("sandbox process %d did not exit after SIGKILL", self.pid)
        if self.uid is None:
            self.gone = self.returncode is not None
            return
        self.gone = await uids.clear(self.uid, CLEAR_SECONDS)
        if not self.gone:
            logger.error("processes of sandbox uid %d survived SIGKILL", self.uid)

    def _release(self) -> None:
        for timer in (self._eof_timer, self._escalation):
            if timer is not None:
                timer.cancel()
        for fd in (self._request_fd, self._reply_fd, self._pidfd, *self._outputs):
            if fd >= 0:
                self._loop.remove_reader(fd)
                self._loop.remove_writer(fd)
                os.close(fd)
        self._request_fd = self._reply_fd = self._pidfd = -1
        self._outputs = {}
        if self._launch.temp_dir is not None:
            shutil.rmtree(self._launch.temp_dir, ignore_errors=True)


def _read(fd: int) -> bytes | None:
    """Some bytes, b"" at end of stream, None if none are ready."""
    try:
        return os.read(fd, _READ_BYTES)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _discard(fd: int) -> None:
    """Drop output written after the previous step's reply (by threads it left behind)."""
    dropped = 0
    while dropped < _STALE_OUTPUT_BYTES and (data := _read(fd)):
        dropped += len(data)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _signal(pid: int, number: int) -> None:
    """Send a signal to `pid` (a process group if negative), if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, number)
