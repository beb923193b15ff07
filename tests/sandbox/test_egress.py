"""Network for code steps: off by default, and on, public addresses only (the egress proxy).

Everything here is real: bwrap sandboxes, the worker's proxy on its Unix socket, servers on the
host's loopback that count every connection they get. "Public" targets are loopback servers
reached under `allow_private` (the test-only allowance the http step's tests use too).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from tests.sandbox import servers
from tests.sandbox.helpers import step
from worker.sandbox import SandboxMode, SandboxPool, StepRequest, StepStatus, bwrap
from worker.sandbox.egress import EgressProxy

PROBE = """
import os, socket, urllib.error, urllib.request
def run(input, ctx):
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "NO_PROXY")
    out = {"env": {name: os.environ.get(name) for name in names}, "direct": {}, "urls": {}}
    for host in input["direct"]:
        try:
            socket.create_connection((host, input["port"]), timeout=3).close()
            out["direct"][host] = "connected"
        except OSError as exc:
            out["direct"][host] = type(exc).__name__
    for url in input["urls"]:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                out["urls"][url] = response.status
        except urllib.error.HTTPError as exc:
            out["urls"][url] = exc.code
        except OSError as exc:
            out["urls"][url] = type(exc).__name__
    proxy = os.environ.get("HTTP_PROXY")
    out["tunnels"] = dict.fromkeys(input["tunnels"])
    for target in input["tunnels"] if proxy else ():
        with socket.create_connection(("127.0.0.1", int(proxy.rsplit(":", 1)[1])), 5) as s:
            s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
            out["tunnels"][target] = s.recv(100).split(b"\\r\\n")[0].decode()
    return out
"""
ENCODINGS = ["127.0.0.1", "127.1", "0x7f000001", "2130706433", "[::1]", "[::ffff:127.0.0.1]"]
ENCODINGS += ["localhost"]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def probe(port: int, *, network: bool) -> StepRequest:
    request = step(
        PROBE,
        {
            "port": port,
            "direct": ["127.0.0.1", "::1"],
            "urls": [f"http://{host}:{port}/" for host in ENCODINGS],
            "tunnels": [f"{host}:{port}" for host in ENCODINGS],
        },
    )
    return dataclasses.replace(request, network=network)


@pytest.fixture
def usable() -> None:
    if (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap is not usable here: {reason}")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory outside /tmp (the sandbox has its own) that any uid may read."""
    path = Path(tempfile.mkdtemp(prefix="sluice-egress-test-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.fixture
async def guarded(usable: None) -> AsyncIterator[SandboxPool]:
    async with SandboxPool(SandboxMode.BWRAP, warm=1) as pool:
        yield pool


async def test_without_network_nothing_is_reachable(guarded: SandboxPool) -> None:
    async with servers.counter() as target:
        result = await guarded.run("p", probe(target.port, network=False))
    assert result.status is StepStatus.SUCCEEDED, result
    assert set(result.output["env"].values()) == {None}
    assert "connected" not in result.output["direct"].values()
    assert all(isinstance(v, str) for v in result.output["urls"].values()), result.output
    assert target.hits == 0


async def test_with_network_loopback_stays_unreachable_in_every_encoding(
    guarded: SandboxPool,
) -> None:
    async with servers.counter() as target:
        result = await guarded.run("p", probe(target.port, network=True))
        # The same project's next step without network gets no proxy (not that child).
        after = await guarded.run("p", probe(target.port, network=False))
    assert result.status is StepStatus.SUCCEEDED, result
    proxies = set(result.output["env"].values()) - {None}
    assert len(proxies) == 1
    assert proxies.pop().startswith("http://127.0.0.1:")
    assert result.output["env"]["ALL_PROXY"] is None
    assert "connected" not in result.output["direct"].values(), result.output
    assert set(result.output["urls"].values()) == {403}, result.output
    assert set(result.output["tunnels"].values()) == {"HTTP/1.1 403 Sluice egress"}
    assert set(after.output["env"].values()) == {None}, after
    assert target.hits == 0


async def test_the_database_is_refused_even_where_private_addresses_are_allowed(
    usable: None,
) -> None:
    async with servers.counter() as database, servers.counter() as allowed:
        denied = [(ip_address(host), database.port) for host in servers.LOOPBACKS]
        async with SandboxPool(
            SandboxMode.BWRAP, warm=0, allow_private=True, denied=denied
        ) as pool:
            result = await pool.run("p", probe(database.port, network=True))
            reached = await pool.run("p", probe(allowed.port, network=True))
    assert set(result.output["urls"].values()) == {403}, result.output
    assert set(result.output["tunnels"].values()) == {"HTTP/1.1 403 Sluice egress"}
    assert database.hits == 0
    urls = reached.output["urls"]
    assert urls[f"http://localhost:{allowed.port}/"] == 200, reached.output
    assert urls[f"http://0x7f000001:{allowed.port}/"] == 200
    assert "connected" not in reached.output["direct"].values()


async def test_requests_httpx_and_urllib_reach_an_allowed_target_through_the_proxy(
    usable: None, public_dir: Path
) -> None:
    context, cert = servers.self_signed(public_dir)
    code = """
    import ssl, urllib.request
    import httpx, requests
    def run(input, ctx):
        ca, plain, tls = input
        verified = ssl.create_default_context(cafile=ca)
        out = {
            "urllib": urllib.request.urlopen(plain, timeout=10).read().decode(),
            "urllib_tls": urllib.request.urlopen(tls, timeout=10, context=verified).read().decode(),
            "requests": requests.get(plain, timeout=10).text,
            "requests_tls": requests.get(tls, timeout=10, verify=ca).text,
        }
        with httpx.Client(verify=verified, timeout=10) as client:
            out["httpx"] = client.get(plain).text
            out["httpx_tls"] = client.get(tls).text
        return out
    """
    async with (
        servers.counter() as plain,
        servers.counter(tls=context) as tls,
        SandboxPool(SandboxMode.BWRAP, warm=1, allow_private=True) as pool,
    ):
        urls = [str(cert), f"http://localhost:{plain.port}/", f"https://127.0.0.1:{tls.port}/"]
        request = dataclasses.replace(
            step(code, urls), extra_paths=[SITE_PACKAGES, str(public_dir)], network=True
        )
        result = await pool.run("p", request)
    assert result.status is StepStatus.SUCCEEDED, result
    # The plain requests arrive in origin form; the TLS ones came through CONNECT tunnels.
    assert set(result.output.values()) == {"GET / HTTP/1.1"}, result.output
    assert (plain.hits, tls.hits) == (3, 3)


async def test_process_mode_refuses_network(usable: None) -> None:
    async with (
        servers.counter() as target,
        SandboxPool(SandboxMode.PROCESS, warm=0, allow_private=True) as pool,
    ):
        result = await pool.run("p", probe(target.port, network=True))
    assert result.status is StepStatus.FAILED
    assert "needs sandbox mode 'bwrap'" in str(result.error)
    assert target.hits == 0


async def tunnel(proxy: EgressProxy, target: str, payload: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_unix_connection(proxy.path)
    writer.write(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode() + payload)
    if payload:
        writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_the_proxy_tunnels_to_a_vetted_address_only() -> None:
    async with servers.echo() as echo:
        loose = EgressProxy(allow_private=True, denied=[(ip_address("127.0.0.1"), echo.port)])
        strict = EgressProxy(allow_private=False)
        open_ = EgressProxy(allow_private=True)
        for proxy in (loose, strict, open_):
            await proxy.start()
        paths = [proxy.path for proxy in (loose, strict, open_)]
        try:
            refused = await tunnel(loose, f"127.0.0.1:{echo.port}", b"x")
            private = await tunnel(strict, f"localhost:{echo.port}", b"x")
            malformed = await tunnel(open_, "127.0.0.1")
            echoed = await tunnel(open_, f"127.0.0.1:{echo.port}", b"ping")
        finally:
            for proxy in (loose, strict, open_):
                await proxy.aclose()
    assert refused.startswith(b"HTTP/1.1 403 ")
    assert b"Sluice's own database" in refused
    assert private.startswith(b"HTTP/1.1 403 ")
    assert b"localhost resolves to" in private
    assert malformed.startswith(b"HTTP/1.1 400 ")
    assert echoed == b"HTTP/1.1 200 Connection established\r\n\r\nping"
    assert echo.hits == 1
    assert not any(map(os.path.exists, paths))
