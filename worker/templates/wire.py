"""The render processes' framing: a 4-byte big-endian length, then that many bytes of UTF-8
JSON, one frame each way per render."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

HEADER_BYTES = 4
MAX_FRAME_BYTES = 256 * 1024 * 1024


def encode(message: Any) -> bytes:
    return frame(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def frame(data: bytes) -> bytes:
    """`data` (encoded JSON already) framed."""
    return len(data).to_bytes(HEADER_BYTES, "big") + data


def read(stream: BinaryIO) -> Any | None:
    """The next message on `stream`, or None at its end."""
    header = stream.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        return None
    data = stream.read(int.from_bytes(header, "big"))
    return json.loads(data)


def size(header: bytes) -> int:
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {length} bytes is over the limit of {MAX_FRAME_BYTES}")
    return length
