"""`sluice secret …` and `sluice var …`: the project's secrets (write-only) and vars.

A secret's value is read from stdin (a prompt that does not echo, on a terminal) or from a
file, never from an argument: arguments land in shell history and in `ps`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from app.cli.client import Client, JsonObject
from app.cli.output import Console, UsageError, table, timestamp


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    secret = commands.add_parser("secret", help="set, list, delete the project's secrets")
    actions = secret.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser(
        "set", parents=[options], help="set a secret (value from stdin, or --from-file)"
    )
    set_.add_argument("name", metavar="NAME")
    set_.add_argument("--from-file", metavar="FILE", help="read the value from FILE")
    set_.set_defaults(handler=set_secret)
    actions.add_parser(
        "list", parents=[options], help="the secrets' names, times and users (never values)"
    ).set_defaults(handler=list_secrets)
    delete = actions.add_parser("delete", parents=[options], help="delete a secret")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(handler=delete_named, kind="secrets")

    var = commands.add_parser("var", help="set, get, list, delete the project's vars")
    actions = var.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser("set", parents=[options], help="set a var")
    set_.add_argument("name", metavar="NAME")
    set_.add_argument("value", metavar="VALUE")
    set_.set_defaults(handler=set_var)
    get = actions.add_parser("get", parents=[options], help="print a var's value")
    get.add_argument("name", metavar="NAME")
    get.set_defaults(handler=get_var)
    actions.add_parser("list", parents=[options], help="the vars and their values").set_defaults(
        handler=list_vars
    )
    delete = actions.add_parser("delete", parents=[options], help="delete a var")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(handler=delete_named, kind="vars")


def read_secret(from_file: str | None, name: str) -> str:
    """The value to store: the file's text, or stdin's (a prompt on a terminal), without the
    one trailing newline an editor or `echo` adds."""
    if from_file is not None:
        try:
            text = Path(from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {from_file}: {exc}") from None
    elif sys.stdin.isatty():
        text = getpass.getpass(f"value of {name}: ")
    else:
        text = sys.stdin.read()
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError("the value is empty")
    return value


def set_secret(args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.put_named("secrets", args.name, read_secret(args.from_file, args.name))
    if console.json:
        console.print_json(answer)
    else:
        console.note(f"secret {answer['name']} set; use it as {{{{ secrets.{answer['name']} }}}}")
    return 0


def list_secrets(_args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.list_named("secrets")
    rows = [
        (s["name"], timestamp(s["updated_at"]), ", ".join(s["used_by"]) or "-")
        for s in answer["secrets"]
    ]
    return _listing(console, answer, "secrets", ("NAME", "UPDATED", "USED BY"), rows)


def set_var(args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.put_named("vars", args.name, args.value)
    if console.json:
        console.print_json(answer)
    else:
        console.note(f"var {answer['name']} set")
    return 0


def get_var(args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.get_var(args.name)
    if console.json:
        console.print_json(answer)
    else:
        console.print(answer["value"])
    return 0


def list_vars(_args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.list_named("vars")
    rows = [(v["name"], v["value"], timestamp(v["updated_at"])) for v in answer["vars"]]
    return _listing(console, answer, "vars", ("NAME", "VALUE", "UPDATED"), rows)


def _listing(
    console: Console,
    answer: JsonObject,
    kind: str,
    headers: tuple[str, ...],
    rows: list[tuple[str, str, str]],
) -> int:
    if console.json:
        console.print_json(answer)
    elif not rows:
        console.note(f"no {kind}")
    else:
        console.print(table(headers, rows))
    return 0


def delete_named(args: argparse.Namespace, client: Client, console: Console) -> int:
    client.delete_named(args.kind, args.name)
    if console.json:
        console.print_json({"deleted": args.name})
    else:
        console.note(f"{args.kind.removesuffix('s')} {args.name} deleted")
    return 0
