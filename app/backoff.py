"""How long a failed job waits before its next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter: attempt n waits between d/2 and d, where
    d = min(max_seconds, base_seconds * 2**(n-1)); jitter keeps retries from stampeding."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        exponent: int = max(0, attempt - 1)
        ceiling: float = min(self.max_seconds, self.base_seconds * 2.0**exponent)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
