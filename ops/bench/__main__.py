"""``python -m ops.bench <benchmark> [options]``: run benchmarks, print a table, write JSON.

The server is ``--database-url``, else ``SLUICE_DATABASE_URL``, else an embedded server in a
temporary directory. Each benchmark works in databases it creates there and drops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.bench import _database, _report, flow, queue, sandbox, worker


@dataclass(frozen=True)
class Benchmark:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[str, argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]
    rows: Callable[[dict[str, Any]], list[_report.Row]]
    title: Callable[[dict[str, Any]], str]


BENCHMARKS = {
    "flow": Benchmark(
        help="sync webhook → code → respond through real sluice processes, driven by hey",
        add_arguments=flow.add_arguments,
        run=lambda url, args: flow.run(url, flow.options_from(args)),
        rows=flow.rows,
        title=lambda result: flow.title(result["parameters"]),
    ),
    "queue": Benchmark(
        help="enqueue and drain rates, idle enqueue→claim latency, PgQueuer comparison",
        add_arguments=queue.add_arguments,
        run=lambda url, args: queue.run(url, queue.options_from(args)),
        rows=queue.rows,
        title=lambda result: queue.title(result["parameters"]),
    ),
    "worker": Benchmark(
        help="no-op jobs per second through the real worker loop",
        add_arguments=worker.add_arguments,
        run=lambda url, args: worker.run(url, worker.options_from(args)),
        rows=worker.rows,
        title=lambda result: worker.title(result["parameters"]),
    ),
    "sandbox": Benchmark(
        help="sandboxed step round trip (warm), cold start per mode, parent RSS over many steps",
        add_arguments=sandbox.add_arguments,
        run=lambda url, args: sandbox.run(url, sandbox.options_from(args)),
        rows=sandbox.rows,
        title=lambda result: sandbox.title(result["parameters"]),
    ),
}


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m ops.bench",
        description="Benchmarks in fresh databases on --database-url, $SLUICE_DATABASE_URL "
        "or a temporary embedded server: a table on stdout, progress on stderr, JSON on request.",
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="benchmark")
    for name, bench in [*BENCHMARKS.items(), ("all", None)]:
        sub = commands.add_parser(name, help=bench.help if bench else "every benchmark in turn")
        sub.add_argument("--database-url", help="server to use (default: $SLUICE_DATABASE_URL)")
        sub.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
        for each in [bench] if bench else BENCHMARKS.values():
            each.add_arguments(sub)
    return main


async def _run_all(names: Sequence[str], url: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        _report.progress(f"benchmark {name}")
        results[name] = await BENCHMARKS[name].run(url, args)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = list(BENCHMARKS) if args.command == "all" else [args.command]
    environment = _report.environment()
    with _database.server(args.database_url or os.environ.get("SLUICE_DATABASE_URL")) as url:
        results = asyncio.run(_run_all(names, url, args))
    for name, result in results.items():
        _report.print_table(BENCHMARKS[name].title(result), BENCHMARKS[name].rows(result))
    if args.json is not None:
        _report.write_json(args.json, {"benchmarks": results, "environment": environment})
        _report.progress(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
