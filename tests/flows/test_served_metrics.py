"""What `/metrics` serves from a real app and worker after real runs and requests, and the
deployment's dashboard and alert rules checked against it: a metric or label renamed in
the code and not in `ops/deploy/` fails here."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.samples import Sample

from tests.flows.helpers import code, metric_samples, started_run
from tests.flows.stack import Stack
from tests.integration.helpers import eventually

DEPLOY = Path(__file__).resolve().parents[2] / "ops" / "deploy"
FLOW: dict[str, Any] = {
    "name": "observed",
    "steps": [
        code("double", "def run(input, ctx):\n    return 2 * input['trigger']['body']['n']"),
        {"id": "reply", "type": "respond", "body": "{{ steps.double.output }}"},
    ],
}
# A metric name in PromQL, and a selector's label matchers after it.
_SELECTOR = re.compile(r"\b(sluice_[a-z0-9_]+)\b(?:\{([^}]*)\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def value(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


async def observed(stack: Stack) -> list[Sample]:
    """The samples once a run of FLOW has succeeded by webhook, and a request for an
    unknown flow has been answered 404 on the stable route."""
    flow = await stack.deploy(FLOW)
    run_id = await started_run(stack, flow["id"], {"n": 21})
    assert (await stack.wait_for_status(run_id))["status"] == "SUCCEEDED"
    missing = await stack.client.post("/webhooks/tests/no-such-flow", json={})
    assert missing.status_code == 404
    unknown = await stack.client.post(f"/resume/{uuid.uuid4()}/token", json={})
    assert unknown.status_code == 404
    ended = {"status": "SUCCEEDED", "project": str(stack.project_id), "flow": "observed"}

    async def counted() -> bool:
        samples = await metric_samples(stack)
        return value(samples, "sluice_run_duration_seconds_count", **ended) >= 1

    await eventually(counted)
    return await metric_samples(stack)


async def test_runs_webhooks_queue_and_pools_are_served_with_their_labels(stack: Stack) -> None:
    samples = await observed(stack)
    project = str(stack.project_id)
    labels = {"project": project, "flow": "observed"}

    assert value(samples, "sluice_run_duration_seconds_count", status="SUCCEEDED", **labels) == 1
    assert value(samples, "sluice_run_time_to_start_seconds_count", **labels) == 1
    durations = "sluice_webhook_duration_seconds_count"
    assert value(samples, durations, route="/webhooks/{flow_id}", code="202") >= 1
    assert value(samples, durations, route="/webhooks/{project}/{flow}", code="404") >= 1
    assert value(samples, durations, route="/resume/{run_id}/{token}", code="404") >= 1
    # Route templates only: never a raw path with a flow's id or name in it.
    routes = {s.labels["route"] for s in samples if s.name == durations}
    assert all(route.count("{") >= 1 for route in routes), routes
    for pool in ("app", "worker"):
        assert value(samples, "sluice_db_pool_size", pool=pool) >= 1
        assert value(samples, "sluice_db_pool_max", pool=pool) == 8
        assert value(samples, "sluice_db_pool_waiting", pool=pool) == 0
    children = {s.labels["state"]: s.value for s in samples if s.name == "sluice_sandbox_children"}
    assert set(children) == {"spare", "idle", "busy"}
    assert sum(children.values()) >= 1
    assert value(samples, "sluice_workers") >= 1
    assert value(samples, "sluice_queue_oldest_ready_seconds") >= 0


async def test_the_dashboard_and_alert_rules_name_only_metrics_and_labels_served(
    stack: Stack,
) -> None:
    samples = await observed(stack)
    served: dict[str, set[str]] = {}
    for sample in samples:
        served.setdefault(sample.name, set()).update(sample.labels)

    queries = [*dashboard_queries(), *alert_queries()]
    used = {name for query in queries for name, _labels in selectors(query)}

    assert len(queries) >= 20
    assert sorted(used - set(served)) == []
    for query in queries:
        for name, labels in selectors(query):
            assert labels <= served[name], f"{name} has no label {labels - served[name]}: {query}"
    # Every family the code defines is on the dashboard.
    families = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in served}
    on_dashboard = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in used}
    assert sorted(families - on_dashboard) == []


def selectors(query: str) -> list[tuple[str, set[str]]]:
    """Each metric `query` names, with the label names its selector matches on."""
    return [
        (name, set(_MATCHER.findall(matchers or ""))) for name, matchers in _SELECTOR.findall(query)
    ]


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def alert_queries() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yaml").read_text())
    found = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in {"warning", "critical"}
            found.append(rule["expr"])
    return found


@pytest.mark.parametrize("query", ['sum(rate(sluice_x_total{flow=~"$flow", code!="2.."}[5m]))'])
def test_selectors_are_read_with_their_label_names(query: str) -> None:
    assert selectors(query) == [("sluice_x_total", {"flow", "code"})]
