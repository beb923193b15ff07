"""The egress proxy: the only way out of a bwrap sandbox whose step asked for network.

Invariant: the proxy opens no connection to an address the `http` step's guard refuses
(`worker.steps.guard.address_refusal`, unless `allow_private`) nor, ever, to one of the
`denied` endpoints (Sluice's own database). It resolves each target itself, once, refuses it
if *any* resolved address is refused, and connects to one of those vetted addresses, so a DNS
answer that changes in between (rebinding) cannot redirect it. Sandboxes reach it only through
its Unix socket, bound into them; they have no route of their own.

It speaks just enough HTTP/1.1 for `requests`, `httpx` and `urllib`: ``CONNECT host:port``
opens a tunnel (https), an absolute-URI request (``GET http://host/path``) is forwarded to
that host in origin form. Either way, once the target is vetted the bytes flow unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Collection
from ipaddress import ip_address
from urllib.parse import urlsplit

from worker.steps.guard import IPAddress, address_refusal

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
HEAD_SECONDS = 10.0
CONNECT_SECONDS = 10.0
_CHUNK = 64 * 1024
_HOP_HEADERS = (b"proxy-connection", b"proxy-authorization", b"keep-alive")


class Refused(Exception):
    """A request the proxy will not carry out: answered with `status` and the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EgressProxy:
    """An HTTP proxy on a Unix socket in a fresh directory; `start()`, then `aclose()`.

    `shared`: sandboxes run under other uids (the worker is root), so the directory and the
    socket are made reachable for them (the socket grants only what the guard allows)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        denied: Collection[tuple[IPAddress, int]] = (),
        vet: Callable[[IPAddress], str | None] = address_refusal,
        shared: bool = False,
        temp_root: str | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._denied = frozenset((_unmapped(address), port) for address, port in denied)
        self._vet = vet
        self._shared = shared
        self._temp_root = temp_root
        self._dir: str | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> str:
        if self._dir is None:
            raise RuntimeError("the egress proxy is not started")
        return os.path.join(self._dir, "egress.sock")

    async def start(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="sluice-egress-", dir=self._temp_root)
        os.chmod(self._dir, 0o711 if self._shared else 0o700)
        self._server = await asyncio.start_unix_server(
            self._accepted, self.path, limit=MAX_HEAD_BYTES
        )
        os.chmod(self.path, 0o666 if self._shared else 0o600)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
            except (asyncio.LimitOverrunError, ValueError):
                raise Refused(431, f"request head over {MAX_HEAD_BYTES} bytes") from None
            except TimeoutError:
                raise Refused(408, "no complete request head") from None
            tunnel, host, port, forwarded = _parse(head)
            upstream_reader, upstream = await self._connect(host, port)
        except Refused as exc:
            await _answer(writer, exc.status, str(exc))
            return
        try:
            if tunnel:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.write(forwarded)
            await asyncio.gather(_pump(reader, upstream), _pump(upstream_reader, writer))
        finally:
            upstream.close()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the first vetted address of `host` that accepts one."""
        failure = f"cannot connect to {host}:{port}"
        for address in await self._addresses(host, port):
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(address), port), CONNECT_SECONDS
                )
            except (OSError, TimeoutError) as exc:
                failure = f"cannot connect to {host}:{port} ({address}): {exc or 'timed out'}"
        raise Refused(502, failure)

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to, once; refused if any of them is."""
        try:
            addresses = [ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError) as exc:
                raise Refused(502, f"cannot resolve {host}: {exc}") from None
            addresses = list(dict.fromkeys(ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise Refused(502, f"cannot resolve {host}: no addresses")
        for address in addresses:
            kind = None if self._allow_private else self._vet(address)
            if (_unmapped(address), port) in self._denied:
                kind = "Sluice's own database"
            if kind is not None:
                target = host if host == str(address) else f"{host} resolves to {address}"
                raise Refused(403, f"refused: {target}, which is {kind}")
        return addresses


def _unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 one reaches (a socket opened to it goes there)."""
    mapped = getattr(address, "ipv4_mapped", None)
    return address if mapped is None else mapped


def _parse(head: bytes) -> tuple[bool, str, int, bytes]:
    """(tunnel?, host, port, the head to forward) of a proxy request."""
    line, _, rest = head.partition(b"\r\n")
    try:
        method, target, version = line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "not an HTTP/1 request line") from None
    if not version.startswith("HTTP/1."):
        raise Refused(505, f"unsupported version {version!r}")
    if method == "CONNECT":
        host, port = _authority(target, None)
        return True, host, port, b""
    url = urlsplit(target)
    if url.scheme != "http" or not url.netloc:
        raise Refused(400, "only CONNECT and absolute http:// URIs are proxied")
    if "@" in url.netloc:
        raise Refused(400, "credentials in the URI are not forwarded")
    host, port = _authority(url.netloc, 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = [
        field
        for field in rest.split(b"\r\n")
        if field and field.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS
    ]
    forwarded = b"\r\n".join([f"{method} {path} {version}".encode(), *headers]) + b"\r\n\r\n"
    return False, host, port, forwarded


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    """(host, port) of ``host[:port]`` or ``[v6]:port``."""
    if text.startswith("["):
        host, closed, tail = text[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            raise Refused(400, f"invalid authority {text!r}")
        port = tail[1:]
    else:
        host, _, port = text.partition(":")
        if ":" in port:
            raise Refused(400, f"an IPv6 address goes in brackets, not {text!r}")
    if not host:
        raise Refused(400, f"no host in {text!r}")
    if not port and default_port is None:
        raise Refused(400, f"CONNECT needs host:port, not {text!r}")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise Refused(400, f"invalid port in {text!r}")
    return host, int(port) if port else int(default_port or 0)


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = (message + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} Sluice egress\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until the end of `reader`, then pass the end on (half-close)."""
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
