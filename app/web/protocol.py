"""uvicorn's HTTP protocol with a deadline on request headers (uvicorn has none).

Invariant: a slow client cannot hold a connection. Bytes that arrive outside a request the
app is handling (a new connection, the next request on a kept-alive one, the rest of a body
the app did not read) must complete a request's headers within
SLUICE_HTTP_HEADER_TIMEOUT_SECONDS, or the connection is answered 408 (when it sent
something) and closed. Once the app has the request, its body has its own deadline
(`app.web.body`), and uvicorn's keep-alive timeout covers idle connections between requests.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Parsing
except ImportError:  # pragma: no cover - httptools is a dependency
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Parsing  # type: ignore[assignment]


class _HeaderDeadline(asyncio.Protocol):
    header_timeout: float
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _deadline: asyncio.TimerHandle | None = None
    _heard: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._in_request():
            self._arm()
            self._heard = True
        super().data_received(data)
        if self._in_request():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is None:
            self._heard = False
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._heard:
            self.transport.write(_timed_out(self.header_timeout))
        self.transport.close()


def _timed_out(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request headers took longer than {seconds:g} s"}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def with_header_timeout(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools where installed, else h11) with the deadline."""
    return type("SluiceHttpProtocol", (_HeaderDeadline, _Parsing), {"header_timeout": seconds})
