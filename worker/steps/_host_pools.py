"""Connection pools for the `http` step, one per host name.

Invariant: a connection is only reused for the host name it was opened for. Requests are
addressed to a vetted IP, so a single pool would share connections among all names served at
one address (a CDN's, say) and could send a request for one name over a TLS connection
verified for another.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

import httpx


class PoolPerHost(httpx.AsyncBaseTransport):
    """A connection pool per host name (the `sni_hostname` extension of each request).

    Past `max_pools`, the least recently used pools with no response open are closed.
    """

    def __init__(self, max_pools: int = 32) -> None:
        self._ssl_context = httpx.create_ssl_context(trust_env=False)
        self._max_pools = max_pools
        self._pools: OrderedDict[str, _Pool] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = request.extensions["sni_hostname"]
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = _Pool(
                httpx.AsyncHTTPTransport(verify=self._ssl_context, trust_env=False)
            )
        self._pools.move_to_end(name)
        pool.open += 1
        try:
            await self._evict()
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.open -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, pool),
            extensions=response.extensions,
        )

    async def _evict(self) -> None:
        # Chosen and removed before any await, so that concurrent requests never share one.
        idle = [name for name, pool in self._pools.items() if pool.open == 0]
        excess = len(self._pools) - self._max_pools
        for pool in [self._pools.pop(name) for name in idle[: max(excess, 0)]]:
            await pool.transport.aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.transport.aclose()


class _Pool:
    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.open = 0


class _Counted(httpx.AsyncByteStream):
    """A response stream that tells its pool when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, pool: _Pool) -> None:
        self._stream = stream
        self._pool: _Pool | None = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.open -= 1
            self._pool = None
        await self._stream.aclose()
