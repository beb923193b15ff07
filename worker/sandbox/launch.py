"""How a sandbox child is started in a given mode: command line, environment, credentials.

Invariants:
- The child's environment is built from an allow-list; nothing else of the worker's environment
  (database URL, passwords, tokens) reaches it, and it is given no connection of any kind.
- The child runs ``child.py`` by path under ``python -I -S -B``: no site-packages, no PYTHON*
  variables, no script directory on ``sys.path``. In bwrap mode it runs the base interpreter
  (not a venv's) and a copy of ``child.py`` and ``protocol.py`` staged for this process, so the
  sandbox's view (`view`) need not include the checkout.
- When the worker is root the child never is: it runs under the uid it is given (bwrap then maps
  it to 65534 inside its user namespace).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.sandbox import bwrap, view
from worker.sandbox.mode import SandboxMode

CHILD = Path(__file__).with_name("child.py")
PROTOCOL = Path(__file__).with_name("protocol.py")
DEFAULT_ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Launch:
    """Everything `subprocess.Popen` needs to start one child, plus what to clean up after it."""

    argv: list[str]
    env: dict[str, str]
    uid: int | None
    cwd: str
    temp_dir: str | None
    """Created for this child (its HOME in process mode); removed when it is closed."""
    nested: bool
    """The started process is bwrap, outside the sandbox; its child is the sandbox's init."""


class Launcher:
    """Builds launches for one pool: its mode, interpreter and environment allow-list."""

    def __init__(
        self,
        mode: SandboxMode,
        *,
        dedicated_uids: bool,
        python: str | None = None,
        env_allowlist: Sequence[str] = DEFAULT_ENV_ALLOWLIST,
        max_uses: int,
        max_frame_bytes: int,
        tmpfs_bytes: int,
        temp_root: str | None = None,
    ) -> None:
        if mode is SandboxMode.NONE:
            raise ValueError("mode 'none' starts no child")
        self.mode = mode
        self.dedicated_uids = dedicated_uids
        self.python = find_python(python, for_others=dedicated_uids)
        self.child = CHILD
        self.view: list[str] = []
        if mode is SandboxMode.BWRAP:
            interpreter = view.interpreter(self.python)
            self.python = interpreter.executable
            staged = staged_child(CHILD, PROTOCOL).parent
            self.view = view.mounts(interpreter, child_dir=str(staged))
            self.child = Path(view.CHILD_DIR, CHILD.name)
        elif dedicated_uids:
            self.child = child_for_others()
        self.env_allowlist = tuple(env_allowlist)
        self.max_uses = max_uses
        self.max_frame_bytes = max_frame_bytes
        self.tmpfs_bytes = tmpfs_bytes
        self.temp_root = temp_root
        self.bwrap = shutil.which("bwrap") or "bwrap"

    def needs_binds(self, paths: Sequence[str]) -> bool:
        """Whether a child must be started for `paths` (a spare would not see them)."""
        return self.mode is SandboxMode.BWRAP and bool(paths)

    def prepare(
        self,
        *,
        request_fd: int,
        reply_fd: int,
        uid: int | None,
        binds: Sequence[str] = (),
        egress: str | None = None,
    ) -> Launch:
        """A launch; in process mode this creates the child's private HOME directory.
        `egress`: the egress proxy's socket, for a child whose steps have network (bwrap only:
        no other mode can keep it from going around the proxy)."""
        nested = self.mode is SandboxMode.BWRAP
        if egress is not None and not nested:
            raise ValueError(f"network cannot be enforced in sandbox mode {self.mode!r}")
        config: dict[str, object] = {
            "max_frame_bytes": self.max_frame_bytes,
            "max_uses": self.max_uses,
            # kill(-1) after a step reaches only the sandbox: its PID namespace or its own uid.
            "sweep": nested or uid is not None,
            # RLIMIT_NPROC counts per uid: exact in a user namespace or under a dedicated uid.
            "limit_processes": nested or uid is not None,
            "harden": not nested,
        }
        if egress is not None:
            config["egress"] = bwrap.EGRESS_SOCKET
        inner = [self.python, "-I", "-S", "-B", str(self.child), str(request_fd), str(reply_fd)]
        inner.append(json.dumps(config, separators=(",", ":")))
        if nested:
            argv = bwrap.command(
                inner,
                view=self.view,
                binds=binds,
                tmpfs_bytes=self.tmpfs_bytes,
                egress=egress,
                executable=self.bwrap,
            )
            return Launch(argv, self.env(bwrap.HOME), uid, "/", None, nested=True)
        temp_dir = tempfile.mkdtemp(prefix="sluice-sandbox-", dir=self.temp_root)
        if uid is not None:
            os.chown(temp_dir, uid, uid)
        return Launch(inner, self.env(temp_dir), uid, temp_dir, temp_dir, nested=False)

    def env(self, home: str) -> dict[str, str]:
        env = {name: os.environ[name] for name in self.env_allowlist if name in os.environ}
        env.setdefault("PATH", _DEFAULT_PATH)
        env.setdefault("LANG", "C.UTF-8")
        env["HOME"] = env["TMPDIR"] = home
        return env


def find_python(explicit: str | None, *, for_others: bool) -> str:
    """The interpreter for children: `explicit`, else this one, else another of the same
    version; when children run under another uid it must be able to execute it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [explicit] if explicit else [sys.executable, shutil.which(version)]
    candidates += [] if explicit else [f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for candidate in candidates:
        if candidate and (not for_others or usable_by_others(candidate, stat.S_IXOTH)):
            return candidate
    raise RuntimeError(
        f"no {version} interpreter that a sandbox uid may execute (tried "
        f"{', '.join(c for c in candidates if c)}); pass python= to the pool"
    )


def child_for_others(child: Path | None = None, protocol: Path | None = None) -> Path:
    """A `child.py` (next to its `protocol.py`) that a sandbox uid can read: the installed
    one, or — when the code lives below a directory other users cannot enter, such as a
    checkout in /root — a staged copy."""
    child, protocol = child or CHILD, protocol or PROTOCOL
    if all(usable_by_others(str(p), stat.S_IROTH) for p in (child, protocol)):
        return child
    return staged_child(child, protocol)


@functools.cache
def staged_child(child: Path, protocol: Path) -> Path:
    """Copies of `child.py` and `protocol.py` (nothing else: they need only the standard
    library) in a fresh world-readable directory, made once per process and removed at exit."""
    base = "/var/tmp" if usable_by_others("/var/tmp", stat.S_IXOTH) else tempfile.gettempdir()
    staged = Path(tempfile.mkdtemp(prefix="sluice-child-", dir=base))
    atexit.register(shutil.rmtree, staged, ignore_errors=True)
    staged.chmod(0o755)
    for source in (child, protocol):
        target = staged / source.name
        shutil.copyfile(source, target)
        target.chmod(0o644)
    if not usable_by_others(str(staged / child.name), stat.S_IROTH):
        raise RuntimeError(
            f"{child} is not readable by other users, and neither is a copy in {staged}, "
            "so a sandbox uid cannot run it"
        )
    return staged / child.name


def usable_by_others(path: str, bit: int) -> bool:
    """Whether a user that is neither owner nor group can reach `path` and use it as `bit`
    (following symlinks: every directory on the way must be searchable)."""
    try:
        real = os.path.realpath(path)
        mode = os.stat(real).st_mode
    except OSError:
        return False
    if not mode & bit:
        return False
    for parent in [*Path(real).parents, *Path(os.path.abspath(path)).parents]:
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True
