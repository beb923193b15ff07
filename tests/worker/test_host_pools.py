"""Connection pools per host name, against a real local server."""

from __future__ import annotations

import json

import httpx

from tests.worker.http_server import Server
from worker.steps._host_pools import PoolPerHost


async def test_only_idle_pools_past_the_limit_are_closed(server: Server) -> None:
    async with httpx.AsyncClient(transport=PoolPerHost(max_pools=1)) as http:

        async def port(name: str) -> int:
            response = await http.get(server.url("/echo"), extensions={"sni_hostname": name})
            return int(response.json()["client_port"])

        first_a = await port("a")
        request = http.build_request("GET", server.url("/echo"), extensions={"sni_hostname": "b"})
        open_b = await http.send(request, stream=True)
        # Pool "a" is idle, so pool "b" replaced it; "b" has a response open, so it outlives
        # the new pool for "a", past the limit, and keeps its connection.
        second_a = await port("a")
        first_b = json.loads(await open_b.aread())["client_port"]
        await open_b.aclose()
        assert second_a != first_a
        assert await port("b") == first_b
