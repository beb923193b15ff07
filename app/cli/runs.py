"""`sluice runs …`: list, show, tail, cancel, retry and resume runs."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any

from app.cli import replay, waits
from app.cli.client import ApiError, Client, JsonObject, Unreachable
from app.cli.output import (
    Console,
    UsageError,
    cell,
    duration,
    error_summary,
    fields,
    json_text,
    table,
    timestamp,
    truncate,
)

STATUSES = (
    "QUEUED",
    "RUNNING",
    "PAUSED",
    "SUCCEEDED",
    "FAILED",
    "TIMEOUT",
    "CANCELED",
    "MEMORY_LIMIT_EXCEEDED",
    "LOG_SIZE_EXCEEDED",
    "INTERNAL_ERROR",
)
FINISHED = frozenset(STATUSES[3:])
RUN_HEADERS = ("RUN", "FLOW", "VERSION", "STATUS", "CREATED", "DURATION", "ERROR")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    runs = commands.add_parser("runs", help="list, show, tail, cancel, retry and resume runs")
    actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")

    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--flow", metavar="NAME", help="only runs of this flow")
    filters.add_argument(
        "--status",
        type=str.upper,
        choices=STATUSES,
        metavar="STATUS",
        help="only runs in this status (" + ", ".join(STATUSES) + ")",
    )

    list_ = actions.add_parser("list", parents=[options, filters], help="runs, newest first")
    list_.add_argument("--limit", type=int, metavar="N", help="at most N runs (1-200; 50)")
    list_.add_argument("--cursor", help="the page after the one that gave this cursor")
    list_.set_defaults(handler=list_runs)

    for name, handler, summary in (
        ("show", show, "one run: its steps, output, errors and logs"),
        ("cancel", cancel, "cancel a run that has not finished"),
    ):
        action = actions.add_parser(name, parents=[options], help=summary)
        action.add_argument("run_id", metavar="ID")
        action.set_defaults(handler=handler)

    waits.add_resume(actions, options)
    replay.add_commands(actions, options)

    tail_ = actions.add_parser(
        "tail", parents=[options, filters], help="follow new runs and their status changes"
    )
    tail_.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="poll period (1)"
    )
    tail_.set_defaults(handler=tail)


def list_runs(args: argparse.Namespace, client: Client, console: Console) -> int:
    page = client.list_runs(
        flow=args.flow, status=args.status, limit=args.limit, cursor=args.cursor
    )
    if not page["runs"] and args.flow is not None and not args.cursor:
        _require_flow(client, args.flow)
    if console.json:
        console.print_json(page)
        return 0
    if page["runs"]:
        console.print(runs_table(page["runs"]))
    else:
        console.note("no runs")
    if page.get("next_cursor"):
        console.note(f"more: add --cursor {page['next_cursor']}")
    return 0


def _require_flow(client: Client, name: str) -> None:
    """No runs of flow `name`: say so when the flow itself does not exist, rather than
    `no runs` (a typo in --flow would otherwise look like an idle flow)."""
    try:
        client.get_flow(name)
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(404, f"no flow {name!r} in this project", []) from None
        raise


def runs_table(runs: Iterable[JsonObject], tz: tzinfo | None = None) -> str:
    return table(RUN_HEADERS, [_run_row(run, tz) for run in runs])


def _run_row(run: JsonObject, tz: tzinfo | None) -> list[str]:
    return [
        run["id"],
        run["flow"],
        str(run["version"]),
        run["status"],
        timestamp(run.get("created_at"), tz),
        duration(run.get("duration_seconds")),
        cell(error_summary(run.get("error"))),
    ]


def show(args: argparse.Namespace, client: Client, console: Console) -> int:
    run = client.get_run(args.run_id)
    if console.json:
        console.print_json(run)
    else:
        console.print(run_view(run, terminal=console.terminal))
    return 0


def run_view(run: JsonObject, *, terminal: bool, tz: tzinfo | None = None) -> str:
    """A run for people: its summary, steps (with output, error and logs), output, children.

    In a terminal, long values are cut (`--json` shows them whole).
    """

    def shown(text: str) -> str:
        return truncate(text) if terminal else text

    finished = timestamp(run.get("finished_at"), tz)
    if run.get("duration_seconds") is not None:
        finished += f" ({duration(run['duration_seconds'])})"
    summary = [
        ("run", run["id"]),
        ("flow", f"{run['flow']} (version {run['version']})"),
        ("status", run["status"]),
        ("created", timestamp(run.get("created_at"), tz)),
        ("started", timestamp(run.get("started_at"), tz)),
        ("finished", finished),
    ]
    if run.get("parent_run_id"):
        summary.append(("parent", run["parent_run_id"]))
    if run.get("replay_of"):
        summary.append(("replay of", run["replay_of"]))
    if run.get("active_seconds") is not None:
        spans = [duration(a.get("duration_seconds")) for a in run.get("attempts") or []]
        attempts = f" in {len(spans)} attempts: {', '.join(spans)}" if len(spans) > 1 else ""
        summary.append(("active", duration(run["active_seconds"]) + attempts))
    if run.get("error"):
        summary.append(("error", run["error"]))
    trigger = run.get("trigger") or {}
    if trigger.get("body") is not None:
        summary.append(("trigger", shown(_json(trigger["body"]))))
    response = run.get("response")
    if response:
        body = response.get("body")
        reply = str(response.get("status", ""))
        summary.append(("response", reply if body is None else f"{reply} {shown(_json(body))}"))
    sections = [fields(summary)]
    if run.get("waits"):
        sections.append(waits.waits_view(run["waits"], tz))
    if run.get("steps"):
        sections.append(_steps_view(run["steps"], shown))
    if run.get("output") is not None:
        sections.append("output\n" + _indent(shown(_json(run["output"]))))
    if run.get("children"):
        sections.append("children\n" + _indent(runs_table(run["children"], tz)))
    return "\n\n".join(sections)


def _steps_view(steps: list[JsonObject], shown: Callable[[str], str]) -> str:
    rows = [
        [
            step["key"],
            step.get("type") or "-",
            step["status"],
            duration(step.get("duration_seconds")),
            str(step.get("attempts", "-")),
        ]
        for step in steps
    ]
    header, *lines = table(["STEP", "TYPE", "STATUS", "DURATION", "ATTEMPTS"], rows).split("\n")
    out = [header]
    for line, step in zip(lines, steps, strict=True):
        out.append(line)
        details = []
        if step.get("output") is not None:
            details.append(("output", shown(_json(step["output"]))))
        if step.get("error"):
            details.append(("error", str(step["error"]).rstrip("\n")))
        for log in ("stdout", "stderr"):
            if step.get(log):
                details.append((log, shown(str(step[log]).rstrip("\n"))))
        if details:
            out.append(_indent(fields(details)))
    return "steps\n" + _indent("\n".join(out))


def _json(value: Any) -> str:
    compact = json_text(value, compact=True)
    return compact if len(compact) <= 80 else json_text(value)


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.split("\n"))


def cancel(args: argparse.Namespace, client: Client, console: Console) -> int:
    return _print_run(client.cancel_run(args.run_id), console)


def _print_run(run: JsonObject, console: Console) -> int:
    if console.json:
        console.print_json(run)
    else:
        console.print(run_line(run))
    return 0


def run_line(run: JsonObject, tz: tzinfo | None = None) -> str:
    """One line per run event: when, which run, its status, flow and version, outcome."""
    when = run.get("finished_at") or run.get("started_at") or run.get("created_at")
    line = (
        f"{timestamp(when, tz)}  {run['id']}  {run['status']:<9}  {run['flow']} v{run['version']}"
    )
    if run["status"] in FINISHED:
        line += f"  {duration(run.get('duration_seconds'))}"
    if run.get("error"):
        line += f"  {cell(error_summary(run['error']), 100)}"
    return line


def tail(args: argparse.Namespace, client: Client, console: Console) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    return follow(client, console, flow=args.flow, status=args.status, interval=args.interval)


def follow(
    client: Client,
    console: Console,
    *,
    flow: str | None = None,
    status: str | None = None,
    interval: float = 1.0,
    wait: Callable[[float], None] = time.sleep,
) -> int:
    """Print new runs and status changes of the runs printed, until Ctrl-C (exit 0)."""
    watch = RunWatch(client, flow=flow, status=status)
    lost = False
    try:
        while True:
            try:
                events = watch.poll()
            except Unreachable as exc:
                if watch.polls == 0:
                    raise
                if not lost:
                    console.error(f"{exc}; trying again every {interval:g}s")
                lost = True
            else:
                if lost:
                    console.note(f"sluice: reached {client.url} again")
                lost = False
                for run in events:
                    console.print(json_text(run, compact=True) if console.json else run_line(run))
            console.progress.show("following runs… (Ctrl-C stops)")
            wait(interval)
    except KeyboardInterrupt:
        console.progress.clear()
        return 0


class RunWatch:
    """What `runs tail` has seen and printed, and what changed since."""

    PAGE = 100
    MAX_PAGES = 10
    BACKLOG = 10

    def __init__(self, client: Client, *, flow: str | None, status: str | None) -> None:
        self._client = client
        self._filters = {"flow": flow, "status": status}
        self._seen: set[str] = set()
        self._shown: dict[str, str] = {}  # run id → the status last printed
        self.polls = 0

    def poll(self) -> list[JsonObject]:
        """Runs not seen before and printed runs whose status changed, oldest first.

        The first poll prints only the newest `BACKLOG` runs, as `tail` does.
        """
        listed = {run["id"]: run for run in self._fetch()}
        for run_id, status in list(self._shown.items()):
            # A printed run that left the list (it is older than a page, or left the status
            # filtered on) is still followed until it finishes.
            if run_id not in listed and status not in FINISHED:
                try:
                    listed[run_id] = self._client.get_run(run_id)
                except ApiError as exc:
                    if exc.status != 404:
                        raise
        newest = sorted(listed.values(), key=lambda run: str(run["created_at"]))
        fresh = [run["id"] for run in newest if run["id"] not in self._seen]
        if self.polls == 0:
            fresh = fresh[-self.BACKLOG :]
        # Fresh runs join as printed with no status yet, so each of them is an event.
        printed = {**self._shown, **dict.fromkeys(fresh, "")}
        events = [run for run in newest if printed.get(run["id"], run["status"]) != run["status"]]
        self._shown = {run_id: listed[run_id]["status"] for run_id in printed if run_id in listed}
        self._seen = set(listed)
        self.polls += 1
        return [_summary(run) for run in events]

    def _fetch(self) -> list[JsonObject]:
        page = self._client.list_runs(**self._filters, limit=self.PAGE)
        runs: list[JsonObject] = page["runs"]
        pages = 1
        # A burst that filled a whole page since the last poll: read on until a run seen.
        while (
            self.polls
            and page.get("next_cursor")
            and runs[-1]["id"] not in self._seen
            and pages < self.MAX_PAGES
        ):
            page = self._client.list_runs(
                **self._filters, limit=self.PAGE, cursor=page["next_cursor"]
            )
            runs += page["runs"]
            pages += 1
        return runs


_SUMMARY = (
    "id",
    "flow",
    "flow_id",
    "version",
    "status",
    "parent_run_id",
    "created_at",
    "started_at",
    "finished_at",
    "duration_seconds",
    "error",
)


def _summary(run: JsonObject) -> JsonObject:
    """The run summary of a run (a run's detail carries more)."""
    return {key: run.get(key) for key in _SUMMARY}
