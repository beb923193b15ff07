"""The worker's cache of immutable artefacts: memory, then disk, then the loader.

Invariants: a value comes from the loader at most once per key per process while it stays
cached, even when many tasks ask for it at the same moment (they share one load); an entry
on disk is either complete or absent (written to a temporary file in the same directory,
fsynced, then renamed over the final name), and carries a checksum, so a torn or damaged
file is read as a miss, logged, and replaced, never returned and never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

MAGIC = b"SLC1"
_DIGEST_SIZE = hashlib.sha256().digest_size


def _json_encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _json_decode(data: bytes) -> Any:
    return json.loads(data)


def _always(key: str, value: Any) -> bool:
    return True


class ArtifactCache(Generic[T]):
    """A bounded LRU in memory over a directory of entries, one file per key.

    `should_save(key, value)` decides whether a freshly loaded value is written to disk (it
    is kept in memory either way); `is_valid(key, value)` is asked of every value found in
    memory or on disk, and a value it rejects is treated as a miss, reloaded and replaced.
    Values are shared, not copied: treat them as immutable.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_entries: int = 1024,
        encode: Callable[[T], bytes] = _json_encode,
        decode: Callable[[bytes], T] = _json_decode,
        should_save: Callable[[str, T], bool] = _always,
        is_valid: Callable[[str, T], bool] = _always,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._max_entries = max_entries
        self._encode = encode
        self._decode = decode
        self._should_save = should_save
        self._is_valid = is_valid
        self._memory: OrderedDict[str, T] = OrderedDict()
        self._loading: dict[str, asyncio.Task[T]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The value for `key`; `load` runs only when neither memory nor disk has a valid one.

        Concurrent callers for one key share a single fill; cancelling one caller does not
        cancel the fill for the others. A failed load is not cached: it reaches every caller
        that shared it, and the next call tries again.
        """
        if key in self._memory:
            value = self._memory[key]
            if self._is_valid(key, value):
                self._memory.move_to_end(key)
                return value
            del self._memory[key]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._fill(key, load), name=f"cache fill {key!r}")
            self._loading[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]

    async def _fill(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        path = self._path(key)
        bad_entry = True
        try:
            data = await asyncio.to_thread(_read, path)
            if data is None:
                bad_entry = False
            else:
                value = self._decode(data)
                if self._is_valid(key, value):
                    self._remember(key, value)
                    return value
                log.info("cache entry %r on disk is stale; reloading", key)
        except Exception:
            log.warning("cache entry %r at %s is unreadable; reloading", key, path, exc_info=True)
        value = await load()
        try:
            if self._should_save(key, value):
                await asyncio.to_thread(_write_atomically, path, self._encode(value))
            elif bad_entry:
                await asyncio.to_thread(path.unlink, missing_ok=True)
        except Exception:
            log.exception("could not update cache entry %r at %s", key, path)
        self._remember(key, value)
        return value

    def _remember(self, key: str, value: T) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self._max_entries:
            self._memory.popitem(last=False)

    def _path(self, key: str) -> Path:
        # Hashed, so any key is a safe file name and no key can escape the directory.
        return self._directory / hashlib.sha256(key.encode()).hexdigest()


def _read(path: Path) -> bytes | None:
    """The payload stored at `path`, or None when there is none; ValueError when damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    header = len(MAGIC) + _DIGEST_SIZE
    payload = raw[header:]
    if raw[: len(MAGIC)] != MAGIC or raw[len(MAGIC) : header] != hashlib.sha256(payload).digest():
        raise ValueError(f"{path}: bad header or checksum")
    return payload


def _write_atomically(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
