"""When a schedule fires: its ticks, as instants, from its rule and time zone.

Invariant: a schedule's ticks are a pure function of its rule (no state, no clock), so every
worker computes the same ones, and a tick's time can be its run's key. A `cron` rule matches
the wall clock of its time zone and each matching wall-clock time is one tick: a time that
daylight saving skips fires once, when the clocks jump (however many skipped times match),
and a time that it repeats fires once, at its first occurrence. An `every` rule counts whole
intervals from the Unix epoch, whatever the time zone, so daylight saving does not move it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim

from app.flows.triggers import ScheduleTrigger, every_seconds

MAX_CATCH_UP = 100
"""`catch_up: all` fires at most this many missed ticks (the latest ones)."""
ON_TIME = timedelta(seconds=60)
"""`catch_up: none` still fires a tick this late (a pass runs every few seconds)."""

# Further than any daylight-saving shift: cron is walked on the wall clock from this far off.
_MARGIN = timedelta(hours=3)


@dataclass(frozen=True)
class Rule:
    key: str
    """The schedule's identity across versions: its ticks are keyed by it."""
    cron: str | None
    every: int | None
    """Seconds."""
    zone: ZoneInfo

    @classmethod
    def of(cls, trigger: ScheduleTrigger) -> Rule:
        cron = " ".join(trigger.cron.split()) if trigger.cron is not None else None
        every = every_seconds(trigger.every) if trigger.every is not None else None
        return cls(trigger.key, cron, every, ZoneInfo(trigger.timezone))

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The ticks after `moment` (aware), ascending, in UTC."""
        if self.every is not None:
            first = int(moment.timestamp()) // self.every + 1
            return (_epoch(k * self.every) for k in itertools.count(first))
        wall = (moment.astimezone(self.zone) - _MARGIN).replace(tzinfo=None)
        ticks = _distinct(self._instant(t) for t in CronSim(self._expr, wall))
        return itertools.dropwhile(lambda tick: tick <= moment, ticks)

    def until(self, moment: datetime) -> Iterator[datetime]:
        """The ticks at or before `moment` (aware), descending, in UTC."""
        if self.every is not None:
            last = int(moment.timestamp()) // self.every
            return (_epoch(k * self.every) for k in itertools.count(last, -1))
        wall = (moment.astimezone(self.zone) + _MARGIN).replace(tzinfo=None, microsecond=0)
        ticks = _distinct(self._instant(t) for t in CronSim(self._expr, wall, reverse=True))
        return itertools.dropwhile(lambda tick: tick > moment, ticks)

    @property
    def _expr(self) -> str:
        assert self.cron is not None
        return self.cron

    def _instant(self, wall: datetime) -> datetime:
        """A wall-clock time of the zone as an instant: its first occurrence when repeated,
        the jump's instant when skipped."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if first.astimezone(self.zone).replace(tzinfo=None) == wall:
            return first
        # Skipped: fold=0 reads it with the offset before the jump, so it lands after the
        # jump; the jump is the earliest instant whose wall clock is past `wall`.
        low = int(wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC).timestamp())
        high = int(first.timestamp())
        while low < high:
            middle = (low + high) // 2
            if _epoch(middle).astimezone(self.zone).replace(tzinfo=None) > wall:
                high = middle
            else:
                low = middle + 1
        return _epoch(high)


CatchUp = Literal["none", "latest", "all"]


def due(rule: Rule, catch_up: CatchUp, *, since: datetime, now: datetime) -> list[datetime]:
    """The ticks after `since` and at or before `now` to fire now, ascending: all of them
    (at most MAX_CATCH_UP, the latest), the latest, or the latest if it is ON_TIME."""
    wanted = MAX_CATCH_UP if catch_up == "all" else 1
    ticks = list(
        itertools.islice(itertools.takewhile(lambda tick: tick > since, rule.until(now)), wanted)
    )
    if catch_up == "none" and ticks and now - ticks[0] > ON_TIME:
        return []
    return ticks[::-1]


def upcoming(rule: Rule, now: datetime, count: int = 3) -> list[datetime]:
    return list(itertools.islice(rule.after(now), count))


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _distinct(ticks: Iterator[datetime]) -> Iterator[datetime]:
    """Several skipped wall-clock times become the one instant of the jump: give it once."""
    previous: datetime | None = None
    for tick in ticks:
        if tick != previous:
            yield tick
        previous = tick
