"""`sluice flow versions|diff|rollback`: a flow's versions, the change between two of them
(a unified diff of their YAML, by difflib), and a rollback."""

from __future__ import annotations

import argparse
import difflib

from app.cli.client import Client, JsonObject
from app.cli.output import Console, table, timestamp, yaml_text


def add_actions(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    listed = actions.add_parser(
        "versions", parents=[options], help="a flow's versions: when, by which key, which is live"
    )
    listed.add_argument("name", metavar="NAME")
    listed.set_defaults(handler=list_versions)
    diff = actions.add_parser(
        "diff",
        parents=[options],
        help="what changed between two versions (default: the live one and the one before)",
    )
    diff.add_argument("name", metavar="NAME")
    diff.add_argument("old", nargs="?", type=_version, metavar="A", help="default: live - 1")
    diff.add_argument("new", nargs="?", type=_version, metavar="B", help="default: the live one")
    diff.set_defaults(handler=show_diff)
    rollback = actions.add_parser(
        "rollback",
        parents=[options],
        help="make a version the one new runs start with (until the next deploy)",
    )
    rollback.add_argument("name", metavar="NAME")
    rollback.add_argument("version", type=_version, metavar="N")
    rollback.set_defaults(handler=roll_back)


def _version(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"not a version number: {raw!r}")
    return int(raw)


def _all_versions(client: Client, name: str) -> list[JsonObject]:
    found: list[JsonObject] = []
    params: dict[str, str] = {"limit": "200"}
    while True:
        page = client.call("GET", "/api/v1/flows/{}/versions", name, params=params)
        found.extend(page["versions"])
        if page.get("next_cursor") is None:
            return found
        params = {"limit": "200", "cursor": page["next_cursor"]}


def list_versions(args: argparse.Namespace, client: Client, console: Console) -> int:
    found = _all_versions(client, args.name)
    if console.json:
        console.print_json({"versions": found})
        return 0
    rows = [
        [
            str(each["version"]) + (" (live)" if each["live"] else ""),
            timestamp(each["created_at"]),
            f"sk_{each['created_by']}" if each.get("created_by") else "-",
            each["content_hash"][:12],
        ]
        for each in found
    ]
    console.print(table(["VERSION", "DEPLOYED", "BY", "HASH"], rows))
    return 0


def show_diff(args: argparse.Namespace, client: Client, console: Console) -> int:
    new = args.new
    if new is None:
        new = next(each["version"] for each in _all_versions(client, args.name) if each["live"])
    old = args.old if args.old is not None else new - 1
    if old < 1:
        console.error(f"version {new} of {args.name!r} is the first: give A and B to compare")
        return 2
    texts = [
        yaml_text(
            client.call("GET", "/api/v1/flows/{}/versions/{}", args.name, str(n))["definition"]
        )
        for n in (old, new)
    ]
    lines = difflib.unified_diff(
        texts[0].splitlines(keepends=True),
        texts[1].splitlines(keepends=True),
        fromfile=f"{args.name} v{old}",
        tofile=f"{args.name} v{new}",
    )
    text = "".join(lines)
    if console.json:
        console.print_json({"old": old, "new": new, "diff": text})
    elif text:
        console.print(text.rstrip("\n"))
    else:
        console.note(f"versions {old} and {new} of {args.name!r} are identical")
    return 0


def roll_back(args: argparse.Namespace, client: Client, console: Console) -> int:
    flow = client.call(
        "POST", "/api/v1/flows/{}/rollback", args.name, json={"version": args.version}
    )
    if console.json:
        console.print_json(flow)
    else:
        console.print(f"{flow['name']}: new runs start with version {flow['version']}")
    return 0
