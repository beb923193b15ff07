"""Retry on the pinned or latest version and from a step, replay, bulk retry and a run's
attempts, through a real app and worker."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from app.flows import replays
from app.flows.control import RunBudget
from app.flows.model import RunStatus
from tests.flows.helpers import local_server, started_run, step
from tests.flows.stack import Stack

BROKEN = {"id": "reply", "type": "respond", "body": "{{ 1 // trigger.body.zero }}"}
FIXED = {"id": "reply", "type": "respond", "body": "fixed"}


def fetching(server: Any, *after: dict[str, Any]) -> dict[str, Any]:
    first = {"id": "first", "type": "http", "url": server.url("/first")}
    second = {"id": "second", "type": "http", "url": server.url("/second")}
    return {"name": "fetches", "steps": [first, second, *after]}


async def test_a_retry_on_the_latest_version_runs_the_fix_and_a_pinned_one_does_not(
    stack: Stack,
) -> None:
    async with local_server() as server:
        flow = await stack.deploy(fetching(server, BROKEN))
        run_id = await started_run(stack, flow["id"])
        failed = await stack.wait_for_status(run_id)
        assert failed["status"] == "FAILED"
        await stack.deploy(fetching(server, FIXED))

        pinned = await stack.client.post(f"/api/v1/runs/{run_id}/retry", json={})
        assert pinned.status_code == 202, pinned.text
        again = await stack.wait_for_status(run_id)
        latest = await stack.client.post(f"/api/v1/runs/{run_id}/retry", json={"version": "latest"})
        assert latest.status_code == 202, latest.text
        run = await stack.wait_for_status(run_id)

    assert (again["status"], again["version"]) == ("FAILED", 1)
    assert (run["status"], run["version"]) == ("SUCCEEDED", 2), run["error"]
    assert run["response"]["body"] == "fixed"
    assert step(run, "first") == step(failed, "first")
    assert len(server.hits("/first")) == 1
    assert len(server.hits("/second")) == 1
    # Three attempts; the active time is theirs, not created -> finished.
    assert len(run["attempts"]) == 3
    spans = sum(attempt["duration_seconds"] for attempt in run["attempts"])
    assert abs(run["active_seconds"] - spans) < 1e-3
    assert run["active_seconds"] <= run["duration_seconds"]


async def test_a_retry_from_a_step_keeps_the_outputs_before_it(stack: Stack) -> None:
    async with local_server() as server:
        server.script("/second", (200, {"n": 1}), (200, {"n": 2}))
        flow = await stack.deploy(fetching(server, BROKEN))
        run_id = await started_run(stack, flow["id"])
        failed = await stack.wait_for_status(run_id)
        await stack.deploy(fetching(server, FIXED))

        unknown = await stack.client.post(
            f"/api/v1/runs/{run_id}/retry", json={"from_step": "nosuch"}
        )
        retried = await stack.client.post(
            f"/api/v1/runs/{run_id}/retry", json={"from_step": "second", "version": "latest"}
        )
        assert retried.status_code == 202, retried.text
        run = await stack.wait_for_status(run_id)

    assert unknown.status_code == 422
    assert "nosuch" in unknown.json()["error"]
    assert run["status"] == "SUCCEEDED", run["error"]
    assert step(run, "first") == step(failed, "first")
    assert step(failed, "second")["output"]["body"] == {"n": 1}
    assert step(run, "second")["output"]["body"] == {"n": 2}
    assert (len(server.hits("/first")), len(server.hits("/second"))) == (1, 2)


async def test_a_replay_starts_a_new_run_with_the_same_or_an_edited_body(stack: Stack) -> None:
    flow = await stack.deploy(
        {
            "name": "greets",
            "steps": [{"id": "hi", "type": "respond", "body": "{{ trigger.body.who }}"}],
        }
    )
    original = (await stack.trigger(flow["id"], {"who": "ann"}, sync=True)).headers[
        "x-sluice-run-id"
    ]
    await stack.wait_for_status(original)

    edited = await stack.client.post(
        f"/api/v1/runs/{original}/replay", json={"data": {"who": "bob"}}
    )
    same = await stack.client.post(f"/api/v1/runs/{original}/replay")
    not_json = await stack.client.post(f"/api/v1/runs/{original}/replay", content=b"nope")
    bad_word = await stack.client.post(f"/api/v1/runs/{original}/replay", json={"version": "v2"})

    assert edited.status_code == 202, edited.text
    assert same.status_code == 202, same.text
    assert edited.json()["replay_of"] == original
    assert (not_json.status_code, bad_word.status_code) == (400, 422)
    assert "error" in not_json.json()
    assert bad_word.json()["problems"][0]["path"] == "version"
    assert edited.headers["x-sluice-run-id"] == edited.json()["id"] != original
    first = await stack.wait_for_status(edited.json()["id"])
    second = await stack.wait_for_status(same.json()["id"])
    assert (first["status"], first["response"]["body"]) == ("SUCCEEDED", "bob")
    assert (second["status"], second["response"]["body"]) == ("SUCCEEDED", "ann")
    assert second["replay_of"] == original
    assert (await stack.run(original))["replay_of"] is None


async def _seed_failed(database_url: str, flow_id: str, count: int) -> list[str]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "INSERT INTO flow_runs (project_id, flow_id, flow_version_id, version, status,"
            " trigger, resume_secret, created_at, finished_at, error)"
            " SELECT f.project_id, f.flow_id, f.version_id, f.version, 'FAILED',"
            ' \'{"body": {}, "headers": {}, "query": {}}\', sha256(gen_random_uuid()::text::bytea),'
            " now() - interval '10 minutes', now() - interval '9 minutes', 'seeded'"
            " FROM sluice_live_flows f, generate_series(1, %(count)s)"
            " WHERE f.flow_id = %(flow_id)s RETURNING id",
            {"count": count, "flow_id": flow_id},
        )
        return [str(row[0]) for row in await cur.fetchall()]


async def test_a_bulk_retry_of_200_failed_runs_retries_each_once(
    stack: Stack, database_url: str
) -> None:
    flow = await stack.deploy({"name": "bulk", "steps": [FIXED]})
    other = await stack.deploy({"name": "other", "steps": [FIXED]})
    seeded = await _seed_failed(database_url, flow["id"], 200)
    await _seed_failed(database_url, other["id"], 3)
    asked = {"flow": "bulk", "status": "failed", "since": 3600}

    dry = await stack.client.post("/api/v1/runs/retry", json={**asked, "dry_run": True})
    started = time.monotonic()
    accepted = await stack.client.post("/api/v1/runs/retry", json=asked)
    answered = time.monotonic() - started

    assert dry.status_code == 200, dry.text
    assert dry.json() == {"count": 200, "batch_id": None, "dry_run": True}
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["count"] == 200
    assert answered < 1.0
    for run_id in seeded:
        assert (await stack.wait_for_status(run_id, {"SUCCEEDED"}))["status"] == "SUCCEEDED"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT f.name, count(DISTINCT r.id), count(a.*), count(DISTINCT r.retry_batch)"
            " FROM flow_runs r JOIN flows f ON f.id = r.flow_id"
            " LEFT JOIN run_attempts a ON a.run_id = r.id GROUP BY f.name ORDER BY f.name"
        )
        counts = await cur.fetchall()
        # The job again after a crash, the runs failed again: it takes none of them twice.
        await conn.execute("UPDATE flow_runs SET status = 'FAILED', finished_at = now()")
        bulk = replays.BulkRetry(
            uuid.UUID(accepted.json()["batch_id"]), stack.project_id, uuid.UUID(flow["id"]),
            RunStatus.FAILED, None, datetime.now(UTC), latest=False,
        )  # fmt: skip
        async with conn.transaction():
            taken = await replays.retry_next_batch(conn, bulk, RunBudget(60, 3))
    assert counts == [("bulk", 200, 200, 1), ("other", 3, 0, 0)]
    assert taken == 0
