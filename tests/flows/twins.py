"""Runs whose ids share a prefix (random ids share six digits once in sixteen million)."""

from __future__ import annotations

from uuid import UUID

import psycopg

COPY_RUN = """
INSERT INTO flow_runs
SELECT (jsonb_populate_record(r, jsonb_build_object('id', %(id)s::uuid))).*
FROM flow_runs r WHERE r.id = %(run)s
"""


def twin_runs(database_url: str, run_id: str, prefix: str, count: int = 2) -> list[str]:
    """`count` copies of run `run_id` (its project, flow and status; no steps), with ids that
    start with `prefix` (hex digits) and differ in the digits right after it; their ids."""
    ids = [str(UUID((prefix + f"{n:x}").ljust(32, "0"))) for n in range(1, count + 1)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for each in ids:
            conn.execute(COPY_RUN, {"id": each, "run": run_id})
    return ids
