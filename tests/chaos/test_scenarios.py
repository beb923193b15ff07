"""Every chaos scenario, short (a few hundred webhooks each), through `ops.chaos` itself: real
`sluice serve` processes on a PostgreSQL cluster of this module's own, which the faults
restart, stop and rob of its backends.

Each scenario runs once; its record is then held to the invariants in two tests.
Invariant 10 — a fault is answered 503, never another 5xx; a retry with the same
Idempotency-Key never makes a second run; a step's effect happens once (only a lost lease,
under worker-kill, may repeat it).
Invariant 1 — every accepted run exists and finishes, every effect of a succeeded run
happened — and the survival of every process must hold everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from ops.bench._report import print_table
from ops.chaos import report
from ops.chaos.faults import FaultOptions
from ops.chaos.postgres import Postgres, temporary_postgres
from ops.chaos.run import Options, run
from ops.chaos.scenarios import SCENARIOS

SHORT = Options(
    rate=15.0,
    warmup_seconds=2.0,
    after_seconds=4.0,
    settle_seconds=60.0,
    # Down longer than the client's 5-second timeout, so that retries meet the outage.
    faults=FaultOptions(pg_down_seconds=8.0, worker_kill_seconds=12.0),
)
ISSUE_10 = ("server_errors", "duplicate_keys", "repeated_effects")
OTHERS = ("lost_runs", "unfinished_runs", "missing_effects", "stray_effects", "died_unasked")


def _misses(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The figures among `names` whose invariant did not hold, with what they showed."""
    figures = record["figures"]
    return {name: figures[name]["shown"] for name in names if figures[name]["held"] is False}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def postgres() -> AsyncIterator[Postgres]:
    async with temporary_postgres() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def record(request: pytest.FixtureRequest, postgres: Postgres) -> dict[str, Any]:
    """The scenario's record (it runs once for all the tests that ask for it); its table is
    printed, for the report of a failing test."""
    result = await run(request.param, postgres, SHORT)
    print_table(report.title(result), report.rows(result))
    return result


@pytest.mark.parametrize("record", SCENARIOS, indirect=True)
def test_faults_cost_503s_never_a_duplicate_run_or_effect(record: dict[str, Any]) -> None:
    assert _misses(record, ISSUE_10) == {}, record["figures"]["responses"]["shown"]


@pytest.mark.parametrize("record", SCENARIOS, indirect=True)
def test_nothing_accepted_is_lost_or_stuck_and_every_process_survives(
    record: dict[str, Any],
) -> None:
    assert record["figures"]["accepted"]["value"] > 0
    assert _misses(record, OTHERS) == {}


FAULT_EVIDENCE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "backend-kill": lambda window: all(n > 0 for n in window["backends_killed"]),
    "worker-kill": lambda window: window["kills"] >= 3,
    "worker-term": lambda window: window["exit_codes"] == [0, 0],
}


@pytest.mark.parametrize("record", list(FAULT_EVIDENCE), indirect=True)
def test_the_fault_did_what_it_says(record: dict[str, Any]) -> None:
    """Backends were there to kill, workers were killed, drained workers exited 0."""
    assert FAULT_EVIDENCE[record["scenario"]](record["window"]), record["window"]
