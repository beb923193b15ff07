"""Sandbox tests run real children in each isolating mode; bwrap ones skip where it cannot run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from worker.sandbox import SandboxMode, SandboxPool, bwrap, protocol, uids
from worker.sandbox.launch import Launcher


@pytest.fixture(params=[SandboxMode.BWRAP, SandboxMode.PROCESS], ids=str)
def mode(request: pytest.FixtureRequest) -> SandboxMode:
    mode = SandboxMode(request.param)
    if mode is SandboxMode.BWRAP and (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap is not usable here: {reason}")
    return mode


@pytest.fixture
async def pool(mode: SandboxMode) -> AsyncIterator[SandboxPool]:
    async with SandboxPool(mode, warm=0) as pool:
        yield pool


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any uid may read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sluice-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def free_uids() -> Iterator[range | None]:
    """A block of sandbox uids no pool uses meanwhile (None unless we are root)."""
    if os.geteuid() != 0:
        yield None
        return
    block, lock = uids.claim_block(os.getpid())
    try:
        yield block
    finally:
        os.close(lock)


@pytest.fixture
def launcher(mode: SandboxMode) -> Launcher:
    return Launcher(
        mode,
        dedicated_uids=os.geteuid() == 0,
        max_uses=10,
        max_frame_bytes=protocol.DEFAULT_MAX_FRAME_BYTES,
        tmpfs_bytes=8 << 20,
    )
