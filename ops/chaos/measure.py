"""What a scenario measured, as figures: each with its value, and, where it has one, the
invariant it is held to and whether it held.

The invariants: no 5xx other than 503; one run per idempotency key; every accepted run
in the database; no run left unfinished after settling; every effect of a run once (under
worker-kill a repeat is counted, not held against it: a lost lease may run a step again).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection

from app.flows.model import RunStatus
from ops.bench._report import percentile
from ops.chaos.client import CONNECTION_ERROR, TIMEOUT, Event
from ops.chaos.faults import Window

STEPS = ("first", "second")
"""The flow's two effects, counted per run by the counter server."""
FIGURES = (
    "sent",
    "accepted",
    "gave_up",
    "responses",
    "lost_answers",
    "server_errors",
    "duplicate_keys",
    "lost_runs",
    "unfinished_runs",
    "statuses",
    "repeated_effects",
    "missing_effects",
    "stray_effects",
    "died_unasked",
    "first_success",
    "drained",
)
"""The figures of a scenario, in the order of its table."""
POLL_SECONDS = 0.05
UNFINISHED = "NOT sluice_run_is_final(status)"


@dataclass(frozen=True)
class Figure:
    label: str
    value: Any
    shown: str
    target: str = ""
    held: bool | None = None
    """None: the figure is reported, not held to an invariant."""


@dataclass(frozen=True)
class RunFacts:
    statuses: dict[str, str]
    """Run id → status."""
    keys: Counter[str | None]
    """Idempotency key (from the run's trigger headers) → runs."""


async def connect(url: str) -> AsyncConnection[Any]:
    return await AsyncConnection.connect(url, autocommit=True, application_name="chaos-observer")


async def run_facts(url: str) -> RunFacts:
    async with await connect(url) as conn:
        cur = await conn.execute(
            "SELECT id::text, status, trigger -> 'headers' ->> 'idempotency-key' FROM flow_runs"
        )
        rows = await cur.fetchall()
    return RunFacts({run: status for run, status, _key in rows}, Counter(key for *_, key in rows))


async def unfinished(url: str, created_by: datetime.datetime | None = None) -> int:
    """Runs not yet final (of those created by `created_by`, if given)."""
    async with await connect(url) as conn:
        cur = await conn.execute(
            f"SELECT count(*) FROM flow_runs WHERE {UNFINISHED} "
            "AND created_at <= coalesce(%s::timestamptz, 'infinity')",
            (created_by,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def until_finished(
    url: str, *, created_by: datetime.datetime | None = None, within: float
) -> float | None:
    """`time.monotonic()` once no run (created by `created_by`) is unfinished; None if that
    did not happen within `within` seconds. A database that does not answer yet is asked
    again: this is the recovery being measured."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            if await unfinished(url, created_by) == 0:
                return time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
    return None


def _latency(events: list[Event]) -> dict[str, Any]:
    waits = sorted(e.accepted_at - e.created for e in events if e.accepted_at is not None)
    if not waits:
        return {"events": len(events), "accepted": 0, "p50_ms": None, "p99_ms": None}
    return {
        "events": len(events),
        "accepted": len(waits),
        "p50_ms": round(1000 * percentile(waits, 50), 1),
        "p99_ms": round(1000 * percentile(waits, 99), 1),
    }


def latency_by_phase(events: list[Event], window: Window) -> dict[str, dict[str, Any]]:
    """Accept latency (from the event's start to its 202, retries included) of the events
    that arose before, during and after the fault."""
    phases: dict[str, list[Event]] = {"before": [], "during": [], "after": []}
    for event in events:
        if event.created < window.started:
            phases["before"].append(event)
        elif event.created < window.ended:
            phases["during"].append(event)
        else:
            phases["after"].append(event)
    return {phase: _latency(each) for phase, each in phases.items()}


def first_success_after(events: list[Event], window: Window) -> float | None:
    """Seconds from the end of the fault to the first 202 answering a request sent after it."""
    answers = [
        attempt.answered
        for event in events
        for attempt in event.attempts
        if attempt.outcome == "202" and attempt.sent >= window.ended
    ]
    return min(answers) - window.ended if answers else None


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _count(label: str, value: int, *, zero: bool = True) -> Figure:
    """A count; held to 0 when `zero`, else only reported."""
    return Figure(label, value, str(value), "0" if zero else "", value == 0 if zero else None)


def figures(
    events: list[Event],
    window: Window,
    facts: RunFacts,
    hits: Counter[str],
    *,
    drained_at: float | None,
    repeats_allowed: bool,
    died_unasked: list[str],
) -> dict[str, Figure]:
    attempts = [attempt for event in events for attempt in event.attempts]
    responses = Counter(attempt.outcome for attempt in attempts)
    accepted = [event for event in events if event.run_id is not None]
    server_errors = sum(
        n for outcome, n in responses.items() if outcome.startswith("5") and outcome != "503"
    )
    duplicated = {key: n for key, n in facts.keys.items() if n > 1}
    lost = [e.run_id for e in accepted if e.run_id not in facts.statuses]
    statuses = Counter(facts.statuses.values())
    repeated = missing = 0
    for run, status in facts.statuses.items():
        for step in STEPS:
            count = hits.get(f"{run}.{step}", 0)
            repeated += count > 1
            missing += count == 0 and status == "SUCCEEDED"
    strays = sum(1 for name in hits if name.split(".")[0] not in facts.statuses)
    first_success = first_success_after(events, window)
    drained = None if drained_at is None else drained_at - window.ended
    table = {
        "sent": _count("webhooks sent", len(events), zero=False),
        "accepted": _count("webhooks accepted (202)", len(accepted), zero=False),
        "gave_up": _count(
            "webhooks given up (no answer in time)", sum(e.gave_up for e in events), zero=False
        ),
        "responses": Figure(
            "responses by status",
            dict(sorted(responses.items())),
            ", ".join(f"{outcome} {n}" for outcome, n in sorted(responses.items())),
        ),
        "lost_answers": _count(
            "answers lost (timeouts, connection errors)",
            responses[TIMEOUT] + responses[CONNECTION_ERROR],
            zero=False,
        ),
        "server_errors": _count("5xx other than 503", server_errors),
        "duplicate_keys": Figure(
            "idempotency keys with more than one run",
            len(duplicated),
            f"{len(duplicated)} ({sum(duplicated.values()) - len(duplicated)} extra runs)",
            "0",
            not duplicated,
        ),
        "lost_runs": _count("accepted runs missing from the database", len(lost)),
        "unfinished_runs": _count(
            "runs not terminal after settling",
            sum(n for status, n in statuses.items() if not RunStatus(status).final),
        ),
        "statuses": Figure(
            "runs by status",
            dict(sorted(statuses.items())),
            ", ".join(f"{status} {n}" for status, n in sorted(statuses.items())),
        ),
        "repeated_effects": _count(
            "effects run more than once (run, step)",
            repeated,
            zero=not repeats_allowed,
        ),
        "missing_effects": _count("effects missing from succeeded runs", missing),
        "stray_effects": _count("effects of runs not in the database", strays),
        "died_unasked": Figure(
            "processes that exited unasked",
            died_unasked,
            ", ".join(died_unasked) or "none",
            "none",
            not died_unasked,
        ),
        "first_success": Figure("fault end → first 202", first_success, _seconds(first_success)),
        "drained": Figure("fault end → backlog drained", drained, _seconds(drained)),
    }
    return table


def as_json(table: dict[str, Figure]) -> dict[str, dict[str, Any]]:
    return {name: asdict(figure) for name, figure in table.items()}
