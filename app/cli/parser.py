"""The `sluice` command's arguments: `serve`, `migrate` and `secrets`, and the client
commands of each noun (`app.cli.flows`, `app.cli.secrets`, `app.cli.runs`, `app.cli.admin`)
with the options they share."""

from __future__ import annotations

import argparse
import importlib.metadata

from app.cli import admin, browse, flows, runs, schedules, secrets

ROLES = ("app", "worker", "worker_and_app")
SHELLS = ("bash", "zsh")
DEFAULT_URL = "http://127.0.0.1:8000"
KEYS = {
    # The key a command sends: its environment variable and its option.
    False: ("SLUICE_API_KEY", "--api-key"),
    True: ("SLUICE_ADMIN_API_KEY", "--admin-key"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice", description="Automation flows with PostgreSQL as the only moving part."
    )
    parser.add_argument("--version", action="version", version=f"sluice {_version()}")
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the app, the worker, or both")
    serve.add_argument("--host", help="address to bind (SLUICE_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (SLUICE_PORT; default 8000)")
    serve.add_argument(
        "--role",
        choices=ROLES,
        help="override SLUICE_CONTAINER_TYPE (default worker_and_app)",
    )

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest version")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when the schema is not at the latest version",
    )

    keys = commands.add_parser(
        "secrets", help="the keys secrets are encrypted under (run where the server runs)"
    )
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    key_actions.add_parser(
        "rotate", help="re-encrypt every secret under the newest key of SLUICE_SECRETS_KEY"
    )
    key_actions.add_parser("generate-key", help="print a new key for SLUICE_SECRETS_KEY")

    completion = commands.add_parser(
        "completion",
        help='print the shell completion script (bash: add `eval "$(sluice completion bash)"`'
        " to ~/.bashrc; zsh: see the README)",
    )
    completion.add_argument("shell", choices=SHELLS)

    project_options, admin_options = _client_options(admin=False), _client_options(admin=True)
    flows.add_commands(commands, project_options)
    secrets.add_commands(commands, project_options)
    runs.add_commands(commands, project_options)
    schedules.add_commands(commands, project_options)
    admin.add_commands(commands, project_options, admin_options)
    browse.add_commands(commands, project_options)
    return parser


def _client_options(*, admin: bool) -> argparse.ArgumentParser:
    """The options every client command takes, sending the project key or the admin key."""
    env, flag = KEYS[admin]
    options = argparse.ArgumentParser(add_help=False)
    options.set_defaults(admin=admin)
    options.add_argument(
        "--url", help=f"the Sluice server (default: $SLUICE_URL, else {DEFAULT_URL})"
    )
    options.add_argument(
        flag,
        dest="key",
        metavar="KEY",
        help=f"the {'admin ' if admin else ''}API key (default: ${env})",
    )
    options.add_argument("--json", action="store_true", help="print the server's JSON")
    return options


GLOBAL = {"url": "global_url", "key": "global_key", "admin_key": "global_admin_key"}
"""The client options also taken before the command (`sluice --api-key K runs list`), by
their own names: a subcommand's defaults would otherwise overwrite them."""


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", dest=GLOBAL["url"], help=argparse.SUPPRESS)
    parser.add_argument("--api-key", dest=GLOBAL["key"], metavar="KEY", help=argparse.SUPPRESS)
    parser.add_argument(
        "--admin-key", dest=GLOBAL["admin_key"], metavar="KEY", help=argparse.SUPPRESS
    )
    parser.add_argument("--json", dest="global_json", action="store_true", help=argparse.SUPPRESS)


def merge_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with the client options given before the command filled in where the command
    itself was not given them (what follows the command wins)."""
    if getattr(args, "url", None) is None:
        args.url = getattr(args, GLOBAL["url"], None)
    if getattr(args, "key", None) is None:
        args.key = getattr(args, GLOBAL["admin_key" if getattr(args, "admin", False) else "key"])
    args.json = bool(getattr(args, "json", False) or getattr(args, "global_json", False))
    return args


def _version() -> str:
    try:
        return importlib.metadata.version("sluice")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
