"""The `sluice` command line.

`serve` and `migrate` run the server (`app.cli_server`). Every other command is a client of
a running server, over HTTP only (`app.client`): flows (`app.cli_flows`), runs
(`app.cli_runs`), workers and administration (`app.cli_admin`).

Exit status: 0 done, 1 the server refused or could not be reached, 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from app import cli_admin, cli_flows, cli_runs
from app.cli_output import Console, UsageError
from app.client import ApiError, BadUrl, Client, ClientError, MissingKey, Unreachable

ROLES = ("app", "worker", "worker_and_app")
DEFAULT_URL = "http://127.0.0.1:8000"
_KEYS = {
    # The key a command sends: its environment variable and its option.
    False: ("SLUICE_API_KEY", "--api-key"),
    True: ("SLUICE_ADMIN_API_KEY", "--admin-key"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice", description="Automation flows with PostgreSQL as the only moving part."
    )
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

    project, admin = _client_options(admin=False), _client_options(admin=True)
    cli_flows.add_commands(commands, project)
    cli_runs.add_commands(commands, project)
    cli_admin.add_commands(commands, project, admin)
    return parser


def _client_options(*, admin: bool) -> argparse.ArgumentParser:
    """The options every client command takes, sending the project key or the admin key."""
    env, flag = _KEYS[admin]
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "migrate"):
        # Imported here: the server's modules (alembic, psycopg, pydantic) take longer to
        # load than a client command takes to run.
        from app import cli_server

        return cli_server.run(args)
    return _client_command(args)


def _client_command(args: argparse.Namespace) -> int:
    console = Console(sys.stdout, sys.stderr, json=args.json)
    env, flag = _KEYS[args.admin]
    key = args.key or os.environ.get(env) or None
    url = args.url or os.environ.get("SLUICE_URL") or DEFAULT_URL
    try:
        with Client(
            url,
            api_key=None if args.admin else key,
            admin_key=key if args.admin else None,
        ) as client:
            code: int = args.handler(args, client, console)
            return code
    except UsageError as exc:
        console.error(str(exc))
        return 2
    except BadUrl as exc:
        console.error(f"invalid server URL: {exc}")
        return 2
    except MissingKey as exc:
        console.error(f"{exc}: set {env} or pass {flag}")
        return 2
    except Unreachable as exc:
        hint = " (is `sluice serve` running?)" if exc.reason == "connection refused" else ""
        console.error(f"{exc}{hint}")
        return 1
    except ApiError as exc:
        hint = f" (check {env} or {flag})" if exc.status == 401 else ""
        console.error(f"{exc.message}{hint}", exc.problems)
        return 1
    except ClientError as exc:
        console.error(str(exc))
        return 1
    except KeyboardInterrupt:
        console.progress.clear()
        return 130


if __name__ == "__main__":
    sys.exit(main())
