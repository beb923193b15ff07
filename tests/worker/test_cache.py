from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from worker.cache import MAGIC, ArtifactCache

Json = dict[str, Any]


class Loader:
    """A loader that counts its calls and returns `value`."""

    def __init__(self, value: Json) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> Json:
        self.calls += 1
        return self.value


def entry_path(directory: Path, key: str) -> Path:
    return directory / hashlib.sha256(key.encode()).hexdigest()


def listing(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


async def test_miss_loads_and_saves_atomically(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path)
    load = Loader({"steps": [1, 2]})

    assert await cache.get("flow/1", load) == {"steps": [1, 2]}

    assert load.calls == 1
    assert listing(tmp_path) == [entry_path(tmp_path, "flow/1")]


async def test_memory_hit_does_not_read_disk(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path)
    load = Loader({"v": 1})
    first = await cache.get("k", load)
    entry_path(tmp_path, "k").unlink()

    assert await cache.get("k", load) is first
    assert load.calls == 1


async def test_restart_hits_disk_and_fills_memory(tmp_path: Path) -> None:
    await ArtifactCache[Json](tmp_path).get("k", Loader({"v": 1}))
    restarted = ArtifactCache[Json](tmp_path)
    load = Loader({"v": 2})

    assert await restarted.get("k", load) == {"v": 1}
    entry_path(tmp_path, "k").unlink()
    assert await restarted.get("k", load) == {"v": 1}
    assert load.calls == 0


async def test_should_save_false_keeps_value_in_memory_only(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path, should_save=lambda key, value: value["final"])
    load = Loader({"final": False})

    await cache.get("k", load)
    await cache.get("k", load)

    assert load.calls == 1
    assert listing(tmp_path) == []
    await ArtifactCache[Json](tmp_path).get("k", load)
    assert load.calls == 2


async def test_stale_entry_on_disk_is_reloaded_and_replaced(tmp_path: Path) -> None:
    await ArtifactCache[Json](tmp_path).get("k", Loader({"version": 1}))

    def current(key: str, value: Json) -> bool:
        return bool(value["version"] == 2)

    load = Loader({"version": 2})
    assert await ArtifactCache[Json](tmp_path, is_valid=current).get("k", load) == {"version": 2}
    assert load.calls == 1
    assert await ArtifactCache[Json](tmp_path).get("k", Loader({"version": 3})) == {"version": 2}


async def test_stale_entry_in_memory_is_reloaded(tmp_path: Path) -> None:
    wanted = {"version": 1}
    cache = ArtifactCache[Json](tmp_path, is_valid=lambda key, value: value == wanted)
    await cache.get("k", Loader({"version": 1}))

    wanted = {"version": 2}
    load = Loader({"version": 2})

    assert await cache.get("k", load) == {"version": 2}
    assert await cache.get("k", load) == {"version": 2}
    assert load.calls == 1


def _framed(payload: bytes) -> bytes:
    return MAGIC + hashlib.sha256(payload).digest() + payload


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: good[:-3], id="truncated"),
        pytest.param(lambda good: good[:-1] + bytes([good[-1] ^ 1]), id="bit-flip"),
        pytest.param(lambda good: b"not a cache entry", id="garbage"),
        pytest.param(lambda good: _framed(b"{not json"), id="undecodable"),
    ],
)
async def test_corrupt_entry_is_reloaded_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any
) -> None:
    await ArtifactCache[Json](tmp_path).get("k", Loader({"v": 1}))
    path = entry_path(tmp_path, "k")
    good = path.read_bytes()
    path.write_bytes(damage(good))
    load = Loader({"v": 1})

    with caplog.at_level(logging.WARNING, logger="worker.cache"):
        assert await ArtifactCache[Json](tmp_path).get("k", load) == {"v": 1}

    assert load.calls == 1
    assert path.read_bytes() == good
    assert "unreadable" in caplog.text


async def test_concurrent_gets_share_one_load(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path)
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow_load() -> Json:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return {"v": 1}

    gets = [asyncio.create_task(cache.get("k", slow_load)) for _ in range(10)]
    await asyncio.wait_for(started.wait(), 5)
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*gets), 5)

    assert calls == 1
    assert all(result is results[0] for result in results)


async def test_cancelled_caller_does_not_cancel_the_shared_load(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> Json:
        started.set()
        await release.wait()
        return {"v": 1}

    first = asyncio.create_task(cache.get("k", slow_load))
    second = asyncio.create_task(cache.get("k", slow_load))
    await asyncio.wait_for(started.wait(), 5)
    first.cancel()
    release.set()

    assert await asyncio.wait_for(second, 5) == {"v": 1}
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_failed_load_reaches_every_waiter_and_is_not_cached(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path)
    calls = 0

    async def failing_load() -> Json:
        nonlocal calls
        calls += 1
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(cache.get("k", failing_load) for _ in range(3)), return_exceptions=True
    )

    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get("k", Loader({"v": 1})) == {"v": 1}


async def test_memory_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    cache = ArtifactCache[Json](tmp_path, max_entries=2)
    for key in ("a", "b", "a", "c"):
        await cache.get(key, Loader({"key": key}))
    for path in listing(tmp_path):
        path.unlink()

    load = Loader({"reloaded": True})
    assert await cache.get("a", load) == {"key": "a"}
    assert await cache.get("c", load) == {"key": "c"}
    assert load.calls == 0
    assert await cache.get("b", load) == {"reloaded": True}
    assert load.calls == 1


async def test_custom_codec(tmp_path: Path) -> None:
    calls = 0

    async def compile_step() -> bytes:
        nonlocal calls
        calls += 1
        return b"\x00compiled"

    await ArtifactCache[bytes](tmp_path, encode=bytes, decode=bytes).get("step", compile_step)
    restarted = ArtifactCache[bytes](tmp_path, encode=bytes, decode=bytes)

    assert await restarted.get("step", compile_step) == b"\x00compiled"
    assert calls == 1
