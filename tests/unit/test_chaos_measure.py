"""The chaos suite's arithmetic: which answers count against invariant 10, how duplicates
and repeated effects are found, and which phase of a fault an event belongs to."""

from __future__ import annotations

import random
from collections import Counter

from ops.chaos.client import CONNECTION_ERROR, TIMEOUT, Attempt, Event, RetryPolicy
from ops.chaos.faults import Window
from ops.chaos.measure import RunFacts, figures, first_success_after, latency_by_phase

WINDOW = Window(started=10.0, ended=20.0)


def _event(key: str, *outcomes: tuple[float, str], run_id: str | None = None) -> Event:
    attempts = [Attempt(sent, sent + 0.5, outcome) for sent, outcome in outcomes]
    return Event(key, outcomes[0][0], attempts, run_id)


def test_only_5xx_other_than_503_are_server_errors_and_lost_answers_are_counted() -> None:
    events = [
        _event("a", (1.0, "202"), run_id="r1"),
        _event("b", (11.0, "503"), (12.0, TIMEOUT), (13.0, "202"), run_id="r2"),
        _event("c", (14.0, "500")),
        _event("d", (15.0, CONNECTION_ERROR), (16.0, "502")),
    ]
    facts = RunFacts({"r1": "SUCCEEDED", "r2": "SUCCEEDED"}, Counter({"a": 1, "b": 1}))
    hits = Counter({f"{run}.{step}": 1 for run in ("r1", "r2") for step in ("first", "second")})
    table = figures(
        events, WINDOW, facts, hits, drained_at=None, repeats_allowed=False, died_unasked=[]
    )
    assert table["server_errors"].value == 2
    assert table["server_errors"].held is False
    assert table["lost_answers"].value == 2
    assert table["responses"].value == {
        "202": 2,
        "500": 1,
        "502": 1,
        "503": 1,
        CONNECTION_ERROR: 1,
        TIMEOUT: 1,
    }
    assert table["duplicate_keys"].held is True
    assert table["missing_effects"].held is True


def test_duplicates_missing_and_repeated_effects_and_lost_runs_are_found() -> None:
    events = [_event("k", (1.0, "202"), run_id="r1"), _event("j", (2.0, "202"), run_id="gone")]
    facts = RunFacts(
        {"r1": "SUCCEEDED", "r2": "SUCCEEDED", "r3": "RUNNING"}, Counter({"k": 2, "j": 0, None: 1})
    )
    hits = Counter({"r1.first": 1, "r1.second": 2, "r2.first": 1, "nobody.first": 1})
    table = figures(
        events, WINDOW, facts, hits, drained_at=None, repeats_allowed=False, died_unasked=["app"]
    )
    assert (table["duplicate_keys"].value, table["duplicate_keys"].held) == (1, False)
    assert table["lost_runs"].value == 1
    assert table["unfinished_runs"].value == 1
    assert (table["repeated_effects"].value, table["repeated_effects"].held) == (1, False)
    assert table["missing_effects"].value == 1  # r2 never reached its second effect
    assert table["stray_effects"].value == 1
    assert table["died_unasked"].held is False

    allowed = figures(
        events, WINDOW, facts, hits, drained_at=None, repeats_allowed=True, died_unasked=[]
    )
    assert (allowed["repeated_effects"].value, allowed["repeated_effects"].held) == (1, None)


def test_events_fall_in_the_phase_they_arose_in() -> None:
    events = [
        _event("before", (9.0, "202"), run_id="r"),
        _event("during", (10.0, "503"), (19.0, "202"), run_id="r"),
        _event("after", (20.0, "202"), run_id="r"),
        _event("refused", (21.0, "500")),
    ]
    phases = latency_by_phase(events, WINDOW)
    assert {phase: each["events"] for phase, each in phases.items()} == {
        "before": 1,
        "during": 1,
        "after": 2,
    }
    assert phases["during"]["p99_ms"] == 9500.0  # from the event's start to its 202
    assert phases["after"]["accepted"] == 1
    assert first_success_after(events, WINDOW) == 0.5


def test_a_retry_waits_at_least_retry_after_but_never_past_the_cap() -> None:
    policy = RetryPolicy(base_seconds=0.1, cap_seconds=2.0)
    rng = random.Random(3)
    assert all(0.05 <= policy.delay(1, None, rng) <= 0.1 for _ in range(100))
    assert all(1.0 <= policy.delay(9, None, rng) <= 2.0 for _ in range(100))
    assert policy.delay(1, 1.5, rng) == 1.5
    assert policy.delay(1, 30.0, rng) == 2.0
