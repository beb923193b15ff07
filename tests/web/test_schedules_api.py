"""Schedules over HTTP: a flow shows its schedules' next ticks and latest run; the project's
list shows every schedule; a bad schedule is a 422 naming its path."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.web.apps import app_client
from tests.web.test_flows_api import project_key

STEPS = [{"id": "r", "type": "respond", "body": 1}]
TRIGGERS: list[dict[str, Any]] = [
    {"type": "webhook"},
    {"type": "schedule", "every": "5m", "catch_up": "all"},
    {"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Paris"},
]


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url) as client:
        yield client


def test_a_flow_shows_when_its_schedules_fire(client: TestClient) -> None:
    key = project_key(client, "acme")
    client.put("/api/v1/flows/report", json={"trigger": TRIGGERS, "steps": STEPS}, headers=key)
    before = datetime.now(UTC)
    every, cron = client.get("/api/v1/flows/report", headers=key).json()["schedules"]
    assert {k: every[k] for k in ("index", "every", "cron", "timezone", "last_run_at")} == {
        "index": 1,
        "every": "5m",
        "cron": None,
        "timezone": "UTC",
        "last_run_at": None,
    }
    ticks = [datetime.fromisoformat(t) for t in every["next"]]
    assert len(ticks) == 3
    assert before < ticks[0] <= before + timedelta(minutes=5)
    assert [b - a for a, b in itertools.pairwise(ticks)] == [timedelta(minutes=5)] * 2
    assert all(t.minute % 5 == 0 and t.second == 0 for t in ticks)
    paris = [datetime.fromisoformat(t) for t in cron["next"]]
    assert all(t.astimezone(UTC).hour in (7, 8) for t in paris)  # 09:00 CEST or CET

    client.post("/api/v1/flows/report/disable", headers=key)
    paused = client.get("/api/v1/flows/report", headers=key).json()["schedules"]
    assert [s["next"] for s in paused] == [[], []]


def test_the_project_lists_every_schedule(client: TestClient) -> None:
    key, other = project_key(client, "acme"), project_key(client, "other")
    client.put("/api/v1/flows/b", json={"trigger": TRIGGERS, "steps": STEPS}, headers=key)
    client.put("/api/v1/flows/a", json={"trigger": TRIGGERS[2], "steps": STEPS}, headers=key)
    client.put("/api/v1/flows/hook", json={"steps": STEPS}, headers=key)
    client.put("/api/v1/flows/c", json={"trigger": TRIGGERS, "steps": STEPS}, headers=other)
    client.post("/api/v1/flows/a/disable", headers=key)
    listed = client.get("/api/v1/schedules", headers=key).json()["schedules"]
    assert [(s["flow"], s["index"], s["enabled"], len(s["next"])) for s in listed] == [
        ("a", 0, False, 0),
        ("b", 1, True, 3),
        ("b", 2, True, 3),
    ]


def test_a_bad_schedule_is_a_422_with_its_path(client: TestClient) -> None:
    key = project_key(client, "acme")
    bad = [
        {"type": "schedule", "cron": "0 25 * * *"},
        {"type": "schedule", "every": "1h", "timezone": "Nowhere/City"},
    ]
    response = client.put("/api/v1/flows/bad", json={"trigger": bad, "steps": STEPS}, headers=key)
    assert response.status_code == 422
    assert [p["path"] for p in response.json()["problems"]] == [
        "trigger[0].cron",
        "trigger[1].timezone",
    ]
