"""Named locks and leadership across real connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from app.locks import Leadership, LockTimeout, lock, try_lock
from tests.integration.helpers import connect, eventually, fetchval, wait_until_blocked_on_lock


async def test_two_acquirers_of_one_key_are_serialised(database_url: str) -> None:
    first = await connect(database_url)
    second = await connect(database_url)
    observer = await connect(database_url)
    events: list[str] = []
    first_inside = asyncio.Event()
    let_first_go = asyncio.Event()

    async def holder() -> None:
        async with lock(first, "deploy:flow-1"):
            events.append("first in")
            first_inside.set()
            await let_first_go.wait()
            events.append("first out")

    async def contender() -> None:
        async with lock(second, "deploy:flow-1"):
            events.append("second in")
        events.append("second out")

    try:
        holder_task = asyncio.create_task(holder())
        await first_inside.wait()
        contender_task = asyncio.create_task(contender())
        await wait_until_blocked_on_lock(observer, second.info.backend_pid)
        assert events == ["first in"]
        let_first_go.set()
        await asyncio.wait_for(asyncio.gather(holder_task, contender_task), timeout=10)
        assert events == ["first in", "first out", "second in", "second out"]
    finally:
        for c in (first, second, observer):
            await c.close()


async def test_lock_is_released_when_the_body_raises(pool: AsyncConnectionPool[Any]) -> None:
    with pytest.raises(ValueError, match="body failed"):
        async with lock(pool, "k"):
            raise ValueError("body failed")
    async with try_lock(pool, "k") as acquired:
        assert acquired


async def test_try_lock_returns_false_while_held(pool: AsyncConnectionPool[Any]) -> None:
    async with lock(pool, "k"):
        async with try_lock(pool, "k") as acquired:
            assert not acquired
        async with try_lock(pool, "other-key") as acquired:
            assert acquired
    async with try_lock(pool, "k") as acquired:
        assert acquired


async def test_timeout_gives_up_and_leaves_the_connection_usable(database_url: str) -> None:
    holder = await connect(database_url)
    waiter = await connect(database_url)
    try:
        async with lock(holder, "k"):
            with pytest.raises(LockTimeout, match="'k' still held"):
                async with lock(waiter, "k", timeout=0.05):
                    pytest.fail("entered a held lock")
            assert await fetchval(waiter, "SELECT current_setting('lock_timeout')") == "0"
        async with lock(waiter, "k", timeout=1):
            pass
    finally:
        await holder.close()
        await waiter.close()


async def test_lock_inside_a_transaction_survives_a_timeout(database_url: str) -> None:
    holder = await connect(database_url)
    worker = await connect(database_url)
    try:
        async with lock(holder, "k"), worker.transaction():
            await worker.execute("CREATE TABLE scratch (x int)")
            with pytest.raises(LockTimeout):
                async with lock(worker, "k", timeout=0.05):
                    pass
            await worker.execute("INSERT INTO scratch VALUES (1)")
        assert await fetchval(worker, "SELECT count(*) FROM scratch") == 1
    finally:
        await holder.close()
        await worker.close()


async def test_lock_dies_with_its_connection(database_url: str) -> None:
    holder = await connect(database_url)
    other = await connect(database_url)
    try:
        async with try_lock(holder, "k") as acquired:
            assert acquired
            await other.execute("SELECT pg_terminate_backend(%s)", (holder.info.backend_pid,))

            async def free() -> bool:
                async with try_lock(other, "k") as got:
                    return got

            await eventually(free)
    finally:
        await other.close()
        await holder.close()


async def test_leadership_moves_when_the_leaders_connection_dies(database_url: str) -> None:
    first = Leadership(database_url, "maintenance")
    second = Leadership(database_url, "maintenance")
    killer = await connect(database_url)
    try:
        assert await first.ensure()
        assert not await second.ensure()
        assert await first.ensure(), "a leader stays leader on its next tick"

        await killer.execute(
            "SELECT pg_terminate_backend(%s)", (first.connection.info.backend_pid,)
        )
        await eventually(second.ensure)
        assert second.is_leader
        assert not await first.ensure()
        assert not first.is_leader
        assert await second.ensure()
    finally:
        await first.release()
        await second.release()
        await killer.close()


async def test_leadership_released_on_step_down(database_url: str) -> None:
    first = Leadership(database_url, "maintenance")
    second = Leadership(database_url, "maintenance")
    other_role = Leadership(database_url, "another-role")
    try:
        assert await first.ensure()
        assert await other_role.ensure(), "roles are independent"
        await first.release()
        assert await second.ensure()
    finally:
        for leadership in (first, second, other_role):
            await leadership.release()
