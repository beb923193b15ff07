"""Independent views of what sandboxes leave behind: processes, fds, temp dirs."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

from worker.sandbox import Limits, StepRequest

QUICK = Limits(wall_seconds=20)
"""Generous enough for a loaded CI machine; tests of time limits set their own."""


def step(code: str, input: Any = None, *, limits: Limits = QUICK, **ctx: Any) -> StepRequest:
    """A request for `code` (dedented), with `ctx` as keyword arguments."""
    return StepRequest(textwrap.dedent(code), input, ctx, limits)


def processes_of(uids: range | None, *, zombies: bool = True) -> list[int]:
    """Pids whose real uid is in `uids` (zombies included unless told otherwise)."""
    if uids is None:
        return []
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if not zombies and fields.get("State", "").strip().startswith("Z"):
            continue
        if int(fields["Uid"].split()[0]) in uids:
            found.append(int(name))
    return found


def descendants(pid: int | None = None) -> set[int]:
    """Every process below `pid` (this process by default), zombies included."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    todo = [os.getpid() if pid is None else pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def temp_dirs(root: Path) -> list[str]:
    return os.listdir(root)
