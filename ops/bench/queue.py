"""The queue benchmark: enqueue rate, drain rate (plain and gated), idle enqueue→claim latency,
and PgQueuer's drain on the same server for comparison.

Every phase runs in a database created for the run, starts from an empty, vacuumed and
analysed table, and counts completions in the database: a drain is only reported when every
job's completion was confirmed by the ``DELETE … RETURNING`` of ``Queue.complete`` and the
jobs table is empty afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import random
import statistics
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app import jobs
from app.jobs import Lease, NewJob, Queue
from app.signals import Listener, Waker, Wakeup
from migrations import runner
from ops.bench import _args, _database, _pgqueuer
from ops.bench._report import Row, progress, verdict

TABLES = ["jobs", "dead_jobs", "projects"]
GATED_PROJECTS = 3
GATED_LIMIT = 1000
POLL_SECONDS = 1.0
"""The idle claimer's fallback poll, as in the worker: NOTIFY is only a hint."""
HANDOFF_SECONDS = 5.0
"""How long the latency producer waits for its job to be claimed before giving up."""

TARGET_DRAIN = 10_000.0
TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0


@dataclass(frozen=True)
class Options:
    jobs: int = 20_000
    batch: int = 10
    claimers: int = 1
    latency_samples: int = 500
    enqueue_batch: int = 1000
    rounds: int = 3
    """Drains per variant; the median round is reported."""
    phase_seconds: float = 300.0
    """Deadline of each phase; the benchmark fails rather than hangs."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    _args.add_counts(
        parser,
        [
            ("--jobs", defaults.jobs, "jobs per drain"),
            ("--batch", defaults.batch, "claim batch size"),
            ("--claimers", defaults.claimers, "concurrent claim loops, in this one process"),
            ("--latency-samples", defaults.latency_samples, "idle enqueue→claim samples"),
            ("--enqueue-batch", defaults.enqueue_batch, "jobs per enqueue statement"),
            ("--rounds", defaults.rounds, "drains per variant; the median is reported"),
        ],
    )
    parser.add_argument(
        "--phase-timeout",
        type=float,
        default=defaults.phase_seconds,
        dest="phase_seconds",
        help=f"seconds before a phase is abandoned ({defaults.phase_seconds:g})",
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        jobs=args.jobs,
        batch=args.batch,
        claimers=args.claimers,
        latency_samples=args.latency_samples,
        enqueue_batch=args.enqueue_batch,
        rounds=args.rounds,
        phase_seconds=args.phase_seconds,
    )


@dataclass
class _Claimer:
    """One claim loop's tally; `finished_at` is its last confirmed completion."""

    completed: int = 0
    claims: int = 0
    batches: int = 0
    claim_seconds: float = 0.0
    complete_seconds: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class Drain:
    jobs: int
    seconds: float
    claims: int
    claim_ms: float
    """Mean time of one claim round trip (including the empty ones at the end)."""
    complete_ms: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


@dataclass(frozen=True)
class Latency:
    samples: list[float] = field(repr=False)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": self.percentile(50) * 1000,
            "p99": self.percentile(99) * 1000,
            "max": max(self.samples) * 1000,
            "mean": statistics.fmean(self.samples) * 1000,
        }


async def run(server_url: str, options: Options) -> dict[str, Any]:
    """Run every phase; returns the figures and the server's description."""
    queue = Queue(lease_seconds=30)
    async with _database.fresh_database(server_url, "sluice_bench") as url:
        progress("fresh database created; migrating")
        await asyncio.to_thread(runner.upgrade, url)
        async with await _database.connect(url) as conn:
            postgres = await _database.describe(conn)
            enqueue, plain = await _drain_rounds(conn, url, queue, options, gated=False)
            _, gated = await _drain_rounds(conn, url, queue, options, gated=True)
            _, completer = await _drain_rounds(
                conn, url, queue, options, gated=False, completer=True
            )
            await _database.reset(conn, TABLES)
        progress(f"latency: {options.latency_samples} idle enqueue→claim samples")
        async with asyncio.timeout(options.phase_seconds):
            latency = await _latency(url, queue, options)
        progress("latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms".format(**latency.summary_ms()))

    comparison = await _pgqueuer.compare(server_url, options)
    figures: dict[str, Any] = {
        "enqueue_jobs_per_s": statistics.median(enqueue),
        "drain": _drain_figures(plain),
        "drain_gated": _drain_figures(gated),
        "drain_with_completer": _drain_figures(completer),
        "latency_ms": latency.summary_ms() | {"samples": len(latency.samples)},
        "pgqueuer": comparison,
    }
    if "drain_jobs_per_s" in comparison:
        figures["drain_ratio_vs_pgqueuer"] = (
            figures["drain"]["jobs_per_s"] / comparison["drain_jobs_per_s"]
        )
        figures["drain_with_completer_ratio_vs_pgqueuer"] = (
            figures["drain_with_completer"]["jobs_per_s"] / comparison["drain_jobs_per_s"]
        )
    return {"parameters": asdict(options), "figures": figures, "postgres": postgres}


async def _drain_rounds(
    conn: AsyncConnection[Any],
    url: str,
    queue: Queue,
    options: Options,
    *,
    gated: bool,
    completer: bool = False,
) -> tuple[list[float], list[Drain]]:
    """Each round: reset, enqueue (timed), analyze, drain (timed). Gated rounds spread the
    jobs over projects whose concurrency limit is high enough never to throttle. Pipelined
    Completer rounds hand completions to one completer task on its own connection, which
    completes whatever has accumulated in one statement while the claimers claim on."""
    name = "drain, gated" if gated else "drain, with completer" if completer else "drain"
    enqueue_rates: list[float] = []
    drains: list[Drain] = []
    for n in range(1, options.rounds + 1):
        await _database.reset(conn, TABLES)
        project_ids: list[int | None] = [None]
        if gated:
            cur = await conn.execute(
                "INSERT INTO projects (name, concurrency_limit)"
                " SELECT 'bench-' || n, %s FROM generate_series(1, %s) AS n RETURNING id",
                (GATED_LIMIT, GATED_PROJECTS),
            )
            project_ids = [row[0] for row in await cur.fetchall()]
        enqueue_rates.append(options.jobs / await _enqueue(conn, queue, options, project_ids))
        await _database.analyze(conn, TABLES)
        if completer:
            drains.append(await _timed_drain_with_completer(conn, url, queue, options))
        else:
            drains.append(await _timed_drain(conn, url, queue, options))
        progress(
            f"{name}, round {n}/{options.rounds}: enqueue {enqueue_rates[-1]:,.0f} jobs/s, "
            f"drain {drains[-1].rate:,.0f} jobs/s"
        )
    return enqueue_rates, drains


def _drain_figures(drains: list[Drain]) -> dict[str, Any]:
    """The median round, with every round's rate."""
    median = sorted(drains, key=lambda d: d.rate)[len(drains) // 2]
    return asdict(median) | {
        "jobs_per_s": median.rate,
        "rounds_jobs_per_s": [d.rate for d in drains],
    }


async def _enqueue(
    conn: AsyncConnection[Any], queue: Queue, options: Options, project_ids: list[int | None]
) -> float:
    """Enqueue the run's jobs round-robin over `project_ids`; returns the seconds it took."""
    started = perf_counter()
    for first in range(0, options.jobs, options.enqueue_batch):
        count = min(options.enqueue_batch, options.jobs - first)
        await queue.enqueue_many(
            conn,
            [
                NewJob(kind="noop", project_id=project_ids[(first + i) % len(project_ids)])
                for i in range(count)
            ],
        )
    return perf_counter() - started


async def _timed_drain(
    conn: AsyncConnection[Any], url: str, queue: Queue, options: Options
) -> Drain:
    """Drain the queue with `options.claimers` loops, each on its own connection."""
    async with contextlib.AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(await _database.connect(url))
            for _ in range(options.claimers)
        ]
        started = perf_counter()
        async with asyncio.timeout(options.phase_seconds), asyncio.TaskGroup() as loops:
            claimers = [
                loops.create_task(_claim_until_empty(c, queue, f"bench-{n}", options.batch))
                for n, c in enumerate(connections)
            ]
    tallies = [claimer.result() for claimer in claimers]
    completed = sum(t.completed for t in tallies)
    left = await _database.count(conn, "jobs")
    if completed != options.jobs or left != 0:
        raise RuntimeError(f"drain confirmed {completed} of {options.jobs} jobs; {left} left")
    claims = sum(t.claims for t in tallies)
    return Drain(
        jobs=completed,
        seconds=max(t.finished_at for t in tallies) - started,
        claims=claims,
        claim_ms=sum(t.claim_seconds for t in tallies) / claims * 1000,
        complete_ms=sum(t.complete_seconds for t in tallies)
        / max(1, sum(t.batches for t in tallies))
        * 1000,
    )


async def _timed_drain_with_completer(
    conn: AsyncConnection[Any], url: str, queue: Queue, options: Options
) -> Drain:
    """Claimers claim; one completer completes what they hand over, batching as it goes."""
    done: asyncio.Queue[tuple[str, list[Lease]] | None] = asyncio.Queue()
    tally = _Claimer()
    claim_tallies: list[_Claimer] = []

    async def claimer(c: AsyncConnection[Any], owner: str) -> None:
        mine = _Claimer()
        claim_tallies.append(mine)
        while True:
            before = perf_counter()
            claimed = await queue.claim(c, owner, options.batch)
            mine.claims += 1
            mine.claim_seconds += perf_counter() - before
            if claimed:
                done.put_nowait((owner, [job.lease for job in claimed]))
            elif await _database.count(c, "jobs", "state = 'queued'") == 0:
                return

    async def complete_all(c: AsyncConnection[Any]) -> None:
        finished = False
        while not finished:
            # Whatever was handed over meanwhile goes into one statement per owner.
            handed = [await done.get()]
            while not done.empty():
                handed.append(done.get_nowait())
            finished = None in handed
            pending: dict[str, list[Lease]] = {}
            for item in handed:
                if item is not None:
                    pending.setdefault(item[0], []).extend(item[1])
            if not pending:
                continue
            before = perf_counter()
            for owner, held in pending.items():
                lost = await queue.complete(c, owner, held)
                tally.completed += len(held) - len(lost)
            tally.finished_at = perf_counter()
            tally.complete_seconds += tally.finished_at - before
            tally.batches += 1

    async with contextlib.AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(await _database.connect(url))
            for _ in range(options.claimers + 1)
        ]
        started = perf_counter()
        async with asyncio.timeout(options.phase_seconds):
            completing = asyncio.create_task(complete_all(connections[0]))
            await asyncio.gather(*(claimer(c, f"bench-{n}") for n, c in enumerate(connections[1:])))
            done.put_nowait(None)
            await completing
    left = await _database.count(conn, "jobs")
    if tally.completed != options.jobs or left != 0:
        raise RuntimeError(f"drain confirmed {tally.completed} of {options.jobs}; {left} left")
    claims = sum(t.claims for t in claim_tallies)
    return Drain(
        jobs=tally.completed,
        seconds=tally.finished_at - started,
        claims=claims,
        claim_ms=sum(t.claim_seconds for t in claim_tallies) / claims * 1000,
        complete_ms=tally.complete_seconds / max(1, tally.batches) * 1000,
    )


async def _claim_until_empty(
    conn: AsyncConnection[Any], queue: Queue, owner: str, batch: int
) -> _Claimer:
    tally = _Claimer()
    while True:
        before = perf_counter()
        claimed = await queue.claim(conn, owner, batch)
        claimed_at = perf_counter()
        tally.claims += 1
        tally.claim_seconds += claimed_at - before
        if not claimed:
            # Empty for us: done once nothing is queued (other loops may still hold jobs).
            if await _database.count(conn, "jobs", "state = 'queued'") == 0:
                return tally
            continue
        lost = await queue.complete(conn, owner, [job.lease for job in claimed])
        tally.finished_at = perf_counter()
        tally.complete_seconds += tally.finished_at - claimed_at
        tally.batches += 1
        tally.completed += len(claimed) - len(lost)


async def _latency(url: str, queue: Queue, options: Options) -> Latency:
    """Enqueue one job at a time into an idle queue (autocommit: the queue's waker sends the
    NOTIFY) and time until a claimer waiting as the worker does has it."""
    claimed: asyncio.Queue[float] = asyncio.Queue()
    rng = random.Random(0)
    samples: list[float] = []
    listener = Listener(url, [jobs.NOTIFY_CHANNEL])
    async with (
        AsyncConnectionPool(
            url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
        ) as pool,
        await _database.connect(url) as producer,
        await _database.connect(url) as consumer,
        asyncio.TaskGroup() as tasks,
    ):
        listening = tasks.create_task(listener.run())
        await asyncio.wait_for(listener.connected.wait(), HANDOFF_SECONDS)
        waker = Waker(pool, jobs.NOTIFY_CHANNEL)
        waking = dataclasses.replace(queue, waker=waker)
        claiming = tasks.create_task(_claim_when_woken(consumer, queue, listener, options, claimed))
        for _ in range(options.latency_samples):
            await asyncio.sleep(rng.uniform(0.005, 0.020))  # let the claimer go idle
            started = perf_counter()
            await waking.enqueue(producer, NewJob(kind="noop"))
            samples.append(await asyncio.wait_for(claimed.get(), HANDOFF_SECONDS) - started)
        await waker.aclose()
        claiming.cancel()
        listening.cancel()
    return Latency(samples)


async def _claim_when_woken(
    conn: AsyncConnection[Any],
    queue: Queue,
    listener: Listener,
    options: Options,
    claimed: asyncio.Queue[float],
) -> None:
    """The worker's idle loop: arm the wake-up, claim, and wait for a NOTIFY or the poll."""
    wakeup = Wakeup(listener, jobs.NOTIFY_CHANNEL, POLL_SECONDS)
    try:
        while True:
            wakeup.arm()
            got = await queue.claim(conn, "bench-idle", options.batch)
            at = perf_counter()
            if got:
                await queue.complete(conn, "bench-idle", [job.lease for job in got])
                for _ in got:
                    claimed.put_nowait(at)
            else:
                await wakeup.wait()
    finally:
        wakeup.close()


def rows(result: dict[str, Any]) -> list[Row]:
    """The table printed for one run of this benchmark."""
    figures = result["figures"]
    lat = figures["latency_ms"]
    out = [
        Row("enqueue", f"{figures['enqueue_jobs_per_s']:,.0f} jobs/s"),
        *_drain_rows("drain", figures["drain"]),
        *_drain_rows("drain, gated", figures["drain_gated"]),
        *_drain_rows("drain, claimer + completer", figures["drain_with_completer"]),
        Row("  claim round trip (mean)", f"{figures['drain']['claim_ms']:.3f} ms"),
        Row("  complete round trip (mean)", f"{figures['drain']['complete_ms']:.3f} ms"),
        _ms_row("enqueue→claim p50", lat["p50"], TARGET_P50_MS),
        _ms_row("enqueue→claim p99", lat["p99"], TARGET_P99_MS),
        Row("enqueue→claim max", f"{lat['max']:.2f} ms"),
    ]
    pgq = figures["pgqueuer"]
    if "drain_jobs_per_s" in pgq:
        out += [
            Row("pgqueuer enqueue", f"{pgq['enqueue_jobs_per_s']:,.0f} jobs/s"),
            Row(f"pgqueuer drain ({pgq['driver']})", f"{pgq['drain_jobs_per_s']:,.0f} jobs/s"),
            Row(
                "sluice / pgqueuer drain",
                f"{figures['drain_ratio_vs_pgqueuer']:.2f}x",
                "> 1",
                verdict(figures["drain_ratio_vs_pgqueuer"] > 1),
            ),
            Row(
                "sluice claimer + completer / pgqueuer drain",
                f"{figures['drain_with_completer_ratio_vs_pgqueuer']:.2f}x",
                "> 1",
                verdict(figures["drain_with_completer_ratio_vs_pgqueuer"] > 1),
            ),
        ]
    else:
        out.append(Row("pgqueuer comparison", "skipped", pgq.get("skipped", "")))
    return out


def _drain_rows(label: str, drain: dict[str, Any]) -> list[Row]:
    rate = drain["jobs_per_s"]
    rounds = drain["rounds_jobs_per_s"]
    return [
        Row(
            f"{label} (median of {len(rounds)})",
            f"{rate:,.0f} jobs/s",
            f">= {TARGET_DRAIN:,.0f}",
            verdict(rate >= TARGET_DRAIN),
        ),
        Row("  rounds", " / ".join(f"{r:,.0f}" for r in rounds)),
    ]


def _ms_row(label: str, ms: float, target: float) -> Row:
    return Row(label, f"{ms:.2f} ms", f"<= {target:g} ms", verdict(ms <= target))


def title(parameters: dict[str, Any]) -> str:
    return (
        f"Sluice queue: {parameters['jobs']:,} jobs, batch {parameters['batch']}, "
        f"{parameters['claimers']} claimer(s), one process"
    )
