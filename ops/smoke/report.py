"""Smoke test output: one timed progress line per step as it ends, then a summary table.

A step passes, fails with its reason, or is skipped with its reason; the smoke test passes
only when no step failed.
"""

from __future__ import annotations

import enum
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

import httpx


class Failure(Exception):
    """A check that missed; the message is the reason."""


class Skipped(Exception):
    """A check that cannot run here; the message says why. Not a failure."""


class Outcome(enum.StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Result:
    name: str
    outcome: Outcome
    seconds: float
    detail: str


class Report:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.results: list[Result] = []

    @property
    def passed(self) -> bool:
        return all(result.outcome is not Outcome.FAIL for result in self.results)

    def note(self, message: str) -> None:
        print(f"[smoke] {message}", file=self.out, flush=True)

    def record(self, name: str, outcome: Outcome, seconds: float, detail: str) -> Result:
        result = Result(name, outcome, seconds, detail)
        self.results.append(result)
        self.note(f"{outcome}: {name}: {detail} ({seconds:.2f} s)")
        return result

    async def step(self, name: str, check: Callable[[], Awaitable[str]]) -> bool:
        """Run `check` (it returns what it found, or raises), time it and record it."""
        started = time.perf_counter()
        try:
            detail = await check()
        except Failure as exc:
            outcome, detail = Outcome.FAIL, str(exc)
        except Skipped as exc:
            outcome, detail = Outcome.SKIP, str(exc)
        except TimeoutError:
            outcome, detail = Outcome.FAIL, "timed out"
        except httpx.HTTPError as exc:
            outcome, detail = Outcome.FAIL, f"{type(exc).__name__}: {exc or 'no detail'}"
        except Exception as exc:
            # A smoke test reports what broke rather than crash on it.
            traceback.print_exc(file=self.out)
            outcome, detail = Outcome.FAIL, f"unexpected {type(exc).__name__}: {exc}"
        else:
            outcome = Outcome.OK
        return self.record(name, outcome, time.perf_counter() - started, detail).outcome is (
            Outcome.OK
        )

    def summary(self) -> None:
        header = ("step", "result", "seconds", "detail")
        rows = [header] + [
            (r.name, str(r.outcome), f"{r.seconds:.2f}", r.detail) for r in self.results
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["", "[smoke] summary"]
        for number, (name, outcome, seconds, detail) in enumerate(rows):
            lines.append(
                f"  {name:<{widths[0]}}  {outcome:<{widths[1]}}  {seconds:>{widths[2]}}  {detail}"
            )
            if number == 0:
                lines.append("  " + "-" * (sum(widths) + 6 + len("detail")))
        failed = [r.name for r in self.results if r.outcome is Outcome.FAIL]
        total = len(self.results)
        if failed:
            lines.append(f"[smoke] FAILED: {len(failed)} of {total} steps ({', '.join(failed)})")
        else:
            skipped = sum(r.outcome is Outcome.SKIP for r in self.results)
            lines.append(
                f"[smoke] passed: {total - skipped} of {total} steps"
                + (f" ({skipped} skipped)" if skipped else "")
            )
        print("\n".join(lines), file=self.out, flush=True)
