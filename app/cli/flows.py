"""`sluice flow …` (deploy and manage flows) and `sluice trigger` (start a run)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import shtab

from app.cli import schedules, versions
from app.cli.client import ApiError, Client, JsonObject, Reply, api_error
from app.cli.output import (
    Console,
    UsageError,
    json_text,
    parse_document,
    read_document,
    table,
    timestamp,
    yaml_text,
)


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    options: argparse.ArgumentParser,
) -> None:
    flow = commands.add_parser(
        "flow", help="deploy, list, show, enable, disable, delete flows; versions, rollback"
    )
    actions = flow.add_subparsers(dest="action", required=True, metavar="ACTION")
    versions.add_actions(actions, options)

    deploy_ = actions.add_parser(
        "deploy", parents=[options], help="deploy flow definitions (JSON or YAML files)"
    )
    files = deploy_.add_argument(
        "files", nargs="+", metavar="FILE", help="a .json, .yaml or .yml file; - reads stdin"
    )
    files.complete = shtab.FILE  # type: ignore[attr-defined]  # read by `sluice completion`
    deploy_.set_defaults(handler=deploy)

    actions.add_parser("list", parents=[options], help="the project's flows").set_defaults(
        handler=list_flows
    )
    for name, handler, summary in (
        ("show", show, "a flow's latest definition (YAML; JSON with --json)"),
        ("enable", enable, "let a flow's webhook start runs"),
        ("disable", disable, "stop a flow's webhook from starting runs"),
        ("delete", delete, "delete a flow (its name can be reused)"),
    ):
        action = actions.add_parser(name, parents=[options], help=summary)
        action.add_argument("name", metavar="NAME")
        action.set_defaults(handler=handler)
        if handler is show:
            action.add_argument(
                "--full",
                action="store_true",
                help="every field, those left at their default too",
            )

    trigger_ = commands.add_parser(
        "trigger", parents=[options], help="start a run of a flow through its webhook"
    )
    trigger_.add_argument("flow", metavar="FLOW", help="the flow's name")
    trigger_.add_argument(
        "--data",
        metavar="JSON|@FILE",
        help="the request body: JSON, or @FILE (JSON or YAML; @- reads stdin); default {}",
    )
    trigger_.add_argument(
        "--sync", action="store_true", help="wait for the flow's reply and print it"
    )
    trigger_.set_defaults(handler=trigger)


def deploy(args: argparse.Namespace, client: Client, console: Console) -> int:
    # Every file is read first, so a typo in the last one deploys nothing.
    documents = [(source, flow_document(source)) for source in args.files]
    deployed: list[JsonObject] = []
    failed = 0
    for number, (source, document) in enumerate(documents, 1):
        console.progress.show(f"deploying {number}/{len(documents)} {source} …")
        try:
            answer = client.deploy_flow(document["name"], document)
        except ApiError as exc:
            if exc.status == 401:
                raise
            console.error(f"{source}: {exc.message}", exc.problems)
            failed += 1
            continue
        if console.json:
            console.print_json(answer, compact=True)
        for warning in answer.get("warnings") or []:
            console.note(f"{source}: warning: {warning['path']}: {warning['message']}")
        deployed.append(answer)
    console.progress.clear()
    if deployed and not console.json:
        rows = [
            [answer["name"], str(answer["version"]), _change(answer), _url(answer)]
            for answer in deployed
        ]
        console.print(table(["FLOW", "VERSION", "CHANGE", "WEBHOOK"], rows))
    if failed and len(documents) > 1:
        console.error(f"{failed} of {len(documents)} files not deployed")
    return 1 if failed else 0


def _signing_secret(flow: JsonObject) -> str | None:
    """The secret the CLI signs a trigger with: the flow's own `hmac-sha256` secret."""
    trigger = (flow.get("definition") or {}).get("trigger") or {}
    triggers = trigger if isinstance(trigger, list) else [trigger]
    webhook = next((t for t in triggers if t.get("type", "webhook") == "webhook"), None)
    if webhook is None:
        raise UsageError(f"flow {flow['name']!r} has no webhook trigger")
    secret = webhook.get("secret")
    scheme = webhook.get("verify") or ("hmac-sha256" if secret else "none")
    if scheme == "none":
        return None
    if scheme != "hmac-sha256" or "{{" in str(secret):
        raise UsageError(
            f"flow {flow['name']!r} verifies its webhook with {scheme}"
            f"{' and a project secret' if '{{' in str(secret) else ''}: "
            "`sluice trigger` can sign only with a literal hmac-sha256 secret; send the "
            "request as its sender would"
        )
    return str(secret)


def _url(flow: JsonObject) -> str:
    """The flow's stable webhook URL (an older server's: the one by id)."""
    return str(flow.get("stable_webhook_url") or flow["webhook_url"])


def flow_document(source: str) -> JsonObject:
    """The flow definition in `source` (a file, or - for stdin), which must name its flow."""
    document = read_document(source, sys.stdin)
    if not isinstance(document, dict):
        raise UsageError(f"{source}: a flow definition is an object, not {_kind(document)}")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{source}: the flow definition has no name")
    return document


def _change(answer: JsonObject) -> str:
    if not answer["created"]:
        return "unchanged"
    return "new flow" if answer["version"] == 1 else "new version"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def list_flows(_args: argparse.Namespace, client: Client, console: Console) -> int:
    answer = client.list_flows()
    if console.json:
        console.print_json(answer)
    elif not answer["flows"]:
        console.note("no flows")
    else:
        rows = [
            [
                f["name"],
                "yes" if f["enabled"] else "no",
                str(f["version"]),
                timestamp(f.get("created_at")),
                _url(f),
            ]
            for f in answer["flows"]
        ]
        console.print(table(["FLOW", "ENABLED", "VERSION", "CREATED", "WEBHOOK"], rows))
    return 0


def show(args: argparse.Namespace, client: Client, console: Console) -> int:
    flow = client.get_flow(args.name, defaults=args.full)
    if console.json:
        console.print_json(flow)
        return 0
    # Comments, so the output is still a definition `sluice flow deploy` takes back.
    state = "enabled" if flow["enabled"] else "disabled"
    scheduled = "".join(
        f"# schedule {s['index']}: {schedules.rule(s)}; next: {schedules.upcoming(s)}\n"
        for s in flow.get("schedules", [])
    )
    console.print(
        f"# {flow['name']}: version {flow['version']}, {state},"
        f" deployed {timestamp(flow.get('version_created_at'))}\n"
        f"# webhook: {_url(flow)} (also {flow['webhook_url']})\n"
        + scheduled
        + yaml_text(readable_order(flow["definition"]))
    )
    return 0


def readable_order(value: Any) -> Any:
    """`value` with `name`, `id` and `type` first in every object (a stored one is unordered)."""
    if isinstance(value, list):
        return [readable_order(item) for item in value]
    if not isinstance(value, dict):
        return value
    first = [key for key in ("name", "id", "type") if key in value]
    rest = [key for key in value if key not in first]
    return {key: readable_order(value[key]) for key in [*first, *rest]}


def enable(args: argparse.Namespace, client: Client, console: Console) -> int:
    return _switch(args, client, console, True)


def disable(args: argparse.Namespace, client: Client, console: Console) -> int:
    return _switch(args, client, console, False)


def _switch(args: argparse.Namespace, client: Client, console: Console, enabled: bool) -> int:
    answer = client.set_flow_enabled(args.name, enabled)
    if console.json:
        console.print_json(answer)
    else:
        console.print(f"{answer['name']}: {'enabled' if answer['enabled'] else 'disabled'}")
    return 0


def delete(args: argparse.Namespace, client: Client, console: Console) -> int:
    client.delete_flow(args.name)
    if not console.json:  # the server answers 204, with no JSON to print
        console.print(f"{args.name}: deleted")
    return 0


def trigger(args: argparse.Namespace, client: Client, console: Console) -> int:
    data = request_data(args.data)
    flow = client.get_flow(args.flow)
    flow_id = flow["id"]
    # A flow whose webhook has a secret takes only signed requests; its owner may sign.
    secret = _signing_secret(flow)
    if not args.sync:
        started = client.trigger(flow_id, data, secret=secret)
        if console.json:
            console.print_json(started)
        else:
            console.print(started["run_id"])
        return 0
    with console.progress.waiting(f"waiting for {args.flow}'s reply…"):
        reply = client.trigger_sync(flow_id, data, secret=secret)
    return show_reply(reply, console)


def request_data(source: str | None) -> Any:
    """A `--data JSON|@FILE` option's document ({} when not given)."""
    if source is None:
        return {}
    if source.startswith("@"):
        return read_document(source[1:], sys.stdin)
    return parse_document(source, "json", "--data")


def show_reply(reply: Reply, console: Console) -> int:
    """Print a sync webhook's reply body; a reply of 4xx/5xx is also an error (exit 1)."""
    body = reply.json()
    if reply.status == 202 and isinstance(body, dict) and set(body) == {"run_id"}:
        run_id = body["run_id"]
        console.note(
            f"no reply within the server's wait; run {run_id} goes on"
            f" (see: sluice runs show {run_id})"
        )
        console.print(json_text(body) if console.json else run_id)
        return 0
    replied_by = reply.headers.get("x-sluice-run-id")
    if replied_by and console.progress.enabled:
        console.note(f"run {replied_by} replied HTTP {reply.status}")
    failed = reply.status >= 400
    shaped = isinstance(body, dict) and isinstance(body.get("error"), str)
    if console.json or not (failed and shaped):
        if body is not None and console.terminal and not console.json:
            console.print(json_text(body))
        elif reply.content:
            console.print(reply.text.removesuffix("\n"))
    if not failed:
        return 0
    if not shaped:
        console.error(f"the flow replied HTTP {reply.status}")
    elif body.get("run_id") and body.get("status"):
        console.error(f"run {body['run_id']} ended {body['status']}: {body['error']}")
    else:
        error = api_error(reply.status, reply.content)
        console.error(error.message, error.problems)
    return 1
