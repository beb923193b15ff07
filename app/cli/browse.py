"""`sluice open [RUN]`: the console's URL, printed, and opened in a browser when one is
at hand (a terminal on a desktop; never in CI or when the output is piped)."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
import webbrowser
from collections.abc import Mapping
from urllib.parse import quote

from app.cli.client import Client
from app.cli.output import Console


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    open_ = commands.add_parser(
        "open",
        parents=[options],
        help="print the console's URL (of a run, given one) and open it in a browser",
    )
    open_.add_argument(
        "run_id", nargs="?", metavar="RUN", help="a run to show (its id or a unique prefix)"
    )
    open_.add_argument(
        "--print",
        "--no-browser",
        dest="no_browser",
        action="store_true",
        help="only print the URL",
    )
    open_.set_defaults(handler=open_console)


def console_url(server: str, run_id: str | None = None) -> str:
    base = f"{server.rstrip('/')}/console"
    return base if run_id is None else f"{base}/runs/{quote(run_id, safe='')}"


def _whole_id(raw: str) -> bool:
    try:
        uuid.UUID(raw)
    except ValueError:
        return False
    return True


def can_open(terminal: bool, environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a browser may be opened: stdout is a terminal, not in CI, and (on Linux and
    the BSDs) a graphical session is there to show it."""
    if not terminal or environ.get("CI") or environ.get("SLUICE_NO_BROWSER"):
        return False
    if platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    return True


def open_console(args: argparse.Namespace, client: Client, console: Console) -> int:
    run_id = args.run_id
    if run_id is not None and not _whole_id(run_id):
        run_id = str(client.get_run(run_id)["id"])  # a short id: the server knows the run
    url = console_url(client.url, run_id)
    if console.json:
        console.print_json({"url": url})
    else:
        console.print(url)
    if not args.no_browser and can_open(console.terminal, os.environ):
        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
        if not opened:
            console.note("sluice: no browser to open; the URL is above")
    return 0
