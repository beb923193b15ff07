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
- With ``egress`` in its config, a relay on 127.0.0.1 of the sandbox's own network namespace
  passes each connection to the worker's egress proxy (which alone decides what is reached)
  and the proxy variables name it; without, no proxy variable is set and nothing listens.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

STEP_FILENAME = "<step>"
_MESSAGE_CHARS = 64 * 1024
_CODE_CACHE_SIZE = 64
_RELAY_CHUNK = 64 * 1024
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


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


def start_relay(egress: str) -> str:
    """Listen on an ephemeral port of 127.0.0.1 and relay each connection to the Unix socket
    `egress`, on a daemon thread; the proxy URL to give clients."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    listener.setblocking(False)
    threading.Thread(target=_Relay(listener, egress).run, name="egress", daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


class _Relay:
    """One thread, one selector: bytes copied both ways, at most one chunk buffered per
    direction, each end's half-close passed on to the other."""

    def __init__(self, listener: socket.socket, egress: str) -> None:
        self.listener = listener
        self.egress = egress
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.peer: dict[socket.socket, socket.socket] = {}
        self.outgoing: dict[socket.socket, bytearray] = {}  # read from the peer, to write here
        self.ended: set[socket.socket] = set()  # whose peer will send nothing more
        self.watching: dict[socket.socket, int] = {}

    def run(self) -> None:
        while True:
            for key, events in self.selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    self.accept()
                    continue
                try:
                    if events & selectors.EVENT_WRITE:
                        self.send(sock)
                    if events & selectors.EVENT_READ and sock in self.peer:
                        self.receive(sock)
                except OSError:
                    self.drop(sock)

    def accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.egress)
        except OSError:
            client.close()
            upstream.close()
            return
        for sock, other in ((client, upstream), (upstream, client)):
            sock.setblocking(False)
            self.peer[sock] = other
            self.outgoing[sock] = bytearray()
        self.watch(client)
        self.watch(upstream)

    def receive(self, sock: socket.socket) -> None:
        other = self.peer[sock]
        data = sock.recv(_RELAY_CHUNK)
        if data:
            self.outgoing[other] += data
        else:
            self.ended.add(other)
            if not self.outgoing[other]:
                other.shutdown(socket.SHUT_WR)
        self.watch(sock)
        self.watch(other)

    def send(self, sock: socket.socket) -> None:
        pending = self.outgoing[sock]
        del pending[: sock.send(pending)]
        if not pending and sock in self.ended:
            sock.shutdown(socket.SHUT_WR)
        self.watch(sock)
        self.watch(self.peer[sock])

    def watch(self, sock: socket.socket) -> None:
        """Wait for what `sock` can do next: write what is pending for it, read while its
        peer's buffer is empty; drop the pair once both directions are done."""
        other = self.peer.get(sock)
        if other is None:
            return
        if {sock, other} <= self.ended and not (self.outgoing[sock] or self.outgoing[other]):
            self.drop(sock)
            return
        events = selectors.EVENT_WRITE if self.outgoing[sock] else 0
        if other not in self.ended and not self.outgoing[other]:
            events |= selectors.EVENT_READ
        watched = self.watching.get(sock, 0)
        if events == watched:
            return
        if not events:
            self.selector.unregister(sock)
            del self.watching[sock]
            return
        if watched:
            self.selector.modify(sock, events)
        else:
            self.selector.register(sock, events)
        self.watching[sock] = events

    def drop(self, sock: socket.socket) -> None:
        for end in (sock, self.peer.get(sock)):
            if end is None or end not in self.peer:
                continue
            if self.watching.pop(end, 0):
                self.selector.unregister(end)
            del self.peer[end], self.outgoing[end]
            self.ended.discard(end)
            end.close()


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
    if config.get("egress"):
        proxy = start_relay(config["egress"])
        os.environ.update(dict.fromkeys(PROXY_VARIABLES, proxy))
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
