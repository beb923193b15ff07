"""Who may write the `jobs` table, and how: a new writer fails here until it is listed.

The queue (`app/sql/jobs.sql`) owns the table. The run store (`app/sql/runs.sql`) ends or
renews its own job in the statement that records the step results, behind the same fence,
`sluice_lease_held`. In the database, only the claim, a run's job (`sluice_continue_run`)
and a run's end (`sluice_run_finished`, which drops its queued jobs) write it.
"""

from __future__ import annotations

import re
from typing import Any

from app import queries
from tests.integration.helpers import connect

_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+jobs\b", re.IGNORECASE)
_SQL_FILES = (
    "console",
    "control",
    "flows",
    "gauges",
    "jobs",
    "locks",
    "projects",
    "replay",
    "run_ids",
    "run_views",
    "runs",
    "schedules",
    "schema",
    "secrets",
    "signals",
    "versions",
    "waits",
    "workers",
)
WRITERS = {
    "jobs": {
        "enqueue_jobs",
        "renew_leases",
        "complete_jobs",
        "retry_job",
        "rescue_expired_jobs",
        "release_jobs",
    },
    "runs": {"save_progress", "finish_execution"},
}
UNFENCED = {("jobs", "enqueue_jobs"), ("jobs", "rescue_expired_jobs")}
"""Writers that act on jobs nobody holds: new ones, and those whose lease expired."""
FUNCTIONS = {"sluice_claim_jobs", "sluice_continue_run", "sluice_run_finished"}


def _writers() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for file in _SQL_FILES:
        for name, statement in queries.load(file).items():
            if _WRITE.search(statement):
                found.setdefault(file, {})[name] = statement
    return found


def test_every_sql_file_is_looked_at() -> None:
    shipped = {path.stem for path in queries.sql_files()}
    assert shipped == set(_SQL_FILES)


def test_only_the_queue_and_the_run_store_write_jobs() -> None:
    found = _writers()
    assert {file: set(names) for file, names in found.items()} == WRITERS


def test_every_write_by_a_holder_is_fenced() -> None:
    for file, statements in _writers().items():
        for name, statement in statements.items():
            if (file, name) in UNFENCED:
                continue
            assert "sluice_lease_held(" in statement, f"{file}.sql {name} is not fenced"
            assert "lease_owner = %(owner)s" not in statement, f"{file}.sql {name}: own fence"


async def test_only_the_known_functions_write_jobs(database_url: str) -> None:
    async with await connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        )
        rows: list[tuple[str, Any]] = await cur.fetchall()
    writing = {name for name, source in rows if source and _WRITE.search(source)}
    assert writing == FUNCTIONS
