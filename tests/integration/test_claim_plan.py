"""EXPLAIN guard: with 50,000 queued jobs the claim's candidate scan uses its index.

The statement explained is the one deployed: its text is cut from the claim function's
source in the database (between the `candidates:` markers), with the function's variables
bound as parameters, and planned both as a custom and as a generic plan (PL/pgSQL may use
either).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from psycopg import AsyncConnection

from tests.integration.helpers import connect, fetchval

VARIABLES = {
    "v_now": "$1::timestamptz",
    "v_saturated": "$2::bigint[]",
    "v_busy": "$3::bigint[]",
    "v_remaining": "$4::integer",
}


async def deployed_candidate_query(conn: AsyncConnection[Any]) -> str:
    source = await fetchval(conn, "SELECT prosrc FROM pg_proc WHERE proname = 'sluice_claim_jobs'")
    match = re.search(r"-- candidates: begin[^\n]*\n(?P<sql>.*?)-- candidates: end", source, re.S)
    assert match, "candidate markers missing from sluice_claim_jobs"
    query = match["sql"]
    for name, parameter in VARIABLES.items():
        query = re.sub(rf"\b{name}\b", parameter, query)
    assert "v_" not in query, f"unbound variable in {query}"
    return query


def scans(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    found = [(plan["Node Type"], plan.get("Index Name"))]
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_claim_candidates_use_the_claim_index(
    database_url: str, plan_cache_mode: str
) -> None:
    async with await connect(database_url) as conn:
        await conn.execute(
            "INSERT INTO projects (name, concurrency_limit) VALUES ('limited', 2), ('free', NULL)"
        )
        await conn.execute(
            """
            INSERT INTO jobs (kind, project_id, priority, run_at)
            SELECT 'bulk', 1 + (i % 2), (i % 5)::smallint, now() - (i % 100) * interval '1s'
            FROM generate_series(1, 50000) AS i
            """
        )
        await conn.execute(
            "UPDATE jobs SET state = 'running', attempt = 1, lease_owner = 'w',"
            " lease_expires_at = now() + interval '30s' WHERE id <= 40"
        )
        await conn.execute("ANALYZE jobs")
        query = await deployed_candidate_query(conn)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
            await conn.execute(f"PREPARE candidates AS {query}")
            cur = await conn.execute(
                "EXPLAIN (FORMAT JSON) EXECUTE candidates(now(), '{1}', '{}', 10)"
            )
            row = await cur.fetchone()
            assert row is not None
    plan = (row[0] if isinstance(row[0], list) else json.loads(row[0]))[0]["Plan"]
    nodes = scans(plan)
    assert ("Index Scan", "jobs_claim_order") in nodes, json.dumps(plan, indent=1)
    assert not any(node == "Seq Scan" for node, _ in nodes), json.dumps(plan, indent=1)
    assert not any(node == "Sort" for node, _ in nodes), "the index should give the order"
