"""When schedules fire: cron and every, time zones, daylight saving, catch-up; and what a
deploy refuses. Every clock is passed in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.flows import FlowDefinitionError, parse_flow
from app.flows.triggers import ScheduleTrigger
from app.schedules.rules import MAX_CATCH_UP, ON_TIME, Rule, due, upcoming
from tests.unit.flow_documents import flow, step


def rule(**fields: Any) -> Rule:
    return Rule.of(ScheduleTrigger.model_validate({"type": "schedule", **fields}))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def between(r: Rule, start: datetime, end: datetime) -> list[str]:
    """The ticks in (start, end], forwards; checked against the same walked backwards."""
    forwards = list(itertools.takewhile(lambda t: t <= end, r.after(start)))
    backwards = list(itertools.takewhile(lambda t: t > start, r.until(end)))
    assert forwards == backwards[::-1]
    assert all(t.tzinfo is UTC for t in forwards)
    return [t.strftime("%m-%d %H:%M:%S") for t in forwards]


def test_every_counts_whole_intervals_from_the_epoch() -> None:
    r = rule(every="5m")
    assert upcoming(r, utc(2030, 1, 1, 10, 2, 30)) == [
        utc(2030, 1, 1, 10, 5),
        utc(2030, 1, 1, 10, 10),
        utc(2030, 1, 1, 10, 15),
    ]
    assert upcoming(r, utc(2030, 1, 1, 10, 5), 1) == [utc(2030, 1, 1, 10, 10)]
    assert next(r.until(utc(2030, 1, 1, 10, 5))) == utc(2030, 1, 1, 10, 5)


def test_every_ignores_daylight_saving() -> None:
    r = rule(every="1h", timezone="Europe/Paris")
    ticks = between(r, utc(2025, 3, 29, 23), utc(2025, 3, 30, 3))
    assert ticks == ["03-30 00:00:00", "03-30 01:00:00", "03-30 02:00:00", "03-30 03:00:00"]


def test_cron_matches_the_wall_clock_of_its_zone() -> None:
    r = rule(cron="0 9 * * 1-5", timezone="Europe/Paris")
    # 2030-01-04 is a Friday; Paris is UTC+1 in winter, UTC+2 in summer.
    assert upcoming(r, utc(2030, 1, 4, 7)) == [
        utc(2030, 1, 4, 8),
        utc(2030, 1, 7, 8),
        utc(2030, 1, 8, 8),
    ]
    assert upcoming(r, utc(2030, 7, 1, 0), 1) == [utc(2030, 7, 1, 7)]
    assert upcoming(rule(cron="0 9 * * *"), utc(2030, 7, 1, 0), 1) == [utc(2030, 7, 1, 9)]


def test_spring_forward_neither_skips_nor_doubles() -> None:
    # Paris, 2025-03-30: 02:00 CET (01:00 UTC) jumps to 03:00 CEST.
    day = (utc(2025, 3, 29, 22), utc(2025, 3, 30, 4))
    assert between(rule(cron="30 2 * * *", timezone="Europe/Paris"), *day) == ["03-30 01:00:00"]
    hourly = between(rule(cron="0 * * * *", timezone="Europe/Paris"), *day)
    assert hourly == [
        "03-29 23:00:00",  # 00:00 CET
        "03-30 00:00:00",  # 01:00 CET
        "03-30 01:00:00",  # 03:00 CEST: the skipped 02:00 and 03:00, once
        "03-30 02:00:00",
        "03-30 03:00:00",
        "03-30 04:00:00",
    ]
    halves = between(rule(cron="*/30 2 * * *", timezone="Europe/Paris"), *day)
    assert halves == ["03-30 01:00:00"]


def test_fall_back_neither_skips_nor_doubles() -> None:
    # Paris, 2025-10-26: 03:00 CEST (01:00 UTC) falls back to 02:00 CET.
    day = (utc(2025, 10, 25, 22), utc(2025, 10, 26, 4))
    assert between(rule(cron="30 2 * * *", timezone="Europe/Paris"), *day) == ["10-26 00:30:00"]
    hourly = between(rule(cron="0 * * * *", timezone="Europe/Paris"), *day)
    assert hourly == [
        "10-25 23:00:00",  # 01:00 CEST
        "10-26 00:00:00",  # 02:00 CEST; 02:00 CET (01:00 UTC) is the same wall clock
        "10-26 02:00:00",  # 03:00 CET
        "10-26 03:00:00",
        "10-26 04:00:00",
    ]
    # Walking from inside the repeated hour finds no tick of its first pass again.
    assert upcoming(
        rule(cron="30 2 * * *", timezone="Europe/Paris"), utc(2025, 10, 26, 1, 10), 1
    ) == [utc(2025, 10, 27, 1, 30)]


NOW = utc(2030, 1, 1, 12, 0, 7)
EVERY_5S = rule(every="5s")


def test_on_time_ticks_fire_whatever_the_catch_up() -> None:
    for mode in ("none", "latest", "all"):
        assert due(EVERY_5S, mode, since=utc(2030, 1, 1, 12, 0, 3), now=NOW) == [
            utc(2030, 1, 1, 12, 0, 5)
        ]
        assert due(EVERY_5S, mode, since=utc(2030, 1, 1, 12, 0, 5), now=NOW) == []


def test_catch_up_after_downtime() -> None:
    since = NOW - timedelta(minutes=10)
    latest = utc(2030, 1, 1, 12, 0, 5)
    assert due(EVERY_5S, "latest", since=since, now=NOW) == [latest]
    everything = due(EVERY_5S, "all", since=since, now=NOW)
    assert len(everything) == MAX_CATCH_UP
    assert everything[-1] == latest
    assert everything[0] == latest - (MAX_CATCH_UP - 1) * timedelta(seconds=5)
    assert due(EVERY_5S, "all", since=latest - timedelta(seconds=12), now=NOW) == [
        latest - timedelta(seconds=10),
        latest - timedelta(seconds=5),
        latest,
    ]
    # none: the missed ticks are skipped; the latest still fires while it is on time.
    assert due(EVERY_5S, "none", since=since, now=NOW) == [latest]
    hourly, late = rule(cron="0 * * * *"), utc(2030, 1, 1, 12, 5)
    assert due(hourly, "none", since=since - timedelta(hours=2), now=late) == []
    assert due(hourly, "latest", since=since - timedelta(hours=2), now=late) == [
        utc(2030, 1, 1, 12)
    ]
    assert due(hourly, "none", since=since, now=utc(2030, 1, 1, 12) + ON_TIME) == [
        utc(2030, 1, 1, 12)
    ]


def test_catch_up_across_a_daylight_saving_change_fires_each_tick_once() -> None:
    r = rule(cron="0 * * * *", timezone="Europe/Paris")
    ticks = due(r, "all", since=utc(2025, 10, 25, 23, 30), now=utc(2025, 10, 26, 3, 30))
    assert ticks == [utc(2025, 10, 26, 0), utc(2025, 10, 26, 2), utc(2025, 10, 26, 3)]


@pytest.mark.parametrize(
    ("trigger", "path", "message"),
    [
        ({"type": "schedule", "cron": "61 * * * *"}, "trigger.cron", "not a cron rule"),
        ({"type": "schedule", "cron": "* * * *"}, "trigger.cron", "five fields"),
        ({"type": "schedule", "cron": "0 0 31 2 *"}, "trigger.cron", "not a cron rule"),
        (
            [{"type": "webhook"}, {"type": "schedule", "every": "5s", "timezone": "Mars/Base"}],
            "trigger[1].timezone",
            "unknown time zone 'Mars/Base'",
        ),
        ({"type": "schedule", "every": "0s"}, "trigger.every", "should match pattern"),
        ({"type": "schedule", "every": "367d"}, "trigger.every", "at most 366d"),
        (
            [{"type": "schedule", "every": "60s"}, {"type": "schedule", "every": "1m"}],
            "trigger[1]",
            "the same schedule as trigger[0]",
        ),
        (
            [{"type": "schedule", "every": f"{n}m"} for n in range(1, 23)],
            "trigger[20]",
            "at most 20 schedules",
        ),
    ],
)
def test_a_bad_schedule_is_refused_with_its_path(trigger: Any, path: str, message: str) -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        parse_flow(flow(step("respond"), trigger=trigger))
    assert [p["path"] for p in caught.value.problems] == [path]
    assert message in caught.value.problems[0]["message"]


def test_schedules_of_a_flow_parse() -> None:
    definition = parse_flow(
        flow(
            step("respond"),
            trigger=[
                {"type": "webhook"},
                {"type": "schedule", "cron": "*/15  9-17 * * 1-5", "timezone": "America/New_York"},
                {"type": "schedule", "every": "30s", "catch_up": "all", "overlap": "allow"},
            ],
        )
    )
    keys = [t.key for t in definition.triggers if isinstance(t, ScheduleTrigger)]
    assert keys == ["cron */15 9-17 * * 1-5 America/New_York", "every 30s"]
