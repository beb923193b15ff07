"""Fixtures for flow tests: a running app and worker on the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.flows.stack import Stack, running_stack


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url) as running:
        yield running
