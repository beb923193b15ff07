"""``python -m ops.chaos SCENARIO|all [--runs N] [--json FILE]``: faults under load.

Each scenario runs real `sluice serve` processes (one app, two workers) on a fresh database
of a PostgreSQL cluster the tool creates in a temporary directory (pgserver's binaries, or
those in ``$SLUICE_CHAOS_POSTGRES_BIN``), sends webhooks as a careful client would, injects
its fault, and prints what it measured. The exit status is 1 when an invariant did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ops.bench._args import positive
from ops.bench._report import environment, print_table, write_json
from ops.chaos import report
from ops.chaos.faults import FaultOptions
from ops.chaos.postgres import BIN_ENV, temporary_postgres
from ops.chaos.run import Options, run
from ops.chaos.scenarios import SCENARIOS, describe


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m ops.chaos",
        description="Inject one fault per scenario into real Sluice processes under webhook "
        "load, on a PostgreSQL cluster of the tool's own (pgserver's binaries, or those in "
        f"${BIN_ENV}); a table per scenario on stdout, progress on stderr, JSON on request. "
        "Exits 1 when an invariant did not hold.",
    )
    main.add_argument(
        "scenario",
        choices=[*SCENARIOS, "all"],
        metavar="SCENARIO",
        help="; ".join(f"{name}: {describe(s, FaultOptions())}" for name, s in SCENARIOS.items())
        + "; all: each in turn",
    )
    main.add_argument(
        "--runs",
        type=positive,
        help=f"webhooks per scenario (default: {Options.rate:g} per second over the "
        "scenario's length)",
    )
    main.add_argument("--seed", type=int, default=Options.seed, help="for the kills' choices")
    main.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    main.add_argument("--logs", type=Path, metavar="DIR", help="keep the processes' logs here")
    return main


async def _run_all(names: Sequence[str], options: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with temporary_postgres() as postgres:
        for name in names:
            report.progress(f"scenario {name}")
            results[name] = await run(name, postgres, options)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    options = Options(runs=args.runs, seed=args.seed, logs=args.logs)
    run_environment = environment()
    results = asyncio.run(_run_all(names, options))
    for result in results.values():
        print_table(report.title(result), report.rows(result))
    if args.json is not None:
        write_json(args.json, {"scenarios": results, "environment": run_environment})
        report.progress(f"results written to {args.json}")
    return 0 if all(result["held"] for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
