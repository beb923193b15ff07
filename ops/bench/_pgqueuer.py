"""PgQueuer's own drain, measured like ours, for comparison on the same server.

PgQueuer is optional (the ``bench`` extra). Whatever goes wrong here is reported as a reason
the comparison was skipped; it never fails the Sluice benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import statistics
from time import perf_counter
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection

from ops.bench import _database
from ops.bench._report import progress

if TYPE_CHECKING:
    from pgqueuer import Queries

    from ops.bench.queue import Options


async def compare(server_url: str, options: Options) -> dict[str, Any]:
    """Enqueue and drain `options.jobs` no-op jobs with one PgQueuer consumer using batch size
    `options.batch`; returns its rates, or ``{"skipped": reason}``."""
    try:
        version = importlib.metadata.version("pgqueuer")
    except importlib.metadata.PackageNotFoundError:
        return _skipped("pgqueuer is not installed (pip install -e '.[bench]')")
    try:
        async with (
            _database.fresh_database(server_url, "sluice_bench_pgq") as url,
            asyncio.timeout(options.phase_seconds),
        ):
            figures = await _run(url, options)
    except Exception as exc:
        return _skipped(f"{type(exc).__name__}: {exc}")
    return figures | {"version": version}


def _skipped(reason: str) -> dict[str, Any]:
    progress(f"pgqueuer comparison skipped: {reason}")
    return {"skipped": reason}


async def _run(url: str, options: Options) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(await _database.connect(url))
        driver, queries = await _queries(stack, url)
        await queries.install()
        enqueue_rates: list[float] = []
        drain_rates: list[float] = []
        for n in range(1, options.rounds + 1):
            enqueue, drain = await _round(conn, url, queries, options)
            enqueue_rates.append(enqueue)
            drain_rates.append(drain)
            progress(
                f"pgqueuer ({driver}), round {n}/{options.rounds}: "
                f"enqueue {enqueue:,.0f} jobs/s, drain {drain:,.0f} jobs/s"
            )
    return {
        "driver": driver,
        "batch_size": options.batch,
        "enqueue_jobs_per_s": statistics.median(enqueue_rates),
        "drain_jobs_per_s": statistics.median(drain_rates),
        "rounds_jobs_per_s": drain_rates,
    }


async def _round(
    conn: AsyncConnection[Any], url: str, queries: Queries, options: Options
) -> tuple[float, float]:
    """Reset, enqueue (timed), analyze, drain with a new consumer (timed); the two rates."""
    from pgqueuer import Job, QueueManager
    from pgqueuer.types import QueueExecutionMode

    names = queries.qbe.settings
    tables = [names.queue_table, names.queue_table_log]
    await _database.reset(conn, tables)
    started = perf_counter()
    for first in range(0, options.jobs, options.enqueue_batch):
        n = min(options.enqueue_batch, options.jobs - first)
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    enqueue_seconds = perf_counter() - started
    await _database.analyze(conn, tables)

    async with contextlib.AsyncExitStack() as stack:
        _, consumer = await _queries(stack, url)
        manager = QueueManager(consumer)

        @manager.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        started = perf_counter()
        await manager.run(batch_size=options.batch, mode=QueueExecutionMode.drain)
        drain_seconds = perf_counter() - started

    done = await _database.count(conn, names.queue_table_log, "status = 'successful'")
    left = await _database.count(conn, names.queue_table)
    if done != options.jobs or left != 0:
        raise RuntimeError(f"drain logged {done} of {options.jobs} jobs; {left} left")
    return options.jobs / enqueue_seconds, options.jobs / drain_seconds


async def _queries(stack: contextlib.AsyncExitStack[bool | None], url: str) -> tuple[str, Queries]:
    """PgQueuer's queries on a new connection of its own: asyncpg when importable (its
    reference driver), else psycopg, whose driver holds the connection's lock while it waits
    for notifications and so stalls queries (up to 1 s each) when none arrive."""
    from pgqueuer import AsyncpgDriver, PsycopgDriver, Queries

    try:
        asyncpg = importlib.import_module("asyncpg")
    except ImportError:
        conn = await stack.enter_async_context(await _database.connect(url))
        return "psycopg", Queries(PsycopgDriver(conn))
    connection = await asyncpg.connect(url)
    stack.push_async_callback(connection.close)
    return "asyncpg", Queries(AsyncpgDriver(connection))
