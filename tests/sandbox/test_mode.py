from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.sandbox import SandboxMode, bwrap, resolve_mode
from worker.sandbox import mode as mode_module


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Forget the once-per-process probe around the test, so it neither sees nor leaves one."""
    bwrap.problem.cache_clear()
    mode_module._default.cache_clear()
    yield
    bwrap.problem.cache_clear()
    mode_module._default.cache_clear()


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_probe: None) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))


def test_named_modes_are_taken_as_asked() -> None:
    assert resolve_mode("process") is SandboxMode.PROCESS
    assert resolve_mode("none") is SandboxMode.NONE
    with pytest.raises(ValueError, match="'chroot' is not a valid SandboxMode"):
        resolve_mode("chroot")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_the_default_is_bwrap_when_a_real_sandbox_starts(
    fresh_probe: None, caplog: pytest.LogCaptureFixture
) -> None:
    if (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap is installed but cannot run here: {reason}")
    assert resolve_mode(None) is SandboxMode.BWRAP
    assert resolve_mode("bwrap") is SandboxMode.BWRAP
    assert not caplog.records


@pytest.mark.usefixtures("no_bwrap")
def test_without_bwrap_the_default_falls_back_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert resolve_mode(None) is SandboxMode.PROCESS
        assert resolve_mode(None) is SandboxMode.PROCESS
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "bwrap is not on PATH" in caplog.records[0].getMessage()


@pytest.mark.usefixtures("no_bwrap")
def test_asking_for_bwrap_where_it_cannot_run_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="cannot be used: bwrap is not on PATH"):
        resolve_mode("bwrap")
