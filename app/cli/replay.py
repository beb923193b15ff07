"""`sluice runs retry` and `sluice runs replay`: run a failed run again (on its pinned or the
live version, from a step), start a finished run anew with the same or an edited trigger
body, and retry every run a filter matches (the server's queue does it in batches)."""

from __future__ import annotations

import argparse
import re

from app.cli.client import Client, JsonObject
from app.cli.flows import request_data
from app.cli.output import Console, UsageError

STATUSES = (
    "FAILED",
    "TIMEOUT",
    "CANCELED",
    "MEMORY_LIMIT_EXCEEDED",
    "LOG_SIZE_EXCEEDED",
    "INTERNAL_ERROR",
)
_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def add_commands(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    retry = actions.add_parser(
        "retry",
        parents=[options],
        help="run a failed run again, or every run a filter matches",
        description="With ID, run that failed run again (from its failed step, or --from a "
        "step; on its own version, or --latest). Without, retry every run --flow, --status, "
        "--since and --until match (--dry-run counts them).",
    )
    retry.add_argument("run_id", metavar="ID", nargs="?")
    retry.add_argument("--latest", action="store_true", help="on the flow's live version")
    retry.add_argument("--from", dest="from_step", metavar="STEP", help="re-run from this step")
    retry.add_argument("--flow", metavar="NAME", help="only runs of this flow")
    retry.add_argument(
        "--status", type=str.upper, choices=STATUSES, metavar="STATUS", help="(FAILED)"
    )
    retry.add_argument("--since", metavar="WHEN", help="created since: 1h, 30m, 2d or ISO")
    retry.add_argument("--until", metavar="WHEN", help="created before: 1h, 30m, 2d or ISO")
    retry.add_argument("--dry-run", action="store_true", help="only count the matching runs")
    retry.set_defaults(handler=retry_runs)

    replay = actions.add_parser(
        "replay", parents=[options], help="start a finished run anew (same or edited input)"
    )
    replay.add_argument("run_id", metavar="ID")
    replay.add_argument(
        "--data", metavar="JSON|@FILE", help="the trigger body instead (JSON, or @FILE; @- stdin)"
    )
    replay.add_argument("--latest", action="store_true", help="on the flow's live version")
    replay.set_defaults(handler=replay_run)


def _version(args: argparse.Namespace) -> str:
    return "latest" if args.latest else "pinned"


def when(value: str) -> float | str:
    """`1h`, `30m`, `2d`, `90` (seconds ago) as seconds; anything else as an ISO time."""
    matched = _SPAN.fullmatch(value.strip())
    if matched:
        return float(matched[1]) * _UNIT[matched[2]]
    return value


def retry_runs(args: argparse.Namespace, client: Client, console: Console) -> int:
    filters = (args.flow, args.status, args.since, args.until)
    if args.run_id is not None:
        if any(value is not None for value in filters) or args.dry_run:
            raise UsageError("give a run ID or filters (--flow, --status, --since), not both")
        body: JsonObject = {"version": _version(args)}
        if args.from_step is not None:
            body["from_step"] = args.from_step
        return _print_run(client.retry_run(args.run_id, body), console)
    if args.from_step is not None:
        raise UsageError("--from goes with a run ID")
    if all(value is None for value in filters):
        raise UsageError("give a run ID, or filters: --flow, --status, --since, --until")
    asked: JsonObject = {"version": _version(args), "dry_run": args.dry_run}
    asked.update({"flow": args.flow, "status": args.status or "FAILED"})
    for name in ("since", "until"):
        if getattr(args, name) is not None:
            asked[name] = when(getattr(args, name))
    answer = client.bulk_retry({key: value for key, value in asked.items() if value is not None})
    if console.json:
        console.print_json(answer)
    elif args.dry_run:
        console.print(f"{answer['count']} runs match")
    else:
        console.print(f"retrying {answer['count']} runs (batch {answer['batch_id']})")
    return 0


def replay_run(args: argparse.Namespace, client: Client, console: Console) -> int:
    body: JsonObject = {"version": _version(args)}
    if args.data is not None:
        body["data"] = request_data(args.data)
    return _print_run(client.replay_run(args.run_id, body), console)


def _print_run(run: JsonObject, console: Console) -> int:
    if console.json:
        console.print_json(run)
    else:
        replayed = f"  replays {run['replay_of']}" if run.get("replay_of") else ""
        console.print(f"{run['id']}  {run['status']}  {run['flow']} v{run['version']}{replayed}")
    return 0
