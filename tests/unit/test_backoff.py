"""Exponential backoff with equal jitter."""

from __future__ import annotations

import random

from app.backoff import RetryPolicy


def test_delay_doubles_within_jitter_bounds_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=60)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4, "no jitter"
