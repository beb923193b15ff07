"""The jobs a worker holds: each claimed job with its execution, until that ends.

Invariant: a settled job (its outcome written, or being written, by the worker or by its
handler) is never renewed, cancelled for a lost lease nor released at stop: its end is
already in hand, and once its row is deleted its lease would look lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from app.jobs import Job, Lease


@dataclass
class Held:
    job: Job
    task: asyncio.Task[None]
    settled: bool = False


class InFlight:
    """Held jobs by id; `freed` is set each time one ends and frees its slot."""

    def __init__(self) -> None:
        self._held: dict[int, Held] = {}
        self.freed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self._held.values()))

    def get(self, job_id: int) -> Held | None:
        return self._held.get(job_id)

    def add(self, job: Job, task: asyncio.Task[None]) -> None:
        self._held[job.id] = Held(job, task)

    def end(self, job_id: int) -> None:
        self._held.pop(job_id, None)
        self.freed.set()

    def settle(self, job_id: int) -> None:
        held = self._held.get(job_id)
        if held is not None:
            held.settled = True

    def leases(self) -> list[Lease]:
        """The leases of the jobs not settled: the ones to renew."""
        return [held.job.lease for held in self._held.values() if not held.settled]
