"""The worker benchmark: jobs per second through the real worker loop, and its memory.

A `Worker` (claim loop into free slots, executor, batched completer, heartbeat) drains N
jobs twice: of a kind whose handler does nothing, then `run_step` jobs whose sandboxed code
returns its input (the built-in handlers, real sandbox children). Rates count completions
confirmed by the worker's outcome writes, and the jobs table is checked empty at the end.
The worker's RSS is read after the first 1,000 sandboxed jobs and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any

from psycopg import AsyncConnection
from pydantic import SecretStr

from app.jobs import Job, NewJob, Queue
from app.settings import Settings
from migrations import runner
from ops.bench import _args, _database
from ops.bench._report import Row, progress, verdict
from worker.executor import Handler, Outcome, Verdict
from worker.runner import Worker

TABLES = ["jobs", "dead_jobs", "projects", "workers"]
ECHO = "def run(input, ctx):\n    return input"
WARMUP_JOBS = 1000
"""Jobs settled before the RSS baseline is read (caches, pools and allocator warmed up)."""
TARGET_RSS_GROWTH_PCT = 10.0


@dataclass(frozen=True)
class Options:
    worker_jobs: int = 20_000
    worker_slots: int = 8
    phase_seconds: float = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    _args.add_counts(
        parser,
        [
            ("--worker-jobs", defaults.worker_jobs, "jobs drained per phase"),
            ("--worker-slots", defaults.worker_slots, "worker concurrency"),
        ],
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(worker_jobs=args.worker_jobs, worker_slots=args.worker_slots)


async def _noop(job: Job) -> None:
    del job


async def run(server_url: str, options: Options) -> dict[str, Any]:
    async with _database.fresh_database(server_url, "sluice_bench") as url:
        await asyncio.to_thread(runner.upgrade, url)
        async with await _database.connect(url) as conn:
            noop = await _drain(conn, url, options, NewJob("noop"), {"noop": _noop})
            progress(f"worker, no-op handler: {noop['jobs_per_s']:,.0f} jobs/s")
            step = NewJob("run_step", {"code": ECHO, "input": 1})
            steps = await _drain(conn, url, options, step, None)
            progress(
                f"worker, sandboxed steps: {steps['jobs_per_s']:,.0f} jobs/s, "
                f"RSS {steps['rss_growth_pct']:+.1f} %"
            )
    return {"parameters": asdict(options), "figures": {"noop": noop, "sandboxed": steps}}


async def _drain(
    conn: AsyncConnection[Any],
    url: str,
    options: Options,
    job: NewJob,
    handlers: dict[str, Handler] | None,
) -> dict[str, Any]:
    """Enqueue `options.worker_jobs` copies of `job`, then time a worker draining them.
    `handlers=None` runs the built-in kinds (with sandboxes)."""
    await _database.reset(conn, TABLES)
    queue = Queue()
    for first in range(0, options.worker_jobs, 1000):
        count = min(1000, options.worker_jobs - first)
        await queue.enqueue_many(conn, [job] * count)
    await _database.analyze(conn, TABLES)
    settings = Settings(
        database_url=SecretStr(url), worker_concurrency=options.worker_slots, pool_max_size=8
    )
    settled = 0
    warmed_up = asyncio.Event()
    all_settled = asyncio.Event()
    rss_after_warmup = 0

    def count_settled(job: Job, outcome: Outcome) -> None:
        nonlocal settled, rss_after_warmup
        if outcome.verdict is not Verdict.COMPLETE:
            raise RuntimeError(f"job {job.id} did not complete: {outcome.error}")
        settled += 1
        if settled == WARMUP_JOBS:
            rss_after_warmup = _rss_bytes()
            warmed_up.set()
        if settled == options.worker_jobs:
            all_settled.set()

    worker = Worker(settings, handlers, on_settled=count_settled)
    stop = asyncio.Event()
    progress(f"worker: draining {options.worker_jobs:,} {job.kind} jobs")
    started = perf_counter()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(all_settled.wait(), options.phase_seconds)
    finally:
        seconds = perf_counter() - started
        rss_end = _rss_bytes()
        stop.set()
        await task
    left = await _database.count(conn, "jobs")
    if left or worker.stats.completed != options.worker_jobs:
        raise RuntimeError(f"worker completed {worker.stats.completed}; {left} jobs left")
    return {
        "jobs_per_s": options.worker_jobs / seconds,
        "seconds": seconds,
        "rss_after_warmup_bytes": rss_after_warmup,
        "rss_end_bytes": rss_end,
        "rss_growth_pct": (rss_end - rss_after_warmup) / rss_after_warmup * 100,
    }


def _rss_bytes() -> int:
    """Current resident set size of this (the worker's) process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rows(result: dict[str, Any]) -> list[Row]:
    noop, steps = result["figures"]["noop"], result["figures"]["sandboxed"]
    growth = steps["rss_growth_pct"]
    return [
        Row("no-op jobs through the worker", f"{noop['jobs_per_s']:,.0f} jobs/s"),
        Row("sandboxed no-op steps through the worker", f"{steps['jobs_per_s']:,.0f} steps/s"),
        Row(
            "worker RSS growth over the sandboxed run",
            f"{growth:+.1f} %",
            f"< {TARGET_RSS_GROWTH_PCT:g} %",
            verdict(growth < TARGET_RSS_GROWTH_PCT),
        ),
    ]


def title(parameters: dict[str, Any]) -> str:
    return (
        f"Sluice worker: {parameters['worker_jobs']:,} jobs per phase, "
        f"{parameters['worker_slots']} slots, one process"
    )
