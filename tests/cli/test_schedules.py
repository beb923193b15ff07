"""`sluice schedules` and the schedules `sluice flow show` prints, against the real app."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Sluice, write
from tests.web.test_flows_api import HELLO

TICKING = {
    **HELLO,
    "name": "ticking",
    "trigger": [
        {"type": "webhook"},
        {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
        {"type": "schedule", "every": "5m"},
    ],
}


def test_schedules_and_flow_show_print_the_next_runs(
    project_key: str, sluice: Sluice, tmp_path: Path
) -> None:
    assert sluice("schedules").err == "no schedules\n"
    sluice("flow", "deploy", write(tmp_path / "t.json", TICKING), write(tmp_path / "h.json", HELLO))
    listed = sluice("schedules")
    assert listed.code == 0, listed.err
    header, *rows = listed.out.splitlines()
    assert header.split() == ["FLOW", "SCHEDULE", "LAST", "RUN", "NEXT"]
    assert [row.split()[:3] for row in rows] == [
        ["ticking", "cron", "0"],
        ["ticking", "every", "5m"],
    ]
    assert all(row.count(", ") == 2 for row in rows), "three next runs each"
    answer = json.loads(sluice("schedules", "--json").out)
    assert [len(s["next"]) for s in answer["schedules"]] == [3, 3]

    shown = sluice("flow", "show", "ticking").out.splitlines()
    assert shown[2].startswith("# schedule 1: cron 0 9 * * 1-5 (Europe/Paris); next: ")
    assert shown[3].startswith("# schedule 2: every 5m; next: ")
    sluice("flow", "disable", "ticking")
    assert "- (flow disabled)" in sluice("schedules").out
