"""What this process's pools hold, sampled at each scrape: its database pools (the app's,
the worker's) and its sandbox pools.

A pool is watched for as long as it is open (`watch_database`, `watch_sandboxes`, context
managers its owner enters next to the pool); nothing is counted on the hot path: a scrape
asks each watched pool for its figures. Pools of the same role are summed (one process may
hold several, as the tests do), and every role and state is exposed, at 0 when none is open.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from psycopg_pool import AsyncConnectionPool

DATABASE_ROLES = ("app", "worker")
"""The values of the database pool gauges' `pool` label."""
DATABASE_FIGURES = {
    "sluice_db_pool_size": ("pool_size", "Connections the pool holds, in use or not."),
    "sluice_db_pool_available": ("pool_available", "Connections idle in the pool."),
    "sluice_db_pool_waiting": ("requests_waiting", "Requests waiting for a connection."),
    "sluice_db_pool_max": ("pool_max", "The most connections the pool may open."),
}
"""Each gauge's name: psycopg_pool's `get_stats()` key and the gauge's help."""
SANDBOX_STATES = ("spare", "idle", "busy")
"""The values of `sluice_sandbox_children`'s `state` label: warm and bound to no project
yet, warm and bound to one, running a step."""

Census = Callable[[], Mapping[str, int]]
"""Children of a sandbox pool by state."""

_ids = itertools.count()
_databases: dict[int, tuple[str, AsyncConnectionPool[Any]]] = {}
_sandboxes: dict[int, Census] = {}


@contextlib.contextmanager
def watch_database(role: str, pool: AsyncConnectionPool[Any]) -> Iterator[None]:
    """Expose `pool`'s use under `pool=role` while the block runs."""
    if role not in DATABASE_ROLES:
        raise ValueError(f"unknown database pool role {role!r}")
    with _watching(_databases, (role, pool)):
        yield


@contextlib.contextmanager
def watch_sandboxes(census: Census) -> Iterator[None]:
    """Expose a sandbox pool's children by state (`census`) while the block runs."""
    with _watching(_sandboxes, census):
        yield


@contextlib.contextmanager
def _watching(table: dict[int, Any], entry: Any) -> Iterator[None]:
    key = next(_ids)
    table[key] = entry
    try:
        yield
    finally:
        del table[key]


def families() -> list[Metric]:
    """The gauges of the pools open now."""
    found: list[Metric] = []
    stats = [(role, pool.get_stats()) for role, pool in list(_databases.values())]
    for name, (key, description) in DATABASE_FIGURES.items():
        family = GaugeMetricFamily(name, f"{description} By role (app, worker).", labels=["pool"])
        for role in DATABASE_ROLES:
            family.add_metric([role], sum(s.get(key, 0) for r, s in stats if r == role))
        found.append(family)
    children = GaugeMetricFamily(
        "sluice_sandbox_children",
        "Sandbox child processes of this worker: spare (warm, no project yet), idle (warm, "
        "bound to a project), busy (running a step).",
        labels=["state"],
    )
    censuses = [census() for census in list(_sandboxes.values())]
    for state in SANDBOX_STATES:
        children.add_metric([state], sum(c.get(state, 0) for c in censuses))
    found.append(children)
    return found
