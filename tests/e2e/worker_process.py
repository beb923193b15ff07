"""A real `sluice serve` worker process with test job handlers (run by the e2e tests).

Job kind `effect`: payload ``{"seconds": [first attempt, later attempts]}``; it waits that
long, then records one row in `effects` (created by the test) — the observable side effect
whose count proves a job finished exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import psycopg

from app import db
from app.jobs import Job
from app.serve import serve
from app.settings import load_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = db.with_database_url(load_settings())
    url = db.database_url(settings)

    async def effect(job: Job) -> None:
        first, later = job.payload["seconds"]
        await asyncio.sleep(first if job.attempt == 1 else later)  # the work itself
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO effects (job_id, worker, attempt) VALUES (%s, %s, %s)",
                (job.id, job.lease_owner, job.attempt),
            )

    handlers: dict[str, Any] = {"effect": effect}
    print("worker process ready", file=sys.stderr, flush=True)
    asyncio.run(serve(settings, handlers))


if __name__ == "__main__":
    main()
