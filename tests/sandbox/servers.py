"""Real servers on the host's loopback for the network tests: they count who reaches them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACKS = ["127.0.0.1", "::1"] if socket.has_ipv6 else ["127.0.0.1"]


@dataclass
class Counter:
    """A server that counts connections and answers each with a small HTTP reply."""

    port: int
    hits: int = 0


@contextlib.asynccontextmanager
async def counter(tls: ssl.SSLContext | None = None) -> AsyncIterator[Counter]:
    """Listening on every loopback address (127.0.0.1 and ::1) on one port."""
    found = Counter(0)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.hits += 1
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            body = head.split(b"\r\n", 1)[0]
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()

    port = _free_port()
    server = await asyncio.start_server(answer, LOOPBACKS, port, ssl=tls)
    found.port = port
    async with server:
        yield found


@contextlib.asynccontextmanager
async def echo() -> AsyncIterator[Counter]:
    """A TCP echo server on 127.0.0.1."""
    found = Counter(0)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.hits += 1
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and localhost, and its certificate (the client's CA)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    cert.chmod(0o644)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


def _free_port() -> int:
    """A port free on both loopback addresses."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if len(LOOPBACKS) == 1:
            return port
        with socket.socket(socket.AF_INET6) as probe6:
            try:
                probe6.bind(("::1", port))
            except OSError:
                continue
        return port
