"""The sandbox wire format: each message is a 4-byte big-endian length, then that many bytes of
UTF-8 JSON.

Invariant: no frame longer than the agreed maximum is written or accepted, and whatever arrives
is either a whole, well-formed message or a `ProtocolError`. Standard library only: the sandbox
child loads this file by path, so it must not import anything else from the project.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


class FrameTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def encode(message: Any, max_bytes: int) -> bytes:
    """One frame holding `message`; raises TypeError or ValueError when it is not JSON (NaN and
    lone surrogates included) and `FrameTooLarge` when it does not fit."""
    body = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    data = body.encode()
    if len(data) > max_bytes:
        raise FrameTooLarge(len(data), max_bytes)
    return HEADER.pack(len(data)) + data


def decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"a frame that is not UTF-8 JSON: {exc}") from None


class FrameDecoder:
    """Turns a byte stream fed in arbitrary pieces into messages (the parent's side)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        messages: list[Any] = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > self._max_bytes:
                raise FrameTooLarge(size, self._max_bytes)
            end = HEADER.size + size
            if len(self._buffer) < end:
                break
            messages.append(decode(bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return messages


def read_frame(fd: int, max_bytes: int) -> Any:
    """Block until one whole message arrives on `fd` (the child's side). EOFError at a clean end
    of the stream, `ProtocolError` on a truncated or oversized frame."""
    header = _read_exactly(fd, HEADER.size)
    if not header:
        raise EOFError
    if len(header) < HEADER.size:
        raise ProtocolError("the stream ended inside a frame header")
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise FrameTooLarge(size, max_bytes)
    body = _read_exactly(fd, size)
    if len(body) < size:
        raise ProtocolError(f"the stream ended inside a frame of {size} bytes")
    return decode(body)


def write_frame(fd: int, frame: bytes) -> None:
    """Write a whole frame to a blocking `fd`."""
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes, or fewer when the stream ends first."""
    chunks: list[bytes] = []
    wanted = size
    while wanted:
        chunk = os.read(fd, min(wanted, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)
