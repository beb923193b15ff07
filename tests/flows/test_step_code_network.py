"""Code steps with `network`: off by default, public addresses only when on, never the
database or the app, and refused where the project's administrator forbids it (real bwrap
sandboxes, the real worker and app, servers on 127.0.0.1 that count their connections)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.flows.helpers import started_run, step
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import connect
from tests.sandbox import servers
from worker.sandbox import bwrap

FETCH = """
import urllib.error, urllib.request
def run(input, ctx):
    out = {}
    for url in input:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                out[url] = response.status
        except urllib.error.HTTPError as exc:
            out[url] = exc.code
        except OSError as exc:
            out[url] = type(exc).__name__
    return out
"""


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    if (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap is not usable here: {reason}")


def fetch(step_id: str, urls: list[str], **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "code", "code": FETCH, "input": urls, **fields}


async def outputs(stack: Stack, flow: dict[str, Any]) -> dict[str, Any]:
    deployed = await stack.deploy(flow)
    run = await stack.wait_for_status(await started_run(stack, deployed["id"]))
    return run


def database_ports(database_url: str) -> list[int]:
    """The test database's TCP port; none when it listens on a Unix socket only (which the
    sandbox cannot see and the proxy cannot reach)."""
    params = conninfo_to_dict(database_url)
    if str(params.get("host", "")).startswith("/"):
        return []
    return [int(params.get("port") or 5432)]


@pytest.fixture
async def strict(database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, http_allow_private=False) as stack:
        yield stack


async def test_network_reaches_no_loopback_service_and_is_off_by_default(
    strict: Stack, database_url: str
) -> None:
    app = strict.settings.port
    async with servers.counter() as target:
        hosts = ["127.0.0.1", "127.1", "0x7f000001", "[::1]", "[::ffff:127.0.0.1]", "localhost"]
        ports = [target.port, app, *database_ports(database_url)]
        urls = [f"http://{h}:{p}/" for h in hosts for p in ports]
        run = await outputs(
            strict,
            {
                "name": "prober",
                "network": True,
                "steps": [fetch("on", urls), fetch("off", urls, network=False)],
            },
        )
    assert run["status"] == "SUCCEEDED", run
    assert set(step(run, "on")["output"].values()) == {403}, step(run, "on")
    # Without network there is no proxy, and nothing to connect to.
    assert 403 not in step(run, "off")["output"].values()
    assert all(isinstance(v, str) for v in step(run, "off")["output"].values())
    assert target.hits == 0


async def test_an_allowed_target_is_reached_and_the_database_never(
    stack: Stack, database_url: str
) -> None:
    async with servers.counter() as target:
        urls = [f"http://localhost:{target.port}/"]
        for db in database_ports(database_url):
            urls += [f"http://localhost:{db}/", f"http://127.0.0.1:{db}/"]
        run = await outputs(stack, {"name": "caller", "steps": [fetch("call", urls, network=True)]})
    assert run["status"] == "SUCCEEDED", run
    assert step(run, "call")["output"] == {url: 200 if url == urls[0] else 403 for url in urls}
    assert target.hits == 1


async def test_a_project_without_network_fails_the_step(stack: Stack, database_url: str) -> None:
    async with await connect(database_url) as conn:
        await conn.execute(
            "UPDATE projects SET allow_network = false WHERE id = %s", [stack.project_id]
        )
    async with servers.counter() as target:
        url = f"http://127.0.0.1:{target.port}/"
        run = await outputs(
            stack,
            {"name": "denied", "network": True, "steps": [fetch("call", [url])]},
        )
    assert run["status"] == "FAILED", run
    call = step(run, "call")
    assert call["status"] == "FAILED"
    assert "allow_network: false" in call["error"]
    assert target.hits == 0
