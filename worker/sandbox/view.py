"""What a bwrap sandbox sees of the host's filesystem.

Invariant: a sandbox sees the interpreter's real executable (never a venv around it, so not the
checkout a venv lives in), the directories on its start-up ``sys.path`` (the standard library,
with any site-packages directory in them masked), the shared library it links and the system's
libraries, loader cache and time-zone database, the staged child program at `CHILD_DIR`, and
the binds a step is given (its own requirements environment). Everything else is bwrap's empty
root, read-only: no checkout, home directory, other environment, ``/var/tmp`` or host
configuration such as ``/etc/passwd``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CHILD_DIR = "/sluice"
"""Where the staged child program appears in the sandbox."""
SYSTEM_LIBRARIES = (
    "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/lib", "/lib64", "/lib32", "/libx32",
)  # fmt: skip
"""Bound when they are directories, recreated when they are symlinks (a merged /usr)."""
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo")
MASKED = ("site-packages", "dist-packages")
"""Directories below the standard library that hold the host's own packages, not the step's."""

_PROBE = """
import json, os, sys, sysconfig
library = []
if sysconfig.get_config_var("Py_ENABLE_SHARED"):
    name = os.path.join(
        sysconfig.get_config_var("LIBDIR") or "", sysconfig.get_config_var("INSTSONAME") or ""
    )
    if os.path.isfile(name):
        library.append(os.path.abspath(name))
base = getattr(sys, "_base_executable", "")
print(json.dumps({
    "base": os.path.realpath(base if os.path.isfile(base) else sys.executable),
    "paths": [os.path.abspath(path) for path in sys.path if os.path.isdir(path)],
    "libraries": library,
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A base interpreter as a sandbox needs it: the file to run and what it reads at start."""

    executable: str
    paths: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()


@functools.cache
def interpreter(python: str) -> Interpreter:
    """The base interpreter behind `python` (a venv's is resolved to the one it was made from),
    asked under ``-I -S`` as the child runs it. One that cannot answer is bound alone, so that
    the child's own start fails and reports why."""
    asked = _probe(python)
    if asked is None:
        return Interpreter(os.path.realpath(python))
    if asked.executable == os.path.realpath(python):
        return asked
    base = _probe(asked.executable)
    return (
        base
        if base is not None and base.executable == asked.executable
        else Interpreter(asked.executable)
    )


def _probe(python: str) -> Interpreter | None:
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            check=False,
        )
        if done.returncode == 0:
            answer = json.loads(done.stdout)
            return Interpreter(
                str(answer["base"]), tuple(answer["paths"]), tuple(answer["libraries"])
            )
        detail = done.stderr.strip()[:500]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        detail = str(exc)
    logger.warning("could not ask %s what it needs in a sandbox: %s", python, detail)
    return None


def system() -> list[str]:
    """bwrap arguments for the system's libraries, loader cache and time zones."""
    argv: list[str] = []
    for path in SYSTEM_LIBRARIES:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in SYSTEM_FILES:
        argv += ["--ro-bind-try", path, path]
    return argv


def mounts(python: Interpreter, *, child_dir: str) -> list[str]:
    """bwrap arguments for everything a sandbox sees before a step's own binds."""
    argv = system()
    for path in (python.executable, *python.libraries, *python.paths):
        argv += ["--ro-bind", path, path]
    for path in _masked(python.paths):
        argv += ["--tmpfs", path, "--remount-ro", path]
    return [*argv, "--ro-bind", child_dir, CHILD_DIR]


def _masked(paths: Sequence[str]) -> list[str]:
    return [
        os.path.join(path, name)
        for path in paths
        for name in MASKED
        if os.path.isdir(os.path.join(path, name))
    ]
