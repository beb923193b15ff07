"""Real processes for end-to-end tests: started with a clean environment, always reaped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def sluice_env(**values: str) -> dict[str, str]:
    """This environment without any SLUICE_* setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(values)
    return env


@contextmanager
def started(command: Sequence[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A process whose output is captured; killed (if still running) and reaped at the end."""
    process = subprocess.Popen(
        list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
