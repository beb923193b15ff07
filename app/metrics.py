"""Sluice's Prometheus metrics, on prometheus-client: the definitions, on a registry of this
process's own (not the library's global one), and the scrape.

Invariants kept here:

* The `project` and `flow` labels are bounded: a `FlowLabels` gives its own values to the
  first `limit` distinct pairs it sees and `OTHER` for both to every later pair, so the
  series of a worker process stay bounded however many flows it runs. `OTHER` cannot be a
  real value: project labels are ids and flow names start with a letter or digit.
* Every sandbox outcome is exposed from the start (at 0), so increase() counts the first.
* Figures that live in the database (runs by status, queue depth, the oldest ready job,
  live workers) are read at each scrape and rendered with the process's metrics (`render`);
  so are the process's pools (`app.sampling`): nothing of them is kept here.
* Every label value is resolved once, where the series is first used: a route's template
  when the route table is built, a run's project and flow when its execution begins.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from app import sampling
from app.flows.model import LoadedRun, RunStatus

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The type the library itself serves `generate_latest`'s text under (its
`CONTENT_TYPE_LATEST`, format 1.0.0, goes with an `escaping` parameter for UTF-8 names)."""

# Else every counter and histogram series has a `_created` gauge beside it: twice the
# series for a scrape to store, and none that `/metrics` ever exposed.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry()

Labels = Mapping[str, str]
"""Label values by label name."""

OTHER = "_other"
"""The `project` and `flow` label values of every pair past the bound."""
OTHER_LABELS: Labels = MappingProxyType({"project": OTHER, "flow": OTHER})

LIVE_STATUSES = tuple(status.value for status in RunStatus if not status.final)
"""The values of `sluice_runs`'s `status` label: every one is exposed, at 0 when none."""

SANDBOX_STATUSES = (
    "SUCCEEDED",
    "FAILED",
    "TIMEOUT",
    "MEMORY_LIMIT_EXCEEDED",
    "LOG_SIZE_EXCEEDED",
    "INTERNAL_ERROR",
)
"""The values of `SANDBOX_OUTCOMES`'s `status` label (the sandbox's step statuses)."""

# Waits and steps may last minutes: the usual buckets, then up to 5 minutes.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Runs may pause for hours (approvals): the same, then up to a day.
_RUN_BUCKETS = (*_BUCKETS, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)

CLAIM_LATENCY = Histogram(
    "sluice_claim_latency_seconds",
    "Seconds from a job's run_at to its claim by a worker.",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "sluice_step_duration_seconds",
    "Seconds a step took to run, by step type, final status, project id and flow name.",
    ("type", "status", "project", "flow"),
    buckets=_BUCKETS,
    registry=REGISTRY,
)
SANDBOX_OUTCOMES = Counter(
    "sluice_sandbox_outcomes_total",
    "Sandboxed step executions, by outcome status.",
    ("status",),
    registry=REGISTRY,
)
JOBS_CLAIMED = Counter(
    "sluice_jobs_claimed_total", "Jobs claimed by this process's workers.", registry=REGISTRY
)
WEBHOOKS = Counter(
    "sluice_webhooks_total",
    "Webhook requests answered, by mode (async|sync) and HTTP status code.",
    ("mode", "code"),
    registry=REGISTRY,
)
WEBHOOK_DURATION = Histogram(
    "sluice_webhook_duration_seconds",
    "Seconds from a webhook or resume request's arrival to its answer (a sync request's wait "
    "for its reply included), by route template and HTTP status code.",
    ("route", "code"),
    buckets=_BUCKETS,
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "sluice_run_duration_seconds",
    "Seconds from a run's first start to its end (pauses included), by final status, project "
    "id and flow name.",
    ("status", "project", "flow"),
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
TIME_TO_START = Histogram(
    "sluice_run_time_to_start_seconds",
    "Seconds from a run's creation to its first start by a worker, by project id and flow name.",
    ("project", "flow"),
    buckets=_BUCKETS,
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "sluice_runs_finished_total",
    "Runs this process's workers brought to an end, by final status, project id and flow name.",
    ("status", "project", "flow"),
    registry=REGISTRY,
)

for _status in SANDBOX_STATUSES:
    SANDBOX_OUTCOMES.labels(status=_status)
del _status


class FlowLabels:
    """The `project` and `flow` labels of a run's series, for the first `limit` distinct
    pairs; `OTHER` for both past them. One per worker process (used from its event loop)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: set[tuple[str, str]] = set()

    def __call__(self, project: str, flow: str) -> Labels:
        pair = (project, flow)
        if pair not in self._kept and len(self._kept) < self.limit:
            self._kept.add(pair)
        if pair not in self._kept:
            return OTHER_LABELS
        return {"project": project, "flow": flow}


def observe_claims(run_ats: Sequence[datetime], now: datetime) -> None:
    """Jobs due at `run_ats` were claimed at `now`."""
    JOBS_CLAIMED.inc(len(run_ats))
    for run_at in run_ats:
        CLAIM_LATENCY.observe(max(0.0, (now - run_at).total_seconds()))


@dataclasses.dataclass(frozen=True)
class RunTimer:
    """One execution of a run, timed for the run metrics: the first execution observes the
    run's time to start, the one that ends it counts the end and the run's duration."""

    labels: Labels
    started_at: datetime | None = None
    """The run's first start, by the database's clock (None: not begun)."""
    db_now: datetime | None = None
    began: float = 0.0
    """`time.monotonic()` when the database's clock read `db_now`."""

    @classmethod
    def begun(cls, labels: Labels, run: LoadedRun) -> RunTimer:
        if run.first_start and run.created_at is not None and run.started_at is not None:
            waited = (run.started_at - run.created_at).total_seconds()
            TIME_TO_START.labels(**labels).observe(max(0.0, waited))
        return cls(labels, run.started_at, run.db_now, time.monotonic())

    def finished(self, status: str, now: datetime | None = None) -> None:
        """The run ended with `status` at `now` (None: the database's clock, as of now)."""
        RUNS_FINISHED.labels(status=status, **self.labels).inc()
        if self.started_at is None or self.db_now is None:
            return
        at = now or self.db_now + timedelta(seconds=time.monotonic() - self.began)
        seconds = max(0.0, (at - self.started_at).total_seconds())
        RUN_DURATION.labels(status=status, **self.labels).observe(seconds)


def render(
    live_runs: Mapping[str, int],
    queue_depth: Mapping[str, int],
    health: Mapping[str, float] | None = None,
) -> bytes:
    """The exposition of this process's metrics, with the gauges of what the database holds
    now: runs not yet finished by status, jobs by queue state, and `health` (the oldest
    ready job's age and the live workers, `app.gauges`), all processes'."""
    runs = GaugeMetricFamily(
        "sluice_runs", "Runs not yet finished, by status (all processes).", labels=["status"]
    )
    for status in LIVE_STATUSES:
        runs.add_metric([status], live_runs.get(status, 0))
    jobs = GaugeMetricFamily(
        "sluice_queue_jobs",
        "Jobs in the queue: ready to run, scheduled for later, running, dead.",
        labels=["state"],
    )
    for state, count in queue_depth.items():
        jobs.add_metric([state], count)
    read: list[Metric] = [runs, jobs, *sampling.families()]
    health = health or {}
    oldest = GaugeMetricFamily(
        "sluice_queue_oldest_ready_seconds",
        "Age of the oldest job ready to run and not yet claimed (0 when none; all processes).",
    )
    oldest.add_metric([], health.get("oldest_ready_seconds", 0.0))
    workers = GaugeMetricFamily(
        "sluice_workers",
        "Worker processes seen within the lease TTL and not stopped (all hosts).",
    )
    workers.add_metric([], health.get("workers", 0.0))
    return generate_latest(_Scrape([*read, oldest, workers]))


class _Scrape:
    """The process's registry, then the families read for one scrape."""

    def __init__(self, read: Iterable[Metric]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.read
