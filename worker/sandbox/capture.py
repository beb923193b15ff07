"""One step's stdout and stderr as the parent receives them.

Invariant: however much a step writes, the parent holds at most the cap (stdout and stderr
together); the first byte beyond it marks the capture exceeded and nothing more is kept.
"""

from __future__ import annotations

STDOUT, STDERR = 1, 2


class Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.exceeded = False
        self._streams = {STDOUT: bytearray(), STDERR: bytearray()}

    def add(self, stream: int, data: bytes) -> bool:
        """Keep `data` (as much as fits); False once the step has written more than the cap."""
        if self.exceeded:
            return False
        room = self.limit - self.size
        self.size += len(data)
        if len(data) > room:
            self._streams[stream] += data[:room]
            self.exceeded = True
            return False
        self._streams[stream] += data
        return True

    def text(self, stream: int) -> str:
        return self._streams[stream].decode("utf-8", "replace")
