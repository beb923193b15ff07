"""A pool of warm sandbox children, each bound to one project.

Invariants:
- A child serves the steps of one project only (with one set of limits and extra paths): it is
  bound to that key at its first step and never handed to another.
- A child is reused only after a success. Any failure, limit hit or oddity retires it, as does
  its `max_uses`-th step; retired children are torn down in the background, and `aclose()`
  waits for all of them, kills children still running steps and leaves nothing behind.
- `run()` answers with a StepResult whatever the step code or the child does; it raises only
  when cancelled (the child is then killed) or when the pool is not open.
- Only a step that asks for network gets a child with the egress proxy's socket (a fresh one,
  or an idle one of the same project that was started for network); in modes that cannot
  keep a child from going around the proxy (process, none) such a step is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Self

from worker.sandbox import inprocess, protocol, uids
from worker.sandbox.egress import EgressProxy
from worker.sandbox.launch import DEFAULT_ENV_ALLOWLIST, Launcher
from worker.sandbox.mode import SandboxMode
from worker.sandbox.process import Sandbox
from worker.sandbox.step import Limits, MiB, StepRequest, StepResult, StepStatus
from worker.steps.guard import IPAddress

logger = logging.getLogger(__name__)

_Key = tuple[str, tuple[str, ...], Limits, bool]


class SandboxPool:
    def __init__(
        self,
        mode: SandboxMode | str,
        *,
        max_uses: int = 100,
        warm: int = 2,
        max_idle: int = 8,
        env_allowlist: Sequence[str] = DEFAULT_ENV_ALLOWLIST,
        python: str | None = None,
        max_frame_bytes: int = protocol.DEFAULT_MAX_FRAME_BYTES,
        tmpfs_bytes: int = 64 * MiB,
        temp_root: str | None = None,
        uid_base: int = uids.DEFAULT_BASE,
        allow_private: bool = False,
        denied: Collection[tuple[IPAddress, int]] = (),
    ) -> None:
        """`warm` unbound children are kept ready for any project; at most `max_idle` bound
        ones wait for another step of theirs. When the worker is root, children run under uids
        of their own, from a block of `uids.BLOCK` the pool holds while it is open (`uids`).
        In process mode each child's HOME is a new directory in `temp_root` (default: the
        system's temporary directory); bwrap children have a private /tmp instead.
        `allow_private` and `denied` are the egress proxy's (`egress.EgressProxy`): steps with
        network reach what the `http` step may, and never the `denied` endpoints."""
        if max_uses < 1 or warm < 0 or max_idle < 0:
            raise ValueError("max_uses must be at least 1, warm and max_idle at least 0")
        self.mode = SandboxMode(mode)
        self.max_uses = max_uses
        self.warm = warm
        self.max_idle = max_idle
        self._env_allowlist = tuple(env_allowlist)
        self._python = python
        self._max_frame_bytes = max_frame_bytes
        self._tmpfs_bytes = tmpfs_bytes
        self._temp_root = temp_root
        self._uid_base = uid_base
        self._dedicated_uids = self.mode is not SandboxMode.NONE and os.geteuid() == 0
        self.uids: range | None = None
        self._uid_lock = -1
        self._uid_pool: uids.UidPool | None = None
        self._launcher: Launcher | None = None
        self._egress: EgressProxy | None = None
        if self.mode is SandboxMode.BWRAP:
            self._egress = EgressProxy(
                allow_private=allow_private,
                denied=denied,
                shared=self._dedicated_uids,
                temp_root=temp_root,
            )
        self._spares: list[Sandbox] = []
        self._idle: OrderedDict[Sandbox, _Key] = OrderedDict()
        self._busy: set[Sandbox] = set()
        self._quiet = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        self._replenisher: asyncio.Task[None] | None = None
        self._open = False
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._open or self._closed:
            raise RuntimeError("a sandbox pool is started once")
        if self.mode is SandboxMode.NONE:
            logger.warning(
                "sandbox mode 'none': step code runs INSIDE the worker process, with no "
                "isolation and no limits but wall time and output; for development only"
            )
        else:
            self._launcher = Launcher(
                self.mode,
                dedicated_uids=self._dedicated_uids,
                python=self._python,
                env_allowlist=self._env_allowlist,
                max_uses=self.max_uses,
                max_frame_bytes=self._max_frame_bytes,
                tmpfs_bytes=self._tmpfs_bytes,
                temp_root=self._temp_root,
            )
        if self._dedicated_uids:
            self.uids, self._uid_lock = uids.claim_block(os.getpid(), self._uid_base)
            self._uid_pool = uids.UidPool(self.uids)
            # Whatever still runs under these uids was left by a pool that died holding them.
            uids.kill_all(self.uids)
        self._open = True
        self._quiet.set()
        try:
            if self._egress is not None:
                await self._egress.start()
            if self._launcher is not None:
                for _ in range(self.warm):
                    self._spares.append(await self._spawn(()))
        except BaseException:
            await self.aclose()
            raise

    def census(self) -> dict[str, int]:
        """Children by state: spare (warm, unbound), idle (warm, bound), busy (in a step)."""
        return {"spare": len(self._spares), "idle": len(self._idle), "busy": len(self._busy)}

    async def run(self, project_key: str, request: StepRequest) -> StepResult:
        """Run one step on a child of `project_key`'s (a warm one if there is one)."""
        if not self._open or self._closed:
            raise RuntimeError("the sandbox pool is not open")
        if request.network and self._egress is None:
            return _refused(
                f"network: true needs sandbox mode 'bwrap', which can confine it to public "
                f"addresses; this worker runs mode {str(self.mode)!r}"
            )
        if self._launcher is None:
            return await inprocess.run(request, max_frame_bytes=self._max_frame_bytes)
        try:
            frame = protocol.encode(_message(request), self._max_frame_bytes)
        except protocol.FrameTooLarge as exc:
            return _refused(f"the step request is {exc.size} bytes; the limit is {exc.limit}")
        except (TypeError, ValueError, RecursionError) as exc:
            return _refused(f"the step's input or ctx is not JSON-serialisable: {exc}")
        paths = tuple(map(os.path.abspath, request.extra_paths))
        key = (project_key, paths, request.limits, request.network)
        try:
            sandbox = await self._checkout(key)
        except (OSError, RuntimeError, ValueError) as exc:
            logger.exception("could not start a sandbox")
            return _refused(f"could not start a sandbox: {exc}", StepStatus.INTERNAL_ERROR)
        self._busy.add(sandbox)
        self._quiet.clear()
        try:
            result = await sandbox.step(frame, request.limits)
        except BaseException:
            self._retire(sandbox, graceful=False)
            raise
        finally:
            self._busy.discard(sandbox)
            if not self._busy:
                self._quiet.set()
        if (
            result.succeeded
            and sandbox.usable
            and sandbox.uses < self.max_uses
            and not self._closed
        ):
            self._idle[sandbox] = key
            while len(self._idle) > self.max_idle:
                self._retire(self._idle.popitem(last=False)[0], graceful=True)
        else:
            self._retire(sandbox, graceful=True)
        return result

    async def aclose(self) -> None:
        """Stop every child (killing those still running a step) and wait until all are gone."""
        self._closed = True
        if self._replenisher is not None:
            self._replenisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replenisher
        for sandbox in self._busy:
            sandbox.kill("the sandbox pool is closing")
        for sandbox in [*self._spares, *self._idle]:
            self._retire(sandbox, graceful=True)
        self._spares.clear()
        self._idle.clear()
        while self._busy or self._closing:
            if self._closing:
                await asyncio.gather(*self._closing)
            else:
                await self._quiet.wait()
        if self._egress is not None:
            await self._egress.aclose()
        if self._uid_lock >= 0:
            os.close(self._uid_lock)
            self._uid_lock = -1

    async def _checkout(self, key: _Key) -> Sandbox:
        for sandbox in reversed([s for s, bound in self._idle.items() if bound == key]):
            del self._idle[sandbox]
            if sandbox.usable:
                return sandbox
            self._retire(sandbox, graceful=False)
        assert self._launcher is not None
        if not key[3] and not self._launcher.needs_binds(key[1]):
            while self._spares:
                spare = self._spares.pop()
                self._replenish()
                if spare.usable:
                    return spare
                self._retire(spare, graceful=False)
        return await self._spawn(key[1], network=key[3])

    async def _spawn(self, binds: Sequence[str], *, network: bool = False) -> Sandbox:
        assert self._launcher is not None
        egress = self._egress.path if network and self._egress is not None else None
        uid = None if self._uid_pool is None else self._uid_pool.acquire()
        try:
            return await Sandbox.start(self._launcher, uid=uid, binds=binds, egress=egress)
        except BaseException:
            if uid is not None and self._uid_pool is not None:
                self._uid_pool.release(uid)
            raise

    def _replenish(self) -> None:
        if self._replenisher is None or self._replenisher.done():
            self._replenisher = asyncio.create_task(self._fill_spares())

    async def _fill_spares(self) -> None:
        try:
            while not self._closed and len(self._spares) < self.warm:
                self._spares.append(await self._spawn(()))
                await asyncio.sleep(0)
        except (OSError, RuntimeError):
            logger.exception("could not start a spare sandbox")

    def _retire(self, sandbox: Sandbox, *, graceful: bool) -> None:
        task = asyncio.create_task(self._close(sandbox, graceful=graceful))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, sandbox: Sandbox, *, graceful: bool) -> None:
        try:
            await sandbox.close(graceful=graceful)
        except Exception:
            logger.exception("closing sandbox process %d failed", sandbox.pid)
        if sandbox.uid is None or self._uid_pool is None:
            return
        if sandbox.gone:
            self._uid_pool.release(sandbox.uid)
        else:
            logger.error(
                "sandbox uid %d is not reused: some of its processes survived", sandbox.uid
            )


def _message(request: StepRequest) -> dict[str, object]:
    limits = request.limits
    return {
        "op": "step",
        "code": request.code,
        "input": request.input,
        "ctx": request.ctx,
        "extra_paths": list(map(os.path.abspath, request.extra_paths)),
        "limits": {
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "processes": limits.processes,
            "open_files": limits.open_files,
        },
    }


def _refused(error: str, status: StepStatus = StepStatus.FAILED) -> StepResult:
    """The answer to a step that never reached a child."""
    return StepResult(status, None, error, None, "", "", 0.0)
