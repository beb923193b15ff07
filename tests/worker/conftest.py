"""Fixtures of the worker tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.worker.http_server import Server, serving


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving() as state:
        yield state
