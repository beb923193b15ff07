"""`sluice workers`, `sluice project list|create|update`, `sluice api-key list|create|revoke`:
the admin key's commands. A project is named by its id or its name wherever one is taken."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, tzinfo

from app.cli.client import Client, JsonObject
from app.cli.output import Console, ago, fields, parse_time, table, timestamp

_STORE_IT = "Store the API key now: it is shown only this once."
_PROJECT = "the project's id or name"
# What a key's prefix is given as: the prefix, sk_<prefix>, or the whole key (its secret
# part is dropped here and never sent).
_PREFIX = re.compile(r"^(?:sk_)?(?P<prefix>[a-z0-9]{10})(?:_.*)?$", re.DOTALL)


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

    project = commands.add_parser("project", help="list, create and change projects (admin key)")
    actions = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[admin_options], help="every project, by id").set_defaults(
        handler=list_projects
    )
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
    update.add_argument("project", metavar="PROJECT", help=_PROJECT)
    update.add_argument(
        "--network",
        action=argparse.BooleanOptionalAction,
        help="whether its code steps may ask for network (network: true)",
    )
    update.add_argument(
        "--concurrency-limit", type=int, metavar="N", help="most jobs of the project at once"
    )
    handler = update.add_mutually_exclusive_group()
    handler.add_argument(
        "--on-failure",
        metavar="FLOW",
        help="the flow a failed run starts when its flow names no on_failure",
    )
    handler.add_argument(
        "--no-on-failure", action="store_true", help="no project-wide failure handler"
    )
    update.set_defaults(handler=update_project)

    api_key = commands.add_parser("api-key", help="list, create and revoke API keys (admin key)")
    actions = api_key.add_subparsers(dest="action", required=True, metavar="ACTION")
    listed = actions.add_parser(
        "list", parents=[admin_options], help="a project's keys (prefixes, never secrets)"
    )
    listed.add_argument("project", metavar="PROJECT", help=_PROJECT)
    listed.set_defaults(handler=list_api_keys)
    create = actions.add_parser(
        "create", parents=[admin_options], help="create another API key for a project"
    )
    create.add_argument("project", metavar="PROJECT", help=_PROJECT)
    create.add_argument("--name", help="what the key is for, to tell keys apart")
    create.set_defaults(handler=create_api_key)
    revoke = actions.add_parser(
        "revoke", parents=[admin_options], help="revoke a key: it is refused from then on"
    )
    revoke.add_argument(
        "prefix", metavar="PREFIX", help="the key's prefix (sk_<prefix>, or the whole key)"
    )
    revoke.set_defaults(handler=revoke_api_key)


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
    changes: JsonObject = {}
    if args.on_failure is not None or args.no_on_failure:
        changes["on_failure_flow"] = args.on_failure
    if args.network is None and args.concurrency_limit is None and not changes:
        console.error(
            "nothing to change: give --network, --no-network, --concurrency-limit or --on-failure"
        )
        return 2
    if args.network is not None:
        changes["allow_network"] = args.network
    if args.concurrency_limit is not None:
        changes["concurrency_limit"] = args.concurrency_limit
    project = client.update_project(args.project, changes)
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
        ("failure handler", project.get("on_failure_flow") or "none"),
    ]


def create_api_key(args: argparse.Namespace, client: Client, console: Console) -> int:
    created = client.create_api_key(args.project, args.name)
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


def list_projects(_args: argparse.Namespace, client: Client, console: Console) -> int:
    found: list[JsonObject] = []
    params: dict[str, str] = {}
    while True:  # every page: projects are few
        page = client.call("GET", "/api/v1/projects", admin=True, params=params)
        found.extend(page["projects"])
        if page.get("next_cursor") is None:
            break
        params = {"cursor": page["next_cursor"]}
    if console.json:
        console.print_json({"projects": found})
        return 0
    rows = [
        [
            str(each["id"]),
            each["name"],
            "none" if each.get("concurrency_limit") is None else str(each["concurrency_limit"]),
            "allowed" if each.get("allow_network", True) else "forbidden",
            timestamp(each.get("created_at")),
        ]
        for each in found
    ]
    console.print(table(["ID", "PROJECT", "LIMIT", "NETWORK", "CREATED"], rows))
    return 0


def list_api_keys(args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.call("GET", "/api/v1/projects/{}/api-keys", args.project, admin=True)
    if console.json:
        console.print_json(answer)
        return 0
    rows = [
        [
            f"sk_{key['prefix']}",
            key.get("name") or "-",
            timestamp(key.get("created_at")),
            timestamp(key.get("last_used_at")) if key.get("last_used_at") else "never",
            timestamp(key.get("revoked_at")) if key.get("revoked_at") else "-",
        ]
        for key in answer["api_keys"]
    ]
    console.print(table(["KEY", "NAME", "CREATED", "LAST USED", "REVOKED"], rows))
    return 0


def revoke_api_key(args: argparse.Namespace, client: Client, console: Console) -> int:
    match = _PREFIX.match(args.prefix.strip())
    if match is None:
        console.error("not a key's prefix: 10 lower-case letters and digits (see api-key list)")
        return 2
    key = client.call("POST", "/api/v1/api-keys/{}/revoke", match["prefix"], admin=True)
    if console.json:
        console.print_json(key)
    else:
        console.print(f"revoked sk_{key['prefix']} (project {key['project_id']})")
    return 0
