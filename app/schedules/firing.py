"""Firing schedules (the maintenance leader's pass) and reading their state.

The only module that runs ``app/sql/schedules.sql``.

Invariant (each due tick is one run, exactly once): a tick is inserted together with its
run in one statement (``fire_ticks``) under the primary key (flow, rule, tick time) of
``schedule_ticks``, so passes that race for a tick (two connections; an old and a new leader
across a change) start one run between them, and a tick fired before is never fired again.
The leader keeps no state: ticks are a pure function of the rule (`rules`), and each pass
goes on from the latest tick recorded (or, for a schedule that has none, from the deploy of
its flow's latest version), so whichever worker leads next computes the same ticks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from app import queries
from app.flows import resume
from app.flows.control import RunBudget
from app.flows.stored import jsonb
from app.flows.triggers import ScheduleTrigger
from app.schedules import rules

_SQL = queries.load("schedules")

PAGE = 500
TICK_WINDOW_SECONDS = 86_400.0
"""Ticks older than this are forgotten (each schedule's latest is kept)."""


@dataclass(frozen=True)
class Schedule:
    """A schedule of a live flow's latest version, with where its ticks stand."""

    flow_id: UUID
    project_id: int
    flow: str
    enabled: bool
    version_id: int
    version: int
    deployed_at: datetime
    position: int
    """Its index among the flow's triggers (0 for a lone trigger)."""
    trigger: ScheduleTrigger
    last_tick_at: datetime | None
    last_run_at: datetime | None

    @property
    def rule(self) -> rules.Rule:
        return rules.Rule.of(self.trigger)

    def due(self, now: datetime) -> list[datetime]:
        since = self.last_tick_at or self.deployed_at
        return rules.due(self.rule, self.trigger.catch_up, since=since, now=now)

    def run_trigger(self, tick: datetime) -> dict[str, Any]:
        """What a tick's run sees as ``trigger``."""
        return {
            "body": self.trigger.input,
            "headers": {},
            "query": {},
            "scheduled_at": tick.isoformat(),
            "schedule": self.position,
        }


@dataclass(frozen=True)
class Fired:
    """A tick inserted by this pass: `outcome` ``run`` (with `run_id`), ``overlap`` or
    ``cap``."""

    flow_id: UUID
    rule: str
    tick_at: datetime
    run_id: UUID | None
    outcome: str
    project_id: int


async def page(
    conn: AsyncConnection[Any],
    *,
    project_id: int | None = None,
    enabled_only: bool = True,
    after: UUID | None = None,
    limit: int = PAGE,
) -> tuple[list[Schedule], UUID | None]:
    """Up to `limit` flows' schedules, by flow id after `after`; and the next page's `after`
    (None: this was the last page)."""
    cur = await conn.execute(
        _SQL["scheduled_flows"],
        {"project_id": project_id, "enabled_only": enabled_only, "after": after, "limit": limit},
    )
    flows = await cur.fetchall()
    found = [
        (flow, listed["position"], ScheduleTrigger.model_validate(listed["trigger"]))
        for flow in flows
        for listed in flow[7]
    ]
    last = await last_ticks(conn, ((flow[0], trigger.key) for flow, _, trigger in found))
    schedules = [
        Schedule(
            flow_id=flow[0],
            project_id=flow[1],
            flow=flow[2],
            enabled=flow[3],
            version_id=flow[4],
            version=flow[5],
            deployed_at=flow[6],
            position=position,
            trigger=trigger,
            last_tick_at=last[(flow[0], trigger.key)][0],
            last_run_at=last[(flow[0], trigger.key)][1],
        )
        for flow, position, trigger in found
    ]
    return schedules, (flows[-1][0] if len(flows) == limit else None)


async def of_project(conn: AsyncConnection[Any], project_id: int) -> list[Schedule]:
    """Every schedule of the project's live flows, enabled or not."""
    found: list[Schedule] = []
    after: UUID | None = None
    while True:
        schedules, after = await page(conn, project_id=project_id, enabled_only=False, after=after)
        found += schedules
        if after is None:
            return sorted(found, key=lambda s: (s.flow, s.position))


async def of_flow(
    conn: AsyncConnection[Any], flow_id: UUID, triggers: Iterable[tuple[int, ScheduleTrigger]]
) -> list[tuple[int, ScheduleTrigger, datetime | None]]:
    """These schedules of a flow (by position), each with its latest tick that started a
    run."""
    listed = list(triggers)
    last = await last_ticks(conn, ((flow_id, trigger.key) for _, trigger in listed))
    return [(index, t, last[(flow_id, t.key)][1]) for index, t in listed]


async def last_ticks(
    conn: AsyncConnection[Any], keys: Iterable[tuple[UUID, str]]
) -> dict[tuple[UUID, str], tuple[datetime | None, datetime | None]]:
    """Each (flow, rule)'s latest tick and latest tick that started a run."""
    keys = list(keys)
    cur = await conn.execute(
        _SQL["last_ticks"], {"flow_ids": [k[0] for k in keys], "rules": [k[1] for k in keys]}
    )
    return {(row[0], row[1]): (row[2], row[3]) for row in await cur.fetchall()}


async def fire(
    conn: AsyncConnection[Any],
    ticks: list[tuple[Schedule, datetime]],
    budget: RunBudget,
    *,
    now: datetime | None = None,
) -> list[Fired]:
    """Fire these ticks in one statement; the ticks it inserted (none fired before)."""
    if not ticks:
        return []
    cur = await conn.execute(
        _SQL["fire_ticks"],
        {
            "flow_ids": [s.flow_id for s, _ in ticks],
            "rules": [s.trigger.key for s, _ in ticks],
            "ticks": [tick for _, tick in ticks],
            "run_ids": [uuid.uuid4() for _ in ticks],
            "triggers": [jsonb(s.run_trigger(tick)) for s, tick in ticks],
            "overlaps": [s.trigger.overlap for s, _ in ticks],
            "version_ids": [s.version_id for s, _ in ticks],
            "versions": [s.version for s, _ in ticks],
            "resume_secrets": [resume.new_secret() for _ in ticks],
            "timeout_seconds": budget.timeout_seconds,
            "max_attempts": budget.max_attempts,
            "max_live": budget.max_live_runs,
            "now": now,
        },
    )
    return [Fired(*row) for row in await cur.fetchall()]


async def fire_due(
    conn: AsyncConnection[Any],
    budget: RunBudget,
    *,
    now: datetime | None = None,
    limit: int = PAGE,
) -> list[Fired]:
    """One pass over every enabled schedule, `limit` flows a statement: fire what is due
    at `now` (None: the database's time). Wake the queue after."""
    if now is None:
        cur = await conn.execute(_SQL["clock"])
        row = await cur.fetchone()
        assert row is not None
        now = row[0]
    fired: list[Fired] = []
    after: UUID | None = None
    while True:
        schedules, after = await page(conn, after=after, limit=limit)
        fired += await fire(conn, [(s, t) for s in schedules for t in s.due(now)], budget, now=now)
        if after is None:
            return fired


async def forget_ticks(
    conn: AsyncConnection[Any],
    window_seconds: float,
    *,
    limit: int = 1000,
    now: datetime | None = None,
) -> int:
    """Maintenance: delete up to `limit` ticks older than the window (never a schedule's
    latest); how many went."""
    cur = await conn.execute(
        _SQL["forget_ticks"], {"window": window_seconds, "limit": limit, "now": now}
    )
    return cur.rowcount
