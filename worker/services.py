"""What the worker lends the job handlers it runs, for its lifetime."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.jobs import Queue
from app.metrics import FlowLabels
from app.settings import Settings
from app.signals import Publisher, Watchers


def _flow_labels() -> FlowLabels:
    return FlowLabels(Settings.model_fields["metrics_max_flows"].default)


@dataclasses.dataclass(frozen=True)
class WorkerServices:
    pool: AsyncConnectionPool[Any]
    queue: Queue
    owner: str
    """The worker's id: the owner its leases are held under."""
    run_events: Publisher
    """NOTIFYs sync callers of a run whose reply or status changed."""
    cancels: Watchers
    """Runs canceled (or timed out) while this worker executes them."""
    settled: Callable[[int], None]
    """Called with a job's id once a handler deleted the job (its outcome is written)."""
    local_replies: Watchers
    """Sync callers waiting in this process (WORKER_AND_APP): replies handed over directly
    after the commit, besides the NOTIFY for other processes."""
    flow_labels: FlowLabels = dataclasses.field(default_factory=_flow_labels)
    """The bounded project and flow labels of the runs this worker executes; the worker's
    bound is `SLUICE_METRICS_MAX_FLOWS` (by default, that setting's default)."""
