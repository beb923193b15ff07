"""The flow benchmark: sync webhook → a `code` step returning true → `respond`, driven by `hey`.

For each configuration, real `sluice serve` processes (apps, workers, or both in one) run on
a fresh database of the benchmark server. The flow is deployed over the API, `hey` sends
the warm-up requests (discarded), then the measured ones at a concurrency equal to the
total worker slots, split evenly over the app endpoints (one `hey` per endpoint, at the same
time). Per-request latencies come from `hey -o csv`; throughput is requests over the wall
time of the slowest `hey`. Any non-200 reply is counted as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from migrations import runner
from ops.bench import _args, _database
from ops.bench._report import Row, environment, percentile, progress, verdict
from ops.ports import free_port

FLOW: dict[str, Any] = {
    "name": "bench",
    "steps": [
        {"id": "check", "type": "code", "code": "def run(input, ctx):\n    return True"},
        {"id": "reply", "type": "respond", "status": 200, "body": "{{ steps.check.output }}"},
    ],
}
TARGET_REQUESTS_PER_SECOND = 300.0
TARGET_P99_MS = 50.0
TARGET_CONFIG = "1 worker_and_app"


@dataclass(frozen=True)
class Config:
    name: str
    apps: int = 0
    workers: int = 0
    combined: int = 0
    """Processes running both (WORKER_AND_APP)."""

    @property
    def endpoints(self) -> int:
        return self.apps + self.combined

    @property
    def worker_processes(self) -> int:
        return self.workers + self.combined


CONFIGS = {
    config.name: config
    for config in [
        Config("1 app + 1 worker", apps=1, workers=1),
        Config("1 app + 2 workers", apps=1, workers=2),
        Config("2 apps + 2 workers", apps=2, workers=2),
        Config("2 apps + 4 workers", apps=2, workers=4),
        Config("1 worker_and_app", combined=1),
        Config("2 worker_and_app", combined=2),
    ]
}


@dataclass(frozen=True)
class Options:
    configs: tuple[str, ...] = (TARGET_CONFIG,)
    requests: int = 2000
    warmup: int = 500
    slots: int = 4
    """Worker slots per worker process (SLUICE_WORKER_CONCURRENCY)."""
    sandbox: str = "bwrap"
    out: Path | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configs",
        default="single",
        help="'single' (1 worker_and_app, the target), 'all' (the six), or names joined "
        f"by ',' from: {'; '.join(CONFIGS)}",
    )
    _args.add_counts(
        parser,
        [
            ("--requests", Options.requests, "measured requests per configuration"),
            ("--warmup", Options.warmup, "warm-up requests per configuration"),
            ("--slots", Options.slots, "worker slots per worker process"),
        ],
    )
    parser.add_argument(
        "--sandbox", default=Options.sandbox, choices=["bwrap", "process", "none", "auto"]
    )
    parser.add_argument(
        "--out", type=Path, help="also write flow.json, flow.md and flow.png into this folder"
    )


def options_from(args: argparse.Namespace) -> Options:
    if args.configs == "single":
        names: tuple[str, ...] = (TARGET_CONFIG,)
    elif args.configs == "all":
        names = tuple(CONFIGS)
    else:
        names = tuple(name.strip() for name in args.configs.split(","))
        unknown = [name for name in names if name not in CONFIGS]
        if unknown:
            raise SystemExit(f"unknown configuration(s): {', '.join(unknown)}")
    return Options(names, args.requests, args.warmup, args.slots, args.sandbox, args.out)


async def run(server_url: str, options: Options) -> dict[str, Any]:
    if shutil.which("hey") is None:
        raise SystemExit("the flow benchmark needs `hey` (Debian/Ubuntu: apt-get install hey)")
    results = []
    for number, name in enumerate(options.configs, 1):
        config = CONFIGS[name]
        progress(f"flow [{number}/{len(options.configs)}] {name}: starting processes")
        async with _database.fresh_database(server_url, "sluice_bench_flow") as url:
            await asyncio.to_thread(runner.upgrade, url)
            results.append(await _measure(url, config, options))
        last = results[-1]
        progress(
            f"flow [{number}/{len(options.configs)}] {name}: {last['requests_per_second']:.0f} "
            f"req/s, p50 {last['p50_ms']:.1f} ms, p99 {last['p99_ms']:.1f} ms, "
            f"{last['errors']} errors"
        )
    result = {"parameters": _parameters(options), "configs": results}
    if options.out is not None:
        write_outputs(options.out, result)
    return result


def _parameters(options: Options) -> dict[str, Any]:
    parameters = asdict(options)
    parameters["out"] = str(options.out) if options.out else None
    parameters["cpus"] = os.cpu_count()
    return parameters


async def _measure(url: str, config: Config, options: Options) -> dict[str, Any]:
    admin = secrets.token_urlsafe(16)
    async with _processes(url, config, options, admin) as endpoints:
        webhook = await _deploy(endpoints[0], admin)
        concurrency = options.slots * config.worker_processes
        progress(f"  warm-up: {options.warmup} requests")
        await _hey(endpoints, webhook, options.warmup, concurrency)
        progress(f"  measuring: {options.requests} requests at concurrency {concurrency}")
        started = time.perf_counter()
        samples = await _hey(endpoints, webhook, options.requests, concurrency)
        wall = time.perf_counter() - started
    latencies = sorted(latency for latency, _status in samples)
    errors = sum(1 for _latency, status in samples if status != 200)
    return {
        "config": config.name,
        "apps": config.apps,
        "workers": config.workers,
        "worker_and_app": config.combined,
        "concurrency": concurrency,
        "requests": len(samples),
        "errors": errors,
        "seconds": round(wall, 3),
        "requests_per_second": len(samples) / wall,
        "mean_ms": 1000 * sum(latencies) / len(latencies),
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
    }


@contextlib.asynccontextmanager
async def _processes(
    url: str, config: Config, options: Options, admin: str
) -> AsyncIterator[list[str]]:
    """Start the configuration's processes; yield the app base URLs once all are ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        SLUICE_DATABASE_URL=url,
        SLUICE_ADMIN_API_KEY=admin,
        SLUICE_MIGRATE_ON_START="false",
        SLUICE_LOG_LEVEL="WARNING",
        SLUICE_SANDBOX=options.sandbox,
        SLUICE_WORKER_CONCURRENCY=str(options.slots),
    )
    sluice = str(Path(sys.executable).parent / "sluice")
    roles = (
        ["app"] * config.apps + ["worker"] * config.workers + ["worker_and_app"] * config.combined
    )
    processes: list[asyncio.subprocess.Process] = []
    endpoints: list[str] = []
    try:
        for role in roles:
            port = free_port()
            if role != "worker":
                endpoints.append(f"http://127.0.0.1:{port}")
            processes.append(
                await asyncio.create_subprocess_exec(
                    sluice,
                    "serve",
                    "--role",
                    role,
                    "--port",
                    str(port),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        await _ready(endpoints, url, config.worker_processes, processes)
        yield endpoints
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _ready(
    endpoints: list[str], url: str, workers: int, processes: list[asyncio.subprocess.Process]
) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        pending = list(endpoints)
        while pending:
            if any(process.returncode is not None for process in processes):
                raise SystemExit("a sluice process exited during start-up")
            if time.monotonic() > deadline:
                raise SystemExit(f"apps not ready after 60 s: {pending}")
            for endpoint in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{endpoint}/ready")).status_code == 200:
                        pending.remove(endpoint)
            await asyncio.sleep(0.2)  # polling other processes' readiness, not a wait-for-work
    async with await _database.connect(url) as conn:
        while True:
            cur = await conn.execute("SELECT count(*) FROM workers WHERE stopped_at IS NULL")
            row = await cur.fetchone()
            if row is not None and row[0] >= workers:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"only {row[0] if row else 0} of {workers} workers registered")
            await asyncio.sleep(0.2)


async def _deploy(endpoint: str, admin: str) -> str:
    async with httpx.AsyncClient(base_url=endpoint, timeout=30) as client:
        created = await client.post(
            "/api/v1/projects",
            json={"name": "bench"},
            headers={"authorization": f"Bearer {admin}"},
        )
        created.raise_for_status()
        key = created.json()["api_key"]
        deployed = await client.put(
            "/api/v1/flows/bench", json=FLOW, headers={"authorization": f"Bearer {key}"}
        )
        deployed.raise_for_status()
        flow_id: str = deployed.json()["id"]
        return flow_id


async def _hey(
    endpoints: list[str], flow_id: str, requests: int, concurrency: int
) -> list[tuple[float, int]]:
    """Run one `hey` per endpoint at once, sharing requests and concurrency; samples of
    (latency seconds, status)."""
    share = len(endpoints)
    commands = [
        [
            "hey",
            "-n",
            str(requests // share + (1 if i < requests % share else 0)),
            "-c",
            str(max(1, concurrency // share)),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-d",
            "{}",
            "-o",
            "csv",
            f"{endpoint}/webhooks/{flow_id}/sync",
        ]
        for i, endpoint in enumerate(endpoints)
    ]
    outputs = await asyncio.gather(*(_output(command) for command in commands))
    samples: list[tuple[float, int]] = []
    for output in outputs:
        for row in csv.DictReader(io.StringIO(output)):
            samples.append((float(row["response-time"]), int(row["status-code"])))
    return samples


async def _output(command: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"hey failed: {stderr.decode(errors='replace').strip()}")
    return stdout.decode()


# --- output ---------------------------------------------------------------------------------


def title(parameters: dict[str, Any]) -> str:
    return (
        f"Flow benchmark (sync webhook → code → respond; {parameters['requests']} requests "
        f"after {parameters['warmup']} warm-up; {parameters['slots']} slots per worker; "
        f"sandbox {parameters['sandbox']})"
    )


def rows(result: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
    for each in result["configs"]:
        name = each["config"]
        target = name == TARGET_CONFIG and result["parameters"]["sandbox"] == "bwrap"
        rate, p99 = each["requests_per_second"], each["p99_ms"]
        table.append(
            Row(
                f"{name}: throughput (c={each['concurrency']})",
                f"{rate:.0f} req/s",
                f">= {TARGET_REQUESTS_PER_SECOND:.0f} req/s" if target else "",
                verdict(rate >= TARGET_REQUESTS_PER_SECOND) if target else "",
            )
        )
        table.append(Row(f"{name}: mean / p50", f"{each['mean_ms']:.1f} / {each['p50_ms']:.1f} ms"))
        table.append(
            Row(
                f"{name}: p99",
                f"{p99:.1f} ms",
                f"<= {TARGET_P99_MS:.0f} ms" if target else "",
                verdict(p99 <= TARGET_P99_MS) if target else "",
            )
        )
        if each["errors"]:
            table.append(Row(f"{name}: errors", str(each["errors"]), "0", verdict(False)))
    return table


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| configuration | concurrency | req/s | mean ms | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for each in result["configs"]:
        lines.append(
            f"| {each['config']} | {each['concurrency']} | {each['requests_per_second']:.0f} | "
            f"{each['mean_ms']:.1f} | {each['p50_ms']:.1f} | {each['p99_ms']:.1f} | "
            f"{each['errors']} |"
        )
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], path: Path) -> None:
    """Throughput bars and p99 markers per configuration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [each["config"] for each in result["configs"]]
    rates = [each["requests_per_second"] for each in result["configs"]]
    p99s = [each["p99_ms"] for each in result["configs"]]
    figure, left = plt.subplots(figsize=(10, 5))
    positions = range(len(names))
    left.bar(positions, rates, color="#3b7dd8", label="throughput (req/s)")
    left.set_ylabel("requests per second")
    left.set_xticks(list(positions), names, rotation=20, ha="right")
    right = left.twinx()
    right.plot(list(positions), p99s, "o-", color="#d8543b", label="p99 latency (ms)")
    right.set_ylabel("p99 latency (ms)")
    right.set_ylim(bottom=0)
    left.set_title(title(result["parameters"]), fontsize=9)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="upper left", fontsize=8)
    left.set_ylim(top=max(rates) * 1.25)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(folder: Path, result: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {**result, "environment": environment()}
    (folder / "flow.json").write_text(json.dumps(record, indent=2) + "\n")
    (folder / "flow.md").write_text(markdown(result))
    chart(result, folder / "flow.png")
    progress(f"wrote {folder}/flow.json, flow.md and flow.png")
