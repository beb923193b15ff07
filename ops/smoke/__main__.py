"""``python -m ops.smoke [--url URL] [--api-key KEY | --admin-key KEY] [--skip-memory]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import httpx

from ops.smoke import checks, memory, server
from ops.smoke.report import Report

CLIENT_TIMEOUT_SECONDS = 60.0
"""Longer than a sync webhook may wait for its reply (SLUICE_SYNC_TIMEOUT_SECONDS, 30 s)."""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.smoke",
        description="Check a running Sluice end to end over HTTP; without --url, start "
        "`sluice serve` on a temporary embedded database for the purpose.",
    )
    parser.add_argument("--url", help="the Sluice to check; it starts nothing itself then")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key", metavar="KEY", help="with --url: a project key (default $SLUICE_API_KEY)"
    )
    keys.add_argument(
        "--admin-key",
        metavar="KEY",
        help="with --url: the admin key, to create a project smoke-<random> "
        "(default $SLUICE_ADMIN_API_KEY)",
    )
    parser.add_argument(
        "--pid", type=int, help="with --url: the server's process id here, to measure its memory"
    )
    parser.add_argument(
        "--skip-memory",
        action="store_true",
        help=f"leave out the memory check ({memory.WEBHOOKS} webhooks)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.url is None and (args.api_key or args.admin_key or args.pid):
        parser().error("--api-key, --admin-key and --pid go with --url")
    if args.url is not None and not (args.api_key or args.admin_key):
        args.api_key = os.environ.get("SLUICE_API_KEY") or None
        if args.api_key is None:
            args.admin_key = os.environ.get("SLUICE_ADMIN_API_KEY") or None
        if not (args.api_key or args.admin_key):
            parser().error(
                "with --url, give --api-key or --admin-key "
                "(or set SLUICE_API_KEY or SLUICE_ADMIN_API_KEY)"
            )
    return asyncio.run(_interruptible(smoke(args, Report())))


async def smoke(args: argparse.Namespace, report: Report) -> int:
    if args.url is not None:
        report.note(f"checking {args.url}")
        await _check(args.url, args.api_key, args.admin_key, args.pid, args.skip_memory, report)
    else:
        database = (
            "the database of SLUICE_DATABASE_URL"
            if os.environ.get("SLUICE_DATABASE_URL")
            else "a temporary embedded database"
        )
        report.note(f"starting {server.sluice_command()} serve on {database}")
        async with server.local_server(report) as local:
            if local is not None:
                await _check(local.url, None, local.admin_key, local.pid, args.skip_memory, report)
    report.summary()
    return 0 if report.passed else 1


async def _check(
    url: str,
    api_key: str | None,
    admin_key: str | None,
    pid: int | None,
    skip_memory: bool,
    report: Report,
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
        target = checks.Target(client, api_key=api_key, admin_key=admin_key)
        if not await checks.run_basic_checks(target, report):
            return
        if skip_memory:
            report.note("memory check skipped (--skip-memory)")
        else:
            await memory.run_memory_check(target, report, pid)


async def _interruptible(work: Coroutine[Any, Any, int]) -> int:
    """`work`, cancelled by SIGTERM as by Ctrl-C, so that a started server is still stopped."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("[smoke] interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
