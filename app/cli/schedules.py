"""`sluice schedules`: every schedule of the project, with its flow, rule, last and next run."""

from __future__ import annotations

import argparse

from app.cli.client import Client, JsonObject
from app.cli.output import Console, table, timestamp


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    commands.add_parser(
        "schedules", parents=[options], help="the project's schedules: last and next runs"
    ).set_defaults(handler=list_schedules)


def rule(schedule: JsonObject) -> str:
    """``cron 0 9 * * 1-5 (Europe/Paris)`` or ``every 5m``."""
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({schedule['timezone']})"
    return f"every {schedule['every']}"


def upcoming(schedule: JsonObject) -> str:
    return ", ".join(timestamp(t) for t in schedule["next"]) or "- (flow disabled)"


def list_schedules(_args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.list_schedules()
    if console.json:
        console.print_json(answer)
    elif not answer["schedules"]:
        console.note("no schedules")
    else:
        rows = [
            [s["flow"], rule(s), timestamp(s.get("last_run_at")), upcoming(s)]
            for s in answer["schedules"]
        ]
        console.print(table(["FLOW", "SCHEDULE", "LAST RUN", "NEXT"], rows))
    return 0
