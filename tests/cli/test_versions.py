"""`sluice flow versions|diff|rollback` with the real command against the real app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Sluice, write


def replying(text: str) -> dict[str, Any]:
    return {"name": "greet", "steps": [{"id": "reply", "type": "respond", "body": text}]}


def test_versions_diff_and_rollback(project_key: str, sluice: Sluice, tmp_path: Path) -> None:
    for text in ("one", "two", "three"):
        assert sluice("flow", "deploy", write(tmp_path / "greet.yaml", replying(text))).code == 0
    listed = sluice("flow", "versions", "greet")
    assert listed.code == 0, listed.err
    header, *rows = listed.out.splitlines()
    assert header.split() == ["VERSION", "DEPLOYED", "BY", "HASH"]
    prefix = f"sk_{project_key.split('_')[1]}"
    assert [row.split()[0] for row in rows] == ["3", "2", "1"]
    assert "(live)" in rows[0]
    assert all(prefix in row for row in rows)

    diff = sluice("flow", "diff", "greet")
    assert diff.code == 0, diff.err
    assert diff.out.splitlines()[:2] == ["--- greet v2", "+++ greet v3"]
    assert "-  body: two" in diff.out
    assert "+  body: three" in diff.out
    between = sluice("flow", "diff", "greet", "1", "2")
    assert "-  body: one" in between.out
    assert "+  body: two" in between.out
    same = sluice("flow", "diff", "greet", "2", "2")
    assert (same.code, same.out, same.err) == (0, "", "versions 2 and 2 of 'greet' are identical\n")

    rolled = sluice("flow", "rollback", "greet", "1")
    assert (rolled.code, rolled.out) == (0, "greet: new runs start with version 1\n")
    shown = json.loads(sluice("flow", "show", "greet", "--json").out)
    assert (shown["version"], shown["definition"]["steps"][0]["body"]) == (1, "one")
    first = sluice("flow", "diff", "greet")  # the live version is the first: nothing before
    assert first.code == 2
    assert "is the first" in first.err
    assert "identical" in sluice("flow", "diff", "greet", "1").err  # 1 against live: 1
    assert "+  body: three" in sluice("flow", "diff", "greet", "1", "3").out

    missing = sluice("flow", "rollback", "greet", "9")
    assert (missing.code, missing.err) == (1, "sluice: no version 9 of flow 'greet'\n")
    assert sluice("flow", "versions", "nosuch").err == "sluice: no flow 'nosuch'\n"
    with pytest.raises(SystemExit) as exited:
        sluice("flow", "rollback", "greet", "x")
    assert exited.value.code == 2
