"""What one worker has done since it started, for tests, benchmarks and logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.executor import Outcome

_REMEMBERED = 10_000


@dataclass
class WorkerStats:
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    null_polls: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    """The last outcome per job id (bounded to the most recent 10,000)."""

    def remember(self, job_id: int, outcome: Outcome) -> None:
        self.outcomes[job_id] = outcome
        if len(self.outcomes) > _REMEMBERED:
            del self.outcomes[next(iter(self.outcomes))]
