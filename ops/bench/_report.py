"""Benchmark output: progress lines on stderr, a table on stdout, a JSON record of the run."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

_REPO = Path(__file__).resolve().parents[2]


class Row(NamedTuple):
    figure: str
    value: str
    target: str = ""
    verdict: str = ""


def verdict(ok: bool) -> str:
    """How a table marks a figure against its target."""
    return "ok" if ok else "MISS"


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(pct / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


def progress(message: str, tool: str = "bench") -> None:
    print(f"[{tool}] {message}", file=sys.stderr, flush=True)


def print_table(title: str, rows: Sequence[Row]) -> None:
    header = Row("figure", "value", "target", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    print(f"\n{title}")
    for n, row in enumerate([header, *rows]):
        print(
            f"  {row.figure:<{widths[0]}}  {row.value:>{widths[1]}}  "
            f"{row.target:<{widths[2]}}  {row.verdict}".rstrip()
        )
        if n == 0:
            print("  " + "-" * (sum(widths) + 10))


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=_REPO, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    """What ran where: commit, interpreter, machine and time."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": sys.version,
        "machine": {
            "nproc": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "platform": platform.platform(),
            "architecture": platform.machine(),
        },
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
