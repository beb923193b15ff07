"""The memory check: many webhooks through one server must not grow its resident memory.

After a warm-up (whose runs all end), the server's RSS is read; then 5,000 sync webhooks
are sent, a few at a time, every reply is checked, all their runs must end SUCCEEDED, and
the RSS is read again. Only the server process counts, not its sandbox children. MB here
are 2**20 bytes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ops.smoke import flows
from ops.smoke.checks import Target, deploy_flow, expect, settled_runs
from ops.smoke.report import Failure, Report, Skipped
from ops.smoke.server import rss_bytes

WARMUP = 200
WEBHOOKS = 5000
CONCURRENCY = 8
MAX_GROWTH_MB = 50.0
SETTLE_SECONDS = 300.0
MB = 1024 * 1024


@dataclass
class Measured:
    before: int | None = None
    after: int | None = None


async def run_memory_check(target: Target, report: Report, pid: int | None) -> None:
    measured = Measured()
    await report.step(f"memory: {WEBHOOKS} webhooks", lambda: _load(target, report, pid, measured))
    await report.step("memory: RSS growth", lambda: _growth(pid, measured))


async def _load(target: Target, report: Report, pid: int | None, measured: Measured) -> str:
    deployed = await deploy_flow(target, flows.hello(target.name("memory")))
    name, flow_id = deployed["name"], deployed["id"]
    await _send(target, flow_id, WARMUP, report, "warm-up")
    await _all_succeeded(target, name, WARMUP)
    measured.before = None if pid is None else rss_bytes(pid)
    started = time.perf_counter()
    await _send(target, flow_id, WEBHOOKS, report, "load")
    rate = WEBHOOKS / (time.perf_counter() - started)
    await _all_succeeded(target, name, WARMUP + WEBHOOKS)
    measured.after = None if pid is None else rss_bytes(pid)
    return (
        f"{WARMUP} + {WEBHOOKS} sync webhooks ({CONCURRENCY} at a time, {rate:.0f}/s): "
        "every reply as expected, every run SUCCEEDED"
    )


async def _growth(pid: int | None, measured: Measured) -> str:
    if pid is None:
        raise Skipped("no local server process to measure (started elsewhere; see --pid)")
    if measured.before is None or measured.after is None:
        if rss_bytes(pid) is None:
            raise Skipped(f"cannot read /proc/{pid}/status here")
        raise Skipped("the webhooks step did not finish; nothing to compare")
    growth = (measured.after - measured.before) / MB
    figures = (
        f"RSS {measured.before / MB:.1f} MB after warm-up, {measured.after / MB:.1f} MB after "
        f"{WEBHOOKS} webhooks: {growth:+.1f} MB (limit < {MAX_GROWTH_MB:.0f} MB)"
    )
    if growth >= MAX_GROWTH_MB:
        raise Failure(figures)
    return figures


async def _send(target: Target, flow_id: str, count: int, report: Report, what: str) -> None:
    """`count` sync webhooks, `CONCURRENCY` at a time; Failure at the first wrong reply."""
    numbers = iter(range(count))
    done = 0
    started = time.perf_counter()

    async def sender() -> None:
        nonlocal done
        for number in numbers:  # shared: each number is sent once, by whichever sender is free
            who = f"{what}-{number}"
            reply = expect(
                await target.client.post(f"/webhooks/{flow_id}/sync", json={"who": who}), 200
            )
            if reply != {"hello": who}:
                raise Failure(f"{what} webhook {number} got {reply}, expected {{'hello': {who!r}}}")
            done += 1
            if done % 1000 == 0:
                rate = done / (time.perf_counter() - started)
                report.note(f"memory: {what} {done}/{count} webhooks ({rate:.0f}/s)")

    senders = [asyncio.create_task(sender()) for _ in range(CONCURRENCY)]
    try:
        await asyncio.gather(*senders)
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)


async def _all_succeeded(target: Target, flow: str, expected: int) -> None:
    counts = await settled_runs(target, flow, SETTLE_SECONDS)
    if counts != {"SUCCEEDED": expected}:
        raise Failure(f"runs of {flow}: {dict(counts)}, expected {expected} SUCCEEDED")
