"""The sandbox child: reads requests on its request pipe, runs each step's code, replies on its
reply pipe. Started as ``python -I -S -B child.py REQUEST_FD REPLY_FD CONFIG_JSON``.

Invariants:
- It imports the standard library and ``protocol.py`` (loaded by path, so no package
  ``__init__`` runs) and nothing else; step code sees no site-packages, only ``extra_paths``.
- Each step runs in a fresh globals dict; nothing a step binds is visible to the next one.
- Only the child itself replies: a process forked by step code exits as soon as the step
  code returns or raises in it, before a reply could be written.
- The rlimits are set before the first step runs and, except for the CPU soft limit that is
  re-armed for each step, step code cannot raise them again.
- Where the sandbox has its own uid or PID namespace, no process started by a step outlives it.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import resource
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any

STEP_FILENAME = "<step>"
_MESSAGE_CHARS = 64 * 1024
_CODE_CACHE_SIZE = 64


def _load_protocol() -> Any:
    """``protocol.py`` from this file's directory, executed as a module of its own."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.py")
    module = type(sys)("_sluice_sandbox_protocol")
    module.__file__ = path
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module


if TYPE_CHECKING or __package__:
    from worker.sandbox import protocol
else:
    protocol = _load_protocol()


def run_step(code: str, input: Any, ctx: Any, *, owner: int, compiled: dict[str, Any]) -> Any:
    """Compile (cached by source) and run one step in fresh globals; the reply, not yet encoded.

    `owner` is the pid allowed to return: a copy forked by the step code exits instead."""
    try:
        program = compiled.get(code)
        if program is None:
            if len(compiled) >= _CODE_CACHE_SIZE:
                compiled.clear()
            program = compiled[code] = compile(code, STEP_FILENAME, "exec")
    except (SyntaxError, ValueError) as exc:
        return _failure("failed", exc, skip_frames=1)
    linecache.cache[STEP_FILENAME] = (len(code), None, code.splitlines(True), STEP_FILENAME)
    namespace: dict[str, Any] = {"__name__": "__step__"}
    try:
        exec(program, namespace)
        function = namespace.get("run")
        if not callable(function):
            _exit_if_copy(owner)
            return {"status": "failed", "error": "step code must define run(input, ctx)"}
        output = function(input, ctx)
    except MemoryError as exc:
        _exit_if_copy(owner)
        return _failure("memory", exc, skip_frames=1)
    except BaseException as exc:
        _exit_if_copy(owner)
        return _failure("failed", exc, skip_frames=1)
    _exit_if_copy(owner)
    return {"status": "succeeded", "output": output}


def encode_reply(reply: Any, max_bytes: int) -> bytes:
    """The reply as a frame; a step output that is not JSON or too large becomes a failure."""
    try:
        return protocol.encode(reply, max_bytes)
    except protocol.FrameTooLarge as exc:
        error = f"run() returned {exc.size} bytes of JSON; the limit is {exc.limit} bytes"
    except (TypeError, ValueError, RecursionError) as exc:
        error = f"run() returned a value that is not JSON-serialisable: {_describe(exc)}"
    return protocol.encode({"status": "failed", "error": error}, max_bytes)


def _exit_if_copy(owner: int) -> None:
    if os.getpid() != owner:
        os._exit(0)


def _failure(status: str, exc: BaseException, *, skip_frames: int) -> dict[str, Any]:
    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb is not None else None
    lines = traceback.format_exception(type(exc), exc, tb)
    return {
        "status": status,
        "error": _text(_describe(exc)),
        "traceback": _text("".join(lines)),
    }


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _text(value: str) -> str:
    """Bounded and encodable: lone surrogates escaped, the middle of long texts cut."""
    if len(value) > _MESSAGE_CHARS:
        half = _MESSAGE_CHARS // 2
        value = f"{value[:half]}\n… [{len(value) - 2 * half} characters cut] …\n{value[-half:]}"
    return value.encode("utf-8", "backslashreplace").decode()


class _Child:
    """The child's state across steps: the limits once set, the code cache, its own pid."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.owner = os.getpid()
        self.compiled: dict[str, Any] = {}
        self.limited = False
        self.cpu_hard = resource.RLIM_INFINITY
        self.home = os.getcwd()
        self.path = list(sys.path)

    def handle(self, message: Any) -> Any:
        op = message.get("op") if isinstance(message, dict) else None
        if op == "ping":
            return {"status": "pong"}
        if op != "step":
            return {"status": "error", "error": f"unknown request {op!r}"}
        try:
            self.limit(message["limits"])
        except (KeyError, TypeError, ValueError, OSError) as exc:
            return {"status": "error", "error": f"could not set the limits: {_describe(exc)}"}
        return self.step(message)

    def step(self, message: dict[str, Any]) -> Any:
        sys.path[:0] = message.get("extra_paths", [])
        try:
            return run_step(
                message["code"],
                message.get("input"),
                message.get("ctx", {}),
                owner=self.owner,
                compiled=self.compiled,
            )
        finally:
            self.restore()
            self.sweep()

    def limit(self, limits: dict[str, Any]) -> None:
        """Set the hard limits once, then re-arm the CPU soft limit for this step."""
        if not self.limited:
            memory, files = limits["memory_bytes"], limits["open_files"]
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
            if self.config["limit_processes"]:
                count = limits["processes"]
                resource.setrlimit(resource.RLIMIT_NPROC, (count, count))
            # The CPU hard limit has to leave room for every step this child may serve.
            self.cpu_hard = _cpu_used() + limits["cpu_seconds"] * self.config["max_uses"] + 1
            self.limited = True
        soft = min(_cpu_used() + limits["cpu_seconds"], self.cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, self.cpu_hard))

    def restore(self) -> None:
        """Undo what a step may have changed in the interpreter, and flush its output, so that
        everything it printed is in the capture pipes before the reply is written."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        sys.path[:] = self.path
        with contextlib.suppress(OSError):
            os.chdir(self.home)

    def stop(self, signum: int, frame: object) -> None:
        """The parent's request to stop now (process mode), even amid a step: end the step's
        processes and reap them here, then exit."""
        if os.getpid() == self.owner:
            self.sweep()
        os._exit(128 + signum)

    def sweep(self) -> None:
        """Kill whatever the step left running and reap it. Only where every other process
        this signal can reach belongs to this sandbox: its own uid or PID namespace."""
        if not self.config["sweep"] or os.getuid() == 0:
            return
        with contextlib.suppress(ProcessLookupError):  # nothing else in our namespace
            os.kill(-1, signal.SIGKILL)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
            except InterruptedError:
                continue


def _cpu_used() -> int:
    """CPU seconds used so far, rounded up: a step gets at least its limit, never less."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int(usage.ru_utime + usage.ru_stime) + 1


def _cpu_exceeded(signum: int, frame: object) -> None:
    os._exit(128 + signum)  # as a shell (and bwrap) reports death by that signal


def _harden(parent: int) -> None:
    """Without namespaces: adopt orphaned descendants (so they are reaped here, not left as
    zombies of the host's init), forbid gaining privileges through setuid executables, and
    get SIGTERM (whose handler kills and reaps every process of the sandbox) when the worker
    dies, even by SIGKILL."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig, pr_set_child_subreaper, pr_set_no_new_privs = 1, 36, 38
    for option, value in (
        (pr_set_child_subreaper, 1),
        (pr_set_no_new_privs, 1),
        (pr_set_pdeathsig, int(signal.SIGTERM)),
    ):
        if libc.prctl(option, value, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl({option}) failed")
    if os.getppid() != parent:
        os._exit(1)  # the worker died before the death signal was armed


def main(argv: list[str]) -> int:
    parent = os.getppid()
    request_fd, reply_fd, config = int(argv[1]), int(argv[2]), json.loads(argv[3])
    sys.argv = [STEP_FILENAME]
    for fd in (request_fd, reply_fd):
        os.set_inheritable(fd, False)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getpid() == 1:
        # A namespace's init ignores signals it has no handler for, SIGXCPU included.
        signal.signal(signal.SIGXCPU, _cpu_exceeded)
    child = _Child(config)
    if config["harden"]:
        signal.signal(signal.SIGTERM, child.stop)
        _harden(parent)
    max_bytes = config["max_frame_bytes"]
    while True:
        try:
            message = protocol.read_frame(request_fd, max_bytes)
        except EOFError:
            child.sweep()
            return 0
        except protocol.ProtocolError as exc:
            print(f"sandbox child: {exc}", file=sys.__stderr__, flush=True)
            return 2
        protocol.write_frame(reply_fd, encode_reply(child.handle(message), max_bytes))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
