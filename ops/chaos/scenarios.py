"""The scenarios: a fault each, how long it is expected to last (to spread the load over
it), and which invariants it relaxes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ops.chaos import faults
from ops.chaos.faults import Fault, FaultOptions


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    inject: Fault
    nominal_seconds: Callable[[FaultOptions], float]
    repeats_effects: bool = False
    """A lost lease may run a step again (only under worker-kill): repeats are reported,
    not held against the invariant."""


SCENARIOS = {
    scenario.name: scenario
    for scenario in [
        Scenario(
            "pg-restart",
            "Postgres restarted (immediate) mid-load",
            faults.pg_restart,
            lambda options: 1.0,
        ),
        Scenario(
            "backend-kill",
            "every Sluice backend killed with pg_terminate_backend, "
            "{backend_kills} times, {backend_kill_interval_seconds:g} s apart",
            faults.backend_kill,
            lambda o: (o.backend_kills - 1) * o.backend_kill_interval_seconds,
        ),
        Scenario(
            "pg-down",
            "Postgres stopped (fast) {pg_down_seconds:g} s, then started",
            faults.pg_down,
            lambda options: options.pg_down_seconds,
        ),
        Scenario(
            "worker-kill",
            "SIGKILL of a worker every {worker_kill_pause_seconds[0]:g} to "
            "{worker_kill_pause_seconds[1]:g} s for {worker_kill_seconds:g} s, each restarted",
            faults.worker_kill,
            lambda options: options.worker_kill_seconds,
            repeats_effects=True,
        ),
        Scenario(
            "worker-term",
            "SIGTERM of each worker in turn under load (graceful drain), each restarted",
            faults.worker_term,
            lambda options: 6.0,
        ),
        Scenario(
            "app-kill",
            "SIGKILL of the app process while webhooks arrive, then restarted",
            faults.app_kill,
            lambda options: 2.0,
        ),
    ]
}


def describe(scenario: Scenario, options: FaultOptions) -> str:
    return scenario.fault.format(**vars(options))
