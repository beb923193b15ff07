"""The worker process: its pool, identity and background loops, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from app import db
from app.jobs import Queue, RetryPolicy
from app.locks import Leadership
from app.settings import Settings
from worker.maintenance import ROLE, Maintenance

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def queue_from(settings: Settings) -> Queue:
    return Queue(
        lease_seconds=settings.lease_ttl_seconds,
        default_max_attempts=settings.job_max_attempts,
        retry_policy=RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds),
    )


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.id = new_worker_id()
        self.queue = queue_from(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set."""
        maintenance = Maintenance(
            self.queue,
            Leadership(db.database_url(self.settings), ROLE),
            self.settings.maintenance_interval_seconds,
        )
        log.info("worker %s started", self.id)
        await maintenance.run(stop)
        log.info("worker %s stopped", self.id)
