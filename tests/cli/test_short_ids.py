"""Short run ids with the real command against the real app: a unique prefix is the run, an
ambiguous one is an error that lists the runs it could be."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Sluice, write
from tests.flows.twins import twin_runs
from tests.web.test_flows_api import HELLO


def test_runs_show_and_cancel_take_a_unique_prefix(
    project_key: str, database_url: str, sluice: Sluice, tmp_path: Path
) -> None:
    assert sluice("flow", "deploy", write(tmp_path / "hello.yaml", HELLO)).code == 0
    started = sluice("trigger", "hello")  # no worker here: the run stays queued
    assert started.code == 0, started.err
    run_id = started.out.strip()
    shown = sluice("runs", "show", run_id[:8], "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["id"] == run_id
    canceled = sluice("runs", "cancel", run_id[:6], "--json")
    assert canceled.code == 0, canceled.err
    assert json.loads(canceled.out)["status"] == "CANCELED"
    opened = sluice("open", run_id[:10], "--no-browser")
    assert opened.code == 0, opened.err
    assert opened.out.strip().endswith(f"/console/runs/{run_id}")

    twins = twin_runs(database_url, run_id, "c0ffee")
    ambiguous = sluice("runs", "show", "c0ffee")
    assert ambiguous.code == 1
    first, *listed = ambiguous.err.splitlines()
    assert first == "sluice: run id 'c0ffee' is ambiguous: 2 runs match; give more of it"
    assert sorted(line.split()[0] for line in listed) == twins
    assert all(line.split()[1:3] == ["hello", "CANCELED"] for line in listed)
    too_short = sluice("runs", "show", "c0ffe")
    assert (too_short.code, too_short.err) == (1, "sluice: no run 'c0ffe'\n")
