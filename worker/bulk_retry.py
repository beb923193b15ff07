"""The `retry_runs` job kind: a bulk retry (``POST /api/v1/runs/retry``), run through the
queue in batches rather than in the request.

Each batch is one transaction that queues up to `BATCH_SIZE` runs again and marks them with
the bulk retry's id (`app.flows.replays`), so a job that runs again after a crash goes on
where the committed batches end and retries no run twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.flows import replays
from app.flows.control import RunBudget
from app.jobs import Job
from app.settings import Settings
from worker.services import WorkerServices


@dataclasses.dataclass(frozen=True)
class BulkRetrier:
    settings: Settings
    services: WorkerServices

    async def __call__(self, job: Job) -> dict[str, Any]:
        bulk = replays.BulkRetry.of(job.payload)
        budget = RunBudget.of(self.settings)
        total = 0
        while True:
            async with self.services.pool.connection() as conn, conn.transaction():
                taken = await replays.retry_next_batch(conn, bulk, budget)
            if not taken:
                return {"retried": total}
            self.services.queue.wake()
            total += taken
