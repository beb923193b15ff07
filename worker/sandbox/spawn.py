"""Starting a sandbox child, and stopping every process of it.

Invariants:
- The protocol has two pipes of its own (request and reply); the child's fd 1 and 2 are two
  more, for capture, so step code cannot reach the protocol stream by printing.
- Stopping kills every process of the sandbox: in bwrap mode its namespace's init, which takes
  everything in the namespace with it; in process mode its process group and every process of
  its uid. No zombie is left to the host's init, which may never reap it. `gone` says whether
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worker.sandbox import uids
from worker.sandbox.launch import Launch, Launcher

logger = logging.getLogger(__name__)

EXIT_SECONDS = 2.0
"""How long a child may take to exit once its request pipe is closed, or once it is killed."""
STOP_SECONDS = 0.5
"""How long a child asked to stop (process mode: SIGTERM) may take before it is killed."""
CLEAR_SECONDS = 5.0
"""How long killing the last processes of a sandbox uid may take."""


@dataclass(frozen=True)
class Pipes:
    """The parent's ends, non-blocking; whoever holds them closes them."""

    request: int
    reply: int
    stdout: int
    stderr: int


def spawn(
    launcher: Launcher, *, uid: int | None, binds: Sequence[str] = (), egress: str | None = None
) -> Spawned:
    """Start a child. Call it on the event loop's thread: bwrap's --die-with-parent follows the
    thread that forked it, which must live as long as we do."""
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    ours = [request_w, reply_r, stdout_r, stderr_r]
    launch: Launch | None = None
    popen: subprocess.Popen[bytes] | None = None
    try:
        launch = launcher.prepare(
            request_fd=request_r, reply_fd=reply_w, uid=uid, binds=binds, egress=egress
        )
        popen = subprocess.Popen(
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
    return Spawned(launch, popen, pidfd, Pipes(request_w, reply_r, stdout_r, stderr_r))


class Spawned:
    """A started child's processes: watched through a pidfd, stopped by `kill` or `terminate`.

    `pipes` pass to the caller; the pidfd and the temp dir are released by `release()`.
    """

    def __init__(
        self, launch: Launch, popen: subprocess.Popen[bytes], pidfd: int, pipes: Pipes
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._launch = launch
        self._popen = popen
        self._pidfd = pidfd
        self.pipes = pipes
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._on_exit: Callable[[int], None] = lambda returncode: None
        self._escalation: asyncio.TimerHandle | None = None
        self._terminated = False
        self.returncode: int | None = None
        self.gone = False
        self._loop.add_reader(pidfd, self._exit_seen)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def uid(self) -> int | None:
        return self._launch.uid

    @property
    def nested(self) -> bool:
        return self._launch.nested

    def watch(self, on_exit: Callable[[int], None]) -> None:
        """Call `on_exit(returncode)` once the child has exited and been reaped."""
        self._on_exit = on_exit

    def kill(self) -> None:
        """Stop the child now.

        bwrap: SIGKILL the namespace's init (the child), which kills everything in the namespace;
        bwrap then reaps it and exits. Process mode: SIGTERM the child, whose handler kills every
        other process of its uid, reaps them (it is their subreaper) and exits; SIGKILL follows
        STOP_SECONDS later if it has not."""
        if self.returncode is not None:
            return
        if not self.nested:
            _signal(self.pid, signal.SIGTERM)
            if self._escalation is None:
                self._escalation = self._loop.call_later(STOP_SECONDS, self._kill_hard)
            return
        targets = _children(self.pid)
        for pid in targets:
            _signal(pid, signal.SIGKILL)
        if not targets:  # bwrap has not started it yet
            _signal(-self.pid, signal.SIGKILL)

    async def terminate(self) -> None:
        """Stop whatever of the sandbox still runs (SIGKILL if asking is not enough) and wait
        until it is gone."""
        if self._terminated:
            return
        self._terminated = True
        self.kill()
        if not await self.wait_exit(STOP_SECONDS + EXIT_SECONDS):
            self._kill_hard()
            if not await self.wait_exit(EXIT_SECONDS):
                logger.error("sandbox process %d did not exit after SIGKILL", self.pid)
        if self.uid is None:
            self.gone = self.returncode is not None
            return
        self.gone = await uids.clear(self.uid, CLEAR_SECONDS)
        if not self.gone:
            logger.error("processes of sandbox uid %d survived SIGKILL", self.uid)

    async def wait_exit(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), seconds)
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        if self._escalation is not None:
            self._escalation.cancel()
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if self._launch.temp_dir is not None:
            shutil.rmtree(self._launch.temp_dir, ignore_errors=True)

    def _kill_hard(self) -> None:
        if self.returncode is None:
            _signal(-self.pid, signal.SIGKILL)
        if self.uid is not None and not self.nested:
            uids.kill_all(self.uid)

    def _exit_seen(self) -> None:
        if not self.nested:
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
        self._on_exit(returncode)
        if not self._exited.done():
            self._exited.set_result(returncode)


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
