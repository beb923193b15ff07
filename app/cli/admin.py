"""`sluice workers`, `sluice project create|update`, `sluice api-key create`: the admin key's
commands."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, tzinfo

from app.cli.client import Client, JsonObject
from app.cli.output import Console, ago, fields, parse_time, table, timestamp

_STORE_IT = "Store the API key now: it is shown only this once."


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    project_options: argparse.ArgumentParser,
    admin_options: argparse.ArgumentParser,
) -> None:
    commands.add_parser(
        "workers",
        parents=[admin_options],
        help="the worker processes and when they were seen (admin key)",
    ).set_defaults(handler=workers)

    project = commands.add_parser("project", help="create and change projects (admin key)")
    actions = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[admin_options], help="create a project and its first API key"
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--concurrency-limit",
        type=int,
        metavar="N",
        help="most jobs of the project running at once (default: no limit)",
    )
    create.set_defaults(handler=create_project)
    update = actions.add_parser(
        "update", parents=[admin_options], help="change a project's settings"
    )
    update.add_argument("project_id", type=int, metavar="PROJECT_ID")
    update.add_argument(
        "--network",
        action=argparse.BooleanOptionalAction,
        help="whether its code steps may ask for network (network: true)",
    )
    update.add_argument(
        "--concurrency-limit", type=int, metavar="N", help="most jobs of the project at once"
    )
    update.set_defaults(handler=update_project)

    api_key = commands.add_parser("api-key", help="create API keys (admin key)")
    actions = api_key.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[admin_options], help="create another API key for a project"
    )
    create.add_argument("project_id", type=int, metavar="PROJECT_ID")
    create.add_argument("--name", help="what the key is for, to tell keys apart")
    create.set_defaults(handler=create_api_key)


def workers(_args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.list_workers()
    if console.json:
        console.print_json(answer)
    elif not answer["workers"]:
        console.note("no workers")
    else:
        console.print(workers_table(answer["workers"], datetime.now(UTC)))
    return 0


def workers_table(found: list[JsonObject], now: datetime, tz: tzinfo | None = None) -> str:
    def since(value: str | None) -> str:
        return "-" if not value else ago(parse_time(value), now)

    rows = [
        [
            worker["id"],
            worker["host"],
            str(worker["pid"]),
            worker["container_type"],
            str(worker["slots"]),
            worker["version"],
            timestamp(worker.get("started_at"), tz),
            since(worker.get("last_seen")),
            since(worker.get("stopped_at")),
        ]
        for worker in found
    ]
    headers = ["WORKER", "HOST", "PID", "TYPE", "SLOTS", "VERSION", "STARTED", "LAST SEEN"]
    return table([*headers, "STOPPED"], rows)


def create_project(args: argparse.Namespace, client: Client, console: Console) -> int:
    created = client.create_project(args.name, args.concurrency_limit)
    if console.json:
        console.print_json(created)
        return 0
    console.print(fields([*_project_fields(created["project"]), ("api key", created["api_key"])]))
    console.note(_STORE_IT)
    return 0


def update_project(args: argparse.Namespace, client: Client, console: Console) -> int:
    if args.network is None and args.concurrency_limit is None:
        console.error("nothing to change: give --network, --no-network or --concurrency-limit")
        return 2
    project = client.update_project(
        args.project_id, allow_network=args.network, concurrency_limit=args.concurrency_limit
    )
    if console.json:
        console.print_json(project)
    else:
        console.print(fields(_project_fields(project)))
    return 0


def _project_fields(project: JsonObject) -> list[tuple[str, str]]:
    limit = project.get("concurrency_limit")
    return [
        ("project", project["name"]),
        ("id", str(project["id"])),
        ("concurrency limit", "none" if limit is None else str(limit)),
        ("network", "allowed" if project.get("allow_network", True) else "forbidden"),
    ]


def create_api_key(args: argparse.Namespace, client: Client, console: Console) -> int:
    created = client.create_api_key(args.project_id, args.name)
    if console.json:
        console.print_json(created)
        return 0
    console.print(
        fields(
            [
                ("project id", str(created["project_id"])),
                ("name", created.get("name") or "-"),
                ("prefix", created["prefix"]),
                ("api key", created["api_key"]),
            ]
        )
    )
    console.note(_STORE_IT)
    return 0
