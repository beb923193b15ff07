"""One scenario, start to end: a fresh database on the chaos Postgres, the counter server,
the app and two workers, the load; the fault in the middle of it; then the load stops, the
runs settle, and what happened is measured.

Timeline: `warmup_seconds` of load, the fault, `after_seconds` of load after the fault's
end. The load's rate is `runs` over the nominal length of that timeline, so about `runs`
webhooks are sent. Settling waits (up to `settle_seconds`) until no run is unfinished.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from migrations import runner
from ops.bench._database import fresh_database
from ops.chaos import measure
from ops.chaos.client import Client, Load, RetryPolicy, http_client
from ops.chaos.faults import FaultOptions, Target, Window
from ops.chaos.postgres import Postgres
from ops.chaos.processes import running_cluster
from ops.chaos.report import progress
from ops.chaos.scenarios import SCENARIOS, Scenario, describe
from tests.e2e.flow_helpers import deploy, new_project, probe_server


@dataclass(frozen=True)
class Options:
    runs: int | None = None
    """Webhooks to send (about); None: `rate` over the scenario's nominal length."""
    rate: float = 20.0
    warmup_seconds: float = 5.0
    after_seconds: float = 10.0
    settle_seconds: float = 90.0
    seed: int = 1
    faults: FaultOptions = field(default_factory=FaultOptions)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    logs: Path | None = None
    """Keep the processes' logs here (else they go with the temporary directory)."""


def flow(counter_url: str) -> dict[str, Any]:
    """code → two counted effects (http POSTs to the counter, keyed by run and step) →
    respond."""
    effect = f"{counter_url}/hit/{{{{ run.id }}}}"
    return {
        "name": "chaos",
        "steps": [
            {
                "id": "compute",
                "type": "code",
                "code": "def run(input, ctx):\n    return {'n': input['trigger']['body']['n']}",
            },
            {"id": "first", "type": "http", "method": "POST", "url": f"{effect}.first"},
            {"id": "second", "type": "http", "method": "POST", "url": f"{effect}.second"},
            {"id": "reply", "type": "respond", "body": "{{ steps.compute.output }}"},
        ],
    }


def span_seconds(scenario: Scenario, options: Options) -> float:
    return options.warmup_seconds + scenario.nominal_seconds(options.faults) + options.after_seconds


def rate(scenario: Scenario, options: Options) -> float:
    if options.runs is None:
        return options.rate
    return options.runs / span_seconds(scenario, options)


async def run(name: str, postgres: Postgres, options: Options) -> dict[str, Any]:
    """Run scenario `name` on `postgres`; its record (figures, latency, parameters)."""
    scenario = SCENARIOS[name]
    async with fresh_database(postgres.url, "sluice_chaos") as url:
        await asyncio.to_thread(runner.upgrade, url)
        with tempfile.TemporaryDirectory(prefix=f"sluice-chaos-{name}-") as tmp:
            logs = options.logs / name if options.logs else Path(tmp) / "logs"
            record = await _run(scenario, postgres, url, Path(tmp), logs, options)
    return record


async def _run(
    scenario: Scenario, postgres: Postgres, url: str, root: Path, logs: Path, options: Options
) -> dict[str, Any]:
    # Apart, so that the kills a seed makes do not depend on the client's timing.
    faults_rng, client_rng = random.Random(f"{options.seed}/faults"), random.Random(options.seed)
    async with probe_server() as counter, await measure.connect(url) as conn:
        project_id, _key = await new_project(conn, "chaos")
        flow_id = str(await deploy(conn, project_id, flow(counter.base_url)))
        progress(f"{scenario.name}: starting the app and two workers")
        async with (
            running_cluster(url, conn, root, logs) as cluster,
            http_client(cluster.base_url, options.retry) as http,
        ):
            target = Target(postgres, cluster, urlsplit(url).path.lstrip("/"), url, faults_rng)
            client = Client(http, flow_id, options.retry, client_rng)
            load = Load(client, rate(scenario, options))
            started, window, drained_at = await _timeline(scenario, target, load, options)
            died_unasked = cluster.died_unasked()
        facts = await measure.run_facts(url)
        hits = counter.hits.copy()
    table = measure.figures(
        load.events,
        window,
        facts,
        hits,
        drained_at=drained_at,
        repeats_allowed=scenario.repeats_effects,
        died_unasked=died_unasked,
    )
    return {
        "scenario": scenario.name,
        "fault": describe(scenario, options.faults),
        "parameters": _parameters(scenario, options),
        "window": {
            "started_s": round(window.started - started, 3),
            "ended_s": round(window.ended - started, 3),
            "seconds": round(window.ended - window.started, 3),
            **window.notes,
        },
        "figures": measure.as_json(table),
        "latency": measure.latency_by_phase(load.events, window),
        "held": all(figure.held is not False for figure in table.values()),
    }


async def _timeline(
    scenario: Scenario, target: Target, load: Load, options: Options
) -> tuple[float, Window, float | None]:
    """Load, the fault, load, settling: when the load started, the fault's window, and when
    the runs created by its end had all finished."""
    stop = asyncio.Event()
    loading = asyncio.create_task(load.run(stop))
    drained: asyncio.Task[float | None] | None = None
    started = time.monotonic()
    try:
        await asyncio.sleep(options.warmup_seconds)  # the timeline: load before the fault
        progress(f"{scenario.name}: {describe(scenario, options.faults)}")
        window = await scenario.inject(target, options.faults)
        drained = asyncio.create_task(_backlog_drained(load, window, target.database_url, options))
        await asyncio.sleep(options.after_seconds)  # the timeline: load after the fault
        stop.set()
        await loading
        progress(f"{scenario.name}: {len(load.events)} webhooks sent; settling")
        await measure.until_finished(target.database_url, within=options.settle_seconds)
        return started, window, await drained
    finally:
        loading.cancel()
        if drained is not None:
            drained.cancel()


async def _backlog_drained(load: Load, window: Window, url: str, options: Options) -> float | None:
    """When the backlog of the fault was worked off: every webhook that arose by its end
    was answered, and every run created by then had finished. None: not by the deadline."""
    deadline = window.ended + options.after_seconds + options.settle_seconds
    try:
        await asyncio.wait_for(load.ended(window.ended), deadline - time.monotonic())
    except TimeoutError:
        return None
    answered_at = datetime.datetime.now(datetime.UTC)
    return await measure.until_finished(
        url, created_by=answered_at, within=deadline - time.monotonic()
    )


def _parameters(scenario: Scenario, options: Options) -> dict[str, Any]:
    parameters = asdict(options)
    parameters["logs"] = str(options.logs) if options.logs else None
    parameters["rate"] = round(rate(scenario, options), 2)
    parameters["runs"] = options.runs
    return parameters
