"""The worker benchmark: no-op jobs per second through the real worker loop.

A `Worker` (claim loop into free slots, executor, batched completer, heartbeat) drains N
jobs of a kind whose handler does nothing; the rate counts completions confirmed in the
database (the jobs table is empty at the end).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any

from pydantic import SecretStr

from app.jobs import Job, NewJob, Queue
from app.settings import Settings
from migrations import runner
from ops.bench import _database
from ops.bench._report import Row, progress
from worker.executor import Outcome
from worker.runner import Worker

TABLES = ["jobs", "dead_jobs", "projects", "workers"]


@dataclass(frozen=True)
class Options:
    worker_jobs: int = 20_000
    worker_slots: int = 16
    phase_seconds: float = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    parser.add_argument(
        "--worker-jobs", type=int, default=defaults.worker_jobs, help="no-op jobs to drain"
    )
    parser.add_argument(
        "--worker-slots", type=int, default=defaults.worker_slots, help="worker concurrency"
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(worker_jobs=args.worker_jobs, worker_slots=args.worker_slots)


async def _noop(job: Job) -> None:
    del job


async def run(server_url: str, options: Options) -> dict[str, Any]:
    async with _database.fresh_database(server_url, "sluice_bench") as url:
        await asyncio.to_thread(runner.upgrade, url)
        async with await _database.connect(url) as conn:
            await _database.reset(conn, TABLES)
            queue = Queue()
            for first in range(0, options.worker_jobs, 1000):
                count = min(1000, options.worker_jobs - first)
                await queue.enqueue_many(conn, [NewJob("noop") for _ in range(count)])
            await _database.analyze(conn, TABLES)
            settings = Settings(
                database_url=SecretStr(url),
                worker_concurrency=options.worker_slots,
                pool_max_size=8,
            )
            settled = 0
            all_settled = asyncio.Event()

            def count_settled(job: Job, outcome: Outcome) -> None:
                nonlocal settled
                settled += 1
                if settled == options.worker_jobs:
                    all_settled.set()

            worker = Worker(settings, {"noop": _noop}, on_settled=count_settled)
            stop = asyncio.Event()
            progress(f"worker: draining {options.worker_jobs:,} no-op jobs")
            started = perf_counter()
            task = asyncio.create_task(worker.run(stop))
            await asyncio.wait_for(all_settled.wait(), options.phase_seconds)
            seconds = perf_counter() - started
            stop.set()
            await task
            left = await _database.count(conn, "jobs")
    if left:
        raise RuntimeError(f"{left} jobs left after the worker settled every job")
    if worker.stats.completed != options.worker_jobs:
        raise RuntimeError(f"worker completed {worker.stats.completed} of {options.worker_jobs}")
    figures = {"jobs_per_s": options.worker_jobs / seconds, "seconds": seconds}
    progress(f"worker: {figures['jobs_per_s']:,.0f} jobs/s")
    return {"parameters": asdict(options), "figures": figures}


def rows(result: dict[str, Any]) -> list[Row]:
    figures = result["figures"]
    return [Row("no-op jobs through the worker", f"{figures['jobs_per_s']:,.0f} jobs/s")]


def title(parameters: dict[str, Any]) -> str:
    return (
        f"Sluice worker: {parameters['worker_jobs']:,} no-op jobs, "
        f"{parameters['worker_slots']} slots, one process"
    )
