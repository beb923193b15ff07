"""Sluice's metric definitions, the project/flow label bound and the scrape, read back with
prometheus_client's parser.

The metrics live on the process's registry, which other tests update too: every check here
looks at series of its own labels, or at differences.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.flows.model import LoadedRun, RunStatus
from app.metrics import OTHER, FlowLabels
from worker.sandbox.step import StepStatus

BUCKETS = [
    *("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"),
    *("30.0", "60.0", "120.0", "300.0", "+Inf"),
]
"""The `le` bounds of both histograms: the usual ones, then up to 5 minutes."""
DEPTH = {"ready": 3, "scheduled": 1, "running": 2, "dead": 0}


def scrape(live: dict[str, int] | None = None) -> dict[str, Metric]:
    """Families by name; the parser's lenience is closed off by refusing untyped families.

    (A sample line it cannot place in the family before it becomes an untyped family of its
    own, and a family seen twice would shadow the first.)
    """
    text = metrics.render(live or {}, DEPTH).decode()
    families = list(text_string_to_metric_families(text))
    assert [f.name for f in families if f.type == "untyped"] == [], text
    by_name = {f.name: f for f in families}
    assert len(by_name) == len(families), text
    return by_name


def labelled(family: Metric, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of `name` samples carrying `labels`, by their full label set."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    }


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_scrape_exposes_every_metric_with_its_type_and_no_created_series() -> None:
    families = scrape()

    assert {name: f.type for name, f in families.items()} == {
        "sluice_claim_latency_seconds": "histogram",
        "sluice_step_duration_seconds": "histogram",
        "sluice_sandbox_outcomes": "counter",  # the parser drops a counter's _total suffix
        "sluice_jobs_claimed": "counter",
        "sluice_webhooks": "counter",
        "sluice_runs_finished": "counter",
        "sluice_webhook_duration_seconds": "histogram",
        "sluice_run_duration_seconds": "histogram",
        "sluice_run_time_to_start_seconds": "histogram",
        "sluice_runs": "gauge",
        "sluice_queue_jobs": "gauge",
        "sluice_db_pool_size": "gauge",
        "sluice_db_pool_available": "gauge",
        "sluice_db_pool_waiting": "gauge",
        "sluice_db_pool_max": "gauge",
        "sluice_sandbox_children": "gauge",
        "sluice_queue_oldest_ready_seconds": "gauge",
        "sluice_workers": "gauge",
    }
    assert metrics.CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_the_database_gauges_expose_every_live_status_and_each_queue_state() -> None:
    families = scrape({"RUNNING": 4, "PAUSED": 1})

    assert labelled(families["sluice_runs"], "sluice_runs") == {
        (("status", "QUEUED"),): 0.0,
        (("status", "RUNNING"),): 4.0,
        (("status", "PAUSED"),): 1.0,
    }
    assert set(metrics.LIVE_STATUSES) == {s.value for s in RunStatus if not s.final}
    assert labelled(families["sluice_queue_jobs"], "sluice_queue_jobs") == {
        (("state", state),): float(count) for state, count in DEPTH.items()
    }


def test_every_sandbox_status_is_exposed_from_the_start() -> None:
    assert set(metrics.SANDBOX_STATUSES) == {status.value for status in StepStatus}
    family = scrape()["sluice_sandbox_outcomes"]
    assert {s.labels["status"] for s in family.samples} == set(metrics.SANDBOX_STATUSES)


def test_series_carry_their_label_sets_and_the_histograms_keep_their_buckets() -> None:
    flow = {"project": "7", "flow": "unit-labels"}
    metrics.STEP_DURATION.labels(type="code", status="SUCCEEDED", **flow).observe(0.2)
    metrics.RUNS_FINISHED.labels(status="SUCCEEDED", **flow).inc()
    metrics.WEBHOOKS.labels(mode="sync", code="299").inc()

    families = scrape()

    steps = families["sluice_step_duration_seconds"]
    buckets = labelled(steps, "sluice_step_duration_seconds_bucket", **flow)
    assert {frozenset(dict(key)) for key in buckets} == {
        frozenset({"type", "status", "project", "flow", "le"})
    }
    assert [dict(key)["le"] for key in buckets] == BUCKETS
    assert labelled(steps, "sluice_step_duration_seconds_count", **flow) == {
        (("flow", "unit-labels"), ("project", "7"), ("status", "SUCCEEDED"), ("type", "code")): 1.0
    }
    assert labelled(families["sluice_runs_finished"], "sluice_runs_finished_total", **flow) == {
        (("flow", "unit-labels"), ("project", "7"), ("status", "SUCCEEDED")): 1.0
    }
    assert labelled(families["sluice_webhooks"], "sluice_webhooks_total", code="299") == {
        (("code", "299"), ("mode", "sync")): 1.0
    }
    latency = families["sluice_claim_latency_seconds"]
    assert [s.labels["le"] for s in latency.samples if s.name.endswith("_bucket")] == BUCKETS


def test_claims_are_counted_with_their_latency_and_an_early_claim_waited_zero() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    claimed = value("sluice_jobs_claimed_total")
    counted = value("sluice_claim_latency_seconds_count")
    waited = value("sluice_claim_latency_seconds_sum")
    at_once = value("sluice_claim_latency_seconds_bucket", le="0.005")

    metrics.observe_claims([now - timedelta(seconds=45), now + timedelta(seconds=3)], now)

    assert value("sluice_jobs_claimed_total") == claimed + 2
    assert value("sluice_claim_latency_seconds_count") == counted + 2
    assert value("sluice_claim_latency_seconds_sum") == waited + 45
    assert value("sluice_claim_latency_seconds_bucket", le="0.005") == at_once + 1


def test_the_first_pairs_keep_their_labels_and_later_ones_are_other() -> None:
    labels = FlowLabels(limit=2)

    pairs = [("1", "a"), ("1", "b"), ("1", "c"), ("2", "a"), ("1", "a"), ("1", "b"), ("1", "c")]
    seen = [labels(project, flow) for project, flow in pairs]

    other = {"project": OTHER, "flow": OTHER}
    assert seen == [
        {"project": "1", "flow": "a"},
        {"project": "1", "flow": "b"},
        other,
        other,
        {"project": "1", "flow": "a"},
        {"project": "1", "flow": "b"},
        other,
    ]
    assert FlowLabels(limit=0)("1", "a") == other


def test_the_bound_caps_the_series_a_counter_grows() -> None:
    labels = FlowLabels(limit=3)
    for n in range(50):
        metrics.RUNS_FINISHED.labels(status="unit-bound", **labels("9", f"flow-{n}")).inc()

    family = scrape()["sluice_runs_finished"]
    assert labelled(family, "sluice_runs_finished_total", status="unit-bound") == {
        (("flow", "flow-0"), ("project", "9"), ("status", "unit-bound")): 1.0,
        (("flow", "flow-1"), ("project", "9"), ("status", "unit-bound")): 1.0,
        (("flow", "flow-2"), ("project", "9"), ("status", "unit-bound")): 1.0,
        (("flow", OTHER), ("project", OTHER), ("status", "unit-bound")): 47.0,
    }


def test_a_run_timer_observes_the_first_start_and_the_end() -> None:
    labels = {"project": "8", "flow": "unit-timer"}
    created = datetime(2030, 1, 1, tzinfo=UTC)
    run = loaded(created, started=created + timedelta(seconds=4), first_start=True)

    timer = metrics.RunTimer.begun(labels, run)
    timer.finished("FAILED", now=created + timedelta(seconds=10))
    again = metrics.RunTimer.begun(labels, dataclasses.replace(run, first_start=False))
    again.finished("SUCCEEDED")

    assert value("sluice_run_time_to_start_seconds_count", **labels) == 1
    assert value("sluice_run_time_to_start_seconds_sum", **labels) == 4
    failed = {"status": "FAILED", **labels}
    assert value("sluice_run_duration_seconds_sum", **failed) == 6
    assert value("sluice_runs_finished_total", **failed) == 1
    # A later execution counts from the first start (by the database's clock at its begin).
    succeeded = {"status": "SUCCEEDED", **labels}
    assert value("sluice_run_duration_seconds_count", **succeeded) == 1
    assert 0 <= value("sluice_run_duration_seconds_sum", **succeeded) - 1 < 1


def test_the_database_health_gauges_are_rendered_and_zero_without_a_reading() -> None:
    families = scrape()
    assert labelled(families["sluice_workers"], "sluice_workers") == {(): 0.0}

    text = metrics.render({}, DEPTH, {"oldest_ready_seconds": 12.5, "workers": 3}).decode()
    by_name = {f.name: f for f in text_string_to_metric_families(text)}

    assert labelled(
        by_name["sluice_queue_oldest_ready_seconds"], "sluice_queue_oldest_ready_seconds"
    ) == {(): 12.5}
    assert labelled(by_name["sluice_workers"], "sluice_workers") == {(): 3.0}


def loaded(created: datetime, *, started: datetime, first_start: bool) -> LoadedRun:
    return LoadedRun(
        id=uuid4(),
        project_id=8,
        flow_id=uuid4(),
        flow_name="unit-timer",
        flow_version_id=1,
        version=1,
        trigger={},
        resume_secret=b"",
        parent_run_id=None,
        deadline_at=None,
        depth=0,
        db_now=started + timedelta(seconds=1),
        steps={},
        waitpoints={},
        created_at=created,
        started_at=started,
        first_start=first_start,
    )
