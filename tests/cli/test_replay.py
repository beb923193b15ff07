"""`sluice runs retry` and `sluice runs replay` against the real app (no worker: the runs
they queue stay QUEUED; failed runs are seeded with SQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg

from app.cli.runs import run_view
from tests.cli.fake_runs import run_summary
from tests.cli.helpers import Sluice, write

GREETS = {
    "name": "greets",
    "steps": [{"id": "hi", "type": "respond", "body": "{{ trigger.body.who }}"}],
}


def _seed_failed(database_url: str, count: int) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO flow_runs (project_id, flow_id, flow_version_id, version, status,"
            " trigger, resume_secret, started_at, finished_at, error)"
            " SELECT f.project_id, f.flow_id, f.version_id, f.version, 'FAILED',"
            ' \'{"body": {"who": "ann"}, "headers": {}, "query": {}}\','
            " sha256(gen_random_uuid()::text::bytea), now(), now(), 'seeded'"
            " FROM sluice_live_flows f, generate_series(1, %(count)s)"
            " WHERE f.name = 'greets' RETURNING id",
            {"count": count},
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_retry_replay_and_bulk_retry(
    project_key: str, database_url: str, sluice: Sluice, tmp_path: Path
) -> None:
    flow = write(tmp_path / "greets.yaml", GREETS)
    assert sluice("flow", "deploy", flow).code == 0
    first, second, *rest = _seed_failed(database_url, 5)
    write(tmp_path / "greets.yaml", {**GREETS, "description": "version 2"})
    assert sluice("flow", "deploy", flow).code == 0

    unknown = sluice("runs", "retry", first, "--from", "nosuch")
    retried = sluice("runs", "retry", first, "--latest", "--from", "hi", "--json")
    replayed = sluice("runs", "replay", second, "--data", '{"who": "bob"}', "--json")
    shown = sluice("runs", "show", json.loads(replayed.out)["id"])
    dry = sluice("runs", "retry", "--flow", "greets", "--status", "failed", "--since", "1h",
                 "--dry-run")  # fmt: skip
    bulk = sluice("runs", "retry", "--flow", "greets", "--since", "1h")
    both = sluice("runs", "retry", first, "--flow", "greets")
    neither = sluice("runs", "retry")
    nosuch = sluice("runs", "retry", "--flow", "nosuch")

    assert unknown.code == 1
    assert "nosuch" in unknown.err
    assert retried.code == 0, retried.err
    assert (json.loads(retried.out)["status"], json.loads(retried.out)["version"]) == (
        "QUEUED",
        2,
    )
    assert replayed.code == 0, replayed.err
    assert json.loads(replayed.out)["replay_of"] == second
    assert json.loads(replayed.out)["version"] == 1
    assert shown.code == 0, shown.err
    assert re.search(rf"^replay of +{second}$", shown.out, re.MULTILINE), shown.out
    assert '"who":"bob"' in shown.out.replace(" ", "")
    assert (dry.code, dry.out) == (0, f"{len(rest) + 1} runs match\n")
    assert bulk.code == 0, bulk.err
    assert bulk.out.startswith(f"retrying {len(rest) + 1} runs (batch ")
    assert (both.code, neither.code) == (2, 2)
    assert nosuch.code == 1
    assert "no flow 'nosuch'" in nosuch.err


def test_a_run_view_shows_its_active_time_and_attempts() -> None:
    attempts = [{"duration_seconds": 0.04}, {"duration_seconds": 0.5}]
    run = {**run_summary(1), "active_seconds": 0.54, "attempts": attempts}
    once = {**run_summary(2), "active_seconds": 0.04, "attempts": attempts[:1]}

    assert re.search(
        r"^active +540ms in 2 attempts: 40ms, 500ms$", run_view(run, terminal=False), re.M
    )
    assert re.search(r"^active +40ms$", run_view(once, terminal=False), re.M)
