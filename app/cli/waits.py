"""What a paused run waits for (`runs show`), and `sluice runs resume`."""

from __future__ import annotations

import argparse
from datetime import tzinfo
from typing import Any

from app.cli.client import Client, JsonObject
from app.cli.flows import request_data
from app.cli.output import Console, UsageError, fields, timestamp


def add_resume(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    resume = actions.add_parser(
        "resume",
        parents=[options],
        help="resume a step waiting for a webhook (an approval) with a decision or data",
        description="With --choice, a decision (checked against the step's choices and form; "
        "--data gives the form's fields); without, --data is the step's output as a resume "
        "URL's body would be.",
    )
    resume.add_argument("run_id", metavar="RUN")
    resume.add_argument("step", metavar="STEP", help="the waiting step's id (or key in a loop)")
    resume.add_argument(
        "--data",
        metavar="JSON|@FILE",
        help="the step's output, or with --choice the form's fields: JSON, or @FILE "
        "(JSON or YAML; @- reads stdin)",
    )
    resume.add_argument("--choice", metavar="CHOICE", help="decide: approve, reject, …")
    resume.add_argument("--comment", metavar="TEXT", help="a comment with the decision")
    resume.set_defaults(handler=resume_step)


def resume_step(args: argparse.Namespace, client: Client, console: Console) -> int:
    body: Any
    if args.choice is None:
        if args.comment is not None:
            raise UsageError("--comment goes with --choice")
        body = request_data(args.data)
    else:
        body = {"choice": args.choice}
        if args.comment is not None:
            body["comment"] = args.comment
        if args.data is not None:
            body["fields"] = request_data(args.data)
            if not isinstance(body["fields"], dict):
                raise UsageError("--data: with --choice, the form's fields as an object")
    resumed = client.resume_step(args.run_id, args.step, body)
    if console.json:
        console.print_json(resumed)
    else:
        console.print(f"{resumed['run_id']}  {resumed['step']}  resumed")
    return 0


def waits_view(waits: list[JsonObject], tz: tzinfo | None = None) -> str:
    """A paused run's waits: each step, its kind and since when, and what resumes it."""
    out = []
    for wait in waits:
        out.append(f"{wait['step']}  {wait['kind']}  since {timestamp(wait.get('since'), tz)}")
        details = []
        if wait.get("title"):
            details.append(("asks", str(wait["title"])))
        if wait["kind"] == "delay" and wait.get("resume_at"):
            details.append(("until", timestamp(wait["resume_at"], tz)))
        if wait["kind"] == "webhook" and wait.get("resume_at"):
            details.append(("expires", timestamp(wait["resume_at"], tz)))
        if wait.get("child_run_id"):
            details.append(("child", str(wait["child_run_id"])))
        if wait.get("resume_url"):
            details.append(("resume", str(wait["resume_url"])))
        if wait.get("choices"):
            details.append(("choices", ", ".join(wait["choices"])))
        if wait.get("form"):
            details.append(("form", ", ".join(_field(field) for field in wait["form"])))
        if details:
            out.append("\n".join("  " + line for line in fields(details).split("\n")))
    return "waiting for\n" + "\n".join("  " + line for line in "\n".join(out).split("\n"))


def _field(field: JsonObject) -> str:
    kind = str(field.get("type", "string"))
    if field.get("options"):
        kind += ": " + "|".join(field["options"])
    if field.get("required"):
        kind += ", required"
    return f"{field['name']} ({kind})"
