"""Environments for code steps' `requirements`, installed once per host and reused.

Invariants: one set of requirements (normalised, on one interpreter) is installed at most
once per host at a time, whatever the demand: tasks of one process queue on an asyncio lock
per key and processes on a file lock per key, and whoever gets the lock first looks again
before installing. An environment directory exists under its final name only once pip has
finished and its files are on disk (pip writes into a temporary directory that is renamed
when complete), so a crash mid-install leaves nothing that looks usable. A failed install
leaves nothing behind, and the next request tries again. Requirements are checked against a
strict grammar before pip sees them, so a step cannot pass pip options, paths or URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from worker._filelock import file_lock

log = logging.getLogger(__name__)

INSTALL_LOG = "installs.log"
OUTPUT_TAIL = 4000

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION_CLAUSE = r"(?:===|~=|==|!=|<=|>=|<|>)\s*[A-Za-z0-9_.*+!-]+"
_REQUIREMENT = re.compile(
    rf"(?P<name>{_NAME})"
    rf"\s*(?:\[(?P<extras>\s*{_NAME}(?:\s*,\s*{_NAME})*\s*)\])?"
    rf"\s*(?P<versions>{_VERSION_CLAUSE}(?:\s*,\s*{_VERSION_CLAUSE})*)?"
)


class RequirementsError(Exception):
    """Requirements that are malformed or could not be installed; `output` is pip's tail."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(f"{message}\n{output}" if output else message)
        self.output = output


def normalise(requirements: Sequence[str]) -> list[str]:
    """Canonical, sorted, de-duplicated requirements; RequirementsError for anything else.

    Only ``name[extras] <op> version, ...`` is accepted: no options, paths, URLs, direct
    references (``name @ url``) or environment markers.
    """
    if isinstance(requirements, str):
        raise RequirementsError("requirements must be a list of strings, not one string")
    if not requirements:
        raise RequirementsError("no requirements given")
    canonical: set[str] = set()
    for requirement in requirements:
        match = (
            _REQUIREMENT.fullmatch(requirement.strip()) if isinstance(requirement, str) else None
        )
        if match is None:
            raise RequirementsError(
                f"invalid requirement {requirement!r}: expected 'name', 'name==1.2', "
                "'name[extra]>=1,<2' and the like (no options, paths, URLs or markers)"
            )
        extras = sorted(
            {_canonical_name(e) for e in (match["extras"] or "").split(",") if e.strip()}
        )
        versions = sorted(re.sub(r"\s+", "", v) for v in (match["versions"] or "").split(",") if v)
        canonical.add(
            _canonical_name(match["name"])
            + (f"[{','.join(extras)}]" if extras else "")
            + ",".join(versions)
        )
    return sorted(canonical)


def environment_key(requirements: Sequence[str]) -> str:
    """The directory name for these requirements on this interpreter and platform."""
    identity = {
        "python": sys.implementation.cache_tag,
        "platform": sysconfig.get_platform(),
        "requirements": normalise(requirements),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


class RequirementsInstaller:
    """Installs requirement sets with pip into ``directory/<key>`` and hands back the path.

    `pip_args` are added to every ``pip install`` (an index mirror, ``--no-index
    --find-links DIR``, ...). Each pip run appends one JSON line to ``directory/installs.log``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        pip_args: Sequence[str] = (),
        timeout_seconds: float = 600.0,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._pip_args = list(pip_args)
        self._timeout = timeout_seconds
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def ensure(self, requirements: Sequence[str]) -> Path:
        """A directory to put on ``sys.path`` in which `requirements` are installed."""
        normalised = normalise(requirements)
        key = environment_key(normalised)
        target = self._directory / key
        if target.is_dir():
            return target
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock, file_lock(self._directory / f"{key}.lock"):
            if not target.is_dir():
                await asyncio.to_thread(self._remove_leftovers, key)
                await self._install(key, normalised, target)
        return target

    async def _install(self, key: str, requirements: list[str], target: Path) -> None:
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=self._directory))
        started = time.monotonic()
        try:
            code, output = await self._pip(staging, requirements)
            took = time.monotonic() - started
            await asyncio.to_thread(self._log_install, key, requirements, code, took)
            if code != 0:
                what = (
                    f"timed out after {self._timeout:g}s"
                    if code is None
                    else f"failed (exit {code})"
                )
                raise RequirementsError(f"pip install {' '.join(requirements)} {what}", output)
            await asyncio.to_thread(_publish, staging, target)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        log.info("installed %s into %s", " ".join(requirements), target)

    async def _pip(self, staging: Path, requirements: list[str]) -> tuple[int | None, str]:
        """pip's exit code (None on timeout) and the tail of its output."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pip", "install",
            "--target", str(staging),
            "--no-input", "--disable-pip-version-check",
            *self._pip_args,
            "--", *requirements,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        tail = bytearray()
        try:
            async with asyncio.timeout(self._timeout):
                while chunk := await process.stdout.read(65536):
                    tail += chunk
                    del tail[:-OUTPUT_TAIL]
                code: int | None = await process.wait()
        except TimeoutError:
            code = None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        return code, tail.decode(errors="replace").strip()

    def _log_install(
        self, key: str, requirements: list[str], code: int | None, took: float
    ) -> None:
        line = json.dumps(
            {
                "key": key,
                "requirements": requirements,
                "exit": code,
                "seconds": round(took, 3),
                "pid": os.getpid(),
            }
        )
        with open(self._directory / INSTALL_LOG, "a") as log_file:
            log_file.write(line + "\n")

    def _remove_leftovers(self, key: str) -> None:
        """Staging directories of installs that died with their process (we hold the lock)."""
        for leftover in self._directory.glob(f".{key}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)


def _canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _publish(staging: Path, target: Path) -> None:
    """Make `staging` readable by sandbox uids and durable, then rename it to `target` (the
    sign that it is complete)."""
    for root, _, files in os.walk(staging):
        for name in [*files, "."]:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            readable = stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                readable |= stat.S_IXGRP | stat.S_IXOTH
            os.chmod(path, stat.S_IMODE(mode) | readable)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    os.rename(staging, target)
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
