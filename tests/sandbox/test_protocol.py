from __future__ import annotations

import math
import os

import pytest

from worker.sandbox import protocol


def test_a_frame_is_a_big_endian_length_and_utf8_json() -> None:
    frame = protocol.encode({"é": [1, None]}, 100)
    body = '{"é":[1,null]}'.encode()
    assert frame == len(body).to_bytes(4, "big") + body


def test_the_decoder_reassembles_frames_fed_one_byte_at_a_time() -> None:
    stream = protocol.encode({"n": 1}, 100) + protocol.encode("two", 100)
    decoder = protocol.FrameDecoder(100)
    messages = [m for byte in stream for m in decoder.feed(bytes([byte]))]
    assert messages == [{"n": 1}, "two"]
    assert decoder.pending == 0


def test_frames_over_the_limit_are_refused_on_both_sides() -> None:
    with pytest.raises(protocol.FrameTooLarge):
        protocol.encode("x" * 20, 10)
    with pytest.raises(protocol.FrameTooLarge):
        protocol.FrameDecoder(10).feed((11).to_bytes(4, "big"))


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{not json", b""])
def test_a_body_that_is_not_json_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameDecoder(100).feed(len(body).to_bytes(4, "big") + body)


@pytest.mark.parametrize("value", [math.nan, "\udcff", {1, 2}])
def test_values_json_cannot_carry_are_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        protocol.encode(value, 100)


def test_blocking_reads_see_whole_frames_then_the_end_of_the_stream() -> None:
    read_fd, write_fd = os.pipe()
    try:
        protocol.write_frame(write_fd, protocol.encode({"a": "b" * 1000}, 10_000))
        protocol.write_frame(write_fd, protocol.encode(None, 10_000))
        os.close(write_fd)
        assert protocol.read_frame(read_fd, 10_000) == {"a": "b" * 1000}
        assert protocol.read_frame(read_fd, 10_000) is None
        with pytest.raises(EOFError):
            protocol.read_frame(read_fd, 10_000)
    finally:
        os.close(read_fd)


def test_a_stream_that_ends_inside_a_frame_is_a_protocol_error() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, protocol.encode("abcdef", 100)[:-2])
    os.close(write_fd)
    try:
        with pytest.raises(protocol.ProtocolError, match="ended inside"):
            protocol.read_frame(read_fd, 100)
    finally:
        os.close(read_fd)
