"""The `sluice` command line.

`serve`, `migrate` and `secrets` (rotate, generate-key) run where the server runs
(`app.cli.server`). Every other command is a client of
a running server, over HTTP only (`app.cli.client`): flows (`app.cli.flows`), runs
(`app.cli.runs`), workers and administration (`app.cli.admin`). The arguments are
`app.cli.parser`'s, the text `app.cli.output`'s.

Client options (`--url`, `--api-key`, `--admin-key`, `--json`) may come before the command
as well as after it. Exit status: 0 done, 1 the server refused or could not be reached, 2 a
usage error, 141 the output's reader went away (`sluice runs list | head`: no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from app.cli.client import ApiError, BadUrl, Client, ClientError, MissingKey, Unreachable
from app.cli.output import Console, UsageError, candidate_lines
from app.cli.parser import DEFAULT_URL, KEYS, build_parser, merge_global_options

CLOSED_PIPE = 141
"""The exit status when stdout's reader has gone (128 + SIGPIPE, as a shell reports it)."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "completion":
            # The script is generated from the parser itself (shtab), so it cannot drift.
            import shtab

            sys.stdout.write(shtab.complete(parser, shell=args.shell))
            return 0
        if args.command in ("serve", "migrate", "secrets"):
            # Imported here: the server's modules (alembic, psycopg, pydantic) take longer
            # to load than a client command takes to run.
            from app.cli import server

            return server.run(args)
        return _client_command(merge_global_options(args))
    except BrokenPipeError:
        # Whatever is left unwritten goes nowhere, so that the interpreter's own flush at
        # exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_PIPE


def _client_command(args: argparse.Namespace) -> int:
    console = Console(sys.stdout, sys.stderr, json=args.json)
    env, flag = KEYS[args.admin]
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
        for line in candidate_lines(exc.body):
            console.note(line)
        return 1
    except ClientError as exc:
        console.error(str(exc))
        return 1
    except KeyboardInterrupt:
        console.progress.clear()
        return 130
