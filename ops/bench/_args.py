"""Command-line options shared by the benchmarks."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_counts(parser: argparse.ArgumentParser, counts: Sequence[tuple[str, int, str]]) -> None:
    """Add whole-number options given as (flag, default, help)."""
    for flag, default, text in counts:
        parser.add_argument(flag, type=positive, default=default, help=f"{text} ({default})")
