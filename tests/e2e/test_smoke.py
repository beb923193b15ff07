"""`python -m ops.smoke` as CI runs it: against its own `sluice serve` it passes every
check and stops the server; against nothing it fails with the reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ops.ports import free_port
from tests.e2e.processes import sluice_env

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "start",
    "health",
    "ready",
    "project",
    "deploy",
    "5 sync webhooks",
    "5 s delay flow",
    "wait-for-webhook flow",
    "stop",
)


def smoke(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.smoke", *args],
        cwd=ROOT,
        env=sluice_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_smoke_test_passes_against_its_own_server_and_stops_it() -> None:
    done = smoke("--skip-memory")

    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for step in STEPS:
        assert f"[smoke] ok: {step}: " in out, out
    assert "[smoke] FAIL" not in out
    assert f"[smoke] passed: {len(STEPS)} of {len(STEPS)} steps" in out
    started = re.search(r"sluice serve \(pid (\d+)\) ready", out)
    assert started is not None, out
    assert not alive(int(started.group(1)))


def test_the_smoke_test_fails_with_the_reason_when_nothing_answers() -> None:
    done = smoke("--url", f"http://127.0.0.1:{free_port()}", "--api-key", "sk_x", timeout=30)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "[smoke] FAIL: health: ConnectError" in done.stdout
    assert "[smoke] FAILED: 1 of 1 steps (health)" in done.stdout


def test_a_url_needs_a_key() -> None:
    done = smoke("--url", "http://127.0.0.1:1", timeout=30)

    assert done.returncode == 2
    assert "with --url, give --api-key or --admin-key" in done.stderr
