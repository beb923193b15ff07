"""The `http` step's client against a real local server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ops.ports import free_port
from tests.worker.http_server import Server
from worker.steps import HttpClient, HttpRequestSpec, HttpStepError, IPAddress

LOOPBACK = IPv4Address("127.0.0.1")


def spec(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 10,
) -> HttpRequestSpec:
    return HttpRequestSpec(method, url, headers or {}, body, timeout)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    async with HttpClient(allow_private=True) as client:
        yield client


@pytest.fixture
async def strict() -> AsyncIterator[HttpClient]:
    async with HttpClient(allow_private=False) as client:
        yield client


@pytest.fixture
def closed_port() -> int:
    return free_port()


async def failure(client: HttpClient, request: HttpRequestSpec) -> HttpStepError:
    with pytest.raises(HttpStepError) as caught:
        await client.send(request)
    return caught.value


# Responses


async def test_a_json_response_is_decoded(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/json")))
    assert result["status"] == 200
    assert result["body"] == {"hello": "world"}
    assert result["headers"]["x-custom"] == "yes"
    assert result["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in result["headers"])


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain", "plain words", "plain words"),
        ("text/plain", '{"a": 1}', '{"a": 1}'),
        ("application/problem+json", '{"a": 1}', {"a": 1}),
        ("application/json; charset=utf-8", "[1, true]", [1, True]),
        ("application/json", "{not json", "{not json"),
        ("application/json", '{"a": NaN}', '{"a": NaN}'),
    ],
)
async def test_a_body_is_json_only_when_typed_and_parsable(
    server: Server, client: HttpClient, content_type: str, body: str, expected: Any
) -> None:
    url = server.url("/typed")
    result = await client.send(spec(url + "?" + urlencode({"type": content_type, "body": body})))
    assert result["body"] == expected


async def test_a_text_response_is_kept_as_text(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/text")))
    assert result["body"] == "plain words"
    assert result["headers"]["content-type"] == "text/plain; charset=utf-8"


async def test_undecodable_text_is_replaced_not_fatal(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/typed?type=text/plain&body=%FF")))
    assert result["body"] == "\N{REPLACEMENT CHARACTER}"


async def test_head_has_no_body(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/json"), "HEAD"))
    assert result["status"] == 200
    assert result["body"] is None
    assert server.seen == ["/json"]


# Requests


@pytest.mark.parametrize("body", [{"a": [1, 2], "b": None}, [1, "two"], 3.5, True, 0])
async def test_a_json_value_is_posted_as_json(
    server: Server, client: HttpClient, body: Any
) -> None:
    result = await client.send(spec(server.url("/echo"), "POST", body=body))
    echoed = result["body"]
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == body


async def test_a_string_is_posted_as_utf8_text(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/echo"), "PUT", body="héllo {x}"))
    echoed = result["body"]
    assert echoed["method"] == "PUT"
    assert echoed["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert echoed["body"] == "héllo {x}"


async def test_a_content_type_header_overrides_the_default(
    server: Server, client: HttpClient
) -> None:
    headers = {"Content-Type": "application/xml"}
    result = await client.send(spec(server.url("/echo"), "POST", headers, "<a/>"))
    assert result["body"]["headers"]["content-type"] == "application/xml"
    assert result["body"]["body"] == "<a/>"


async def test_no_body_sends_none(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/echo"), "DELETE"))
    assert result["body"]["method"] == "DELETE"
    assert result["body"]["body"] == ""
    assert "content-type" not in result["body"]["headers"]


async def test_headers_are_sent_with_a_default_user_agent(
    server: Server, client: HttpClient
) -> None:
    headers = {"X-Token": "t0ken", "Accept": "application/json"}
    sent = (await client.send(spec(server.url("/echo"), headers=headers)))["body"]["headers"]
    assert sent["x-token"] == "t0ken"
    assert sent["accept"] == "application/json"
    assert sent["user-agent"] == "sluice"
    assert sent["host"] == f"127.0.0.1:{server.port}"

    headers = {"user-agent": "mine/1.0"}
    sent = (await client.send(spec(server.url("/echo"), headers=headers)))["body"]["headers"]
    assert sent["user-agent"] == "mine/1.0"


async def test_the_host_header_names_the_host_not_the_address(
    server: Server, client: HttpClient
) -> None:
    url = server.url("/echo", host="localhost")
    sent = (await client.send(spec(url, headers={"Host": "evil.example"})))["body"]["headers"]
    assert sent["host"] == f"localhost:{server.port}"


async def test_connections_are_reused_per_host_name(server: Server, client: HttpClient) -> None:
    first = await client.send(spec(server.url("/echo")))
    again = await client.send(spec(server.url("/echo")))
    other = await client.send(spec(server.url("/echo", host="localhost")))
    assert again["body"]["client_port"] == first["body"]["client_port"]
    # Same address, another name: never a connection opened for the first name.
    assert other["body"]["client_port"] != first["body"]["client_port"]


async def test_cookies_are_never_kept(server: Server, client: HttpClient) -> None:
    set_cookie = await client.send(spec(server.url("/cookie")))
    assert "session=abc" in set_cookie["headers"]["set-cookie"]
    sent = (await client.send(spec(server.url("/echo"))))["body"]["headers"]
    assert "cookie" not in sent


# Errors


@pytest.mark.parametrize("code", [404, 500])
async def test_an_error_status_raises_with_the_response(
    server: Server, client: HttpClient, code: int
) -> None:
    error = await failure(client, spec(server.url(f"/status/{code}")))
    assert error.output is not None
    assert error.output["status"] == code
    assert error.output["body"].startswith("failed\nbadly x")
    message = str(error)
    assert message == f"HTTP {code} from 127.0.0.1: failed badly {'x' * 187}"
    assert "\n" not in message


async def test_a_timeout_is_reported(server: Server, client: HttpClient) -> None:
    error = await failure(client, spec(server.url("/hang"), timeout=0.3))
    assert str(error) == "GET 127.0.0.1 timed out after 0.3s"
    assert error.output is None
    assert server.seen == ["/hang"]


async def test_a_body_at_the_limit_is_read(server: Server) -> None:
    async with HttpClient(allow_private=True, max_response_bytes=1000) as client:
        result = await client.send(spec(server.url("/sized/1000")))
    assert result["body"] == "x" * 1000


@pytest.mark.parametrize("path", ["/sized/1001", "/endless", "/bomb"])
async def test_a_body_over_the_limit_is_refused(server: Server, path: str) -> None:
    async with HttpClient(allow_private=True, max_response_bytes=1000) as client:
        error = await failure(client, spec(server.url(path)))
    assert str(error) == "response from 127.0.0.1 is larger than the limit of 1000 bytes"


async def test_a_refused_connection_is_reported(client: HttpClient, closed_port: int) -> None:
    error = await failure(client, spec(f"http://127.0.0.1:{closed_port}/"))
    assert str(error).startswith("cannot connect to 127.0.0.1 (127.0.0.1): ")
    assert error.output is None


async def test_a_dropped_connection_is_reported(client: HttpClient) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        error = await failure(client, spec(f"http://127.0.0.1:{port}/"))
    assert str(error).startswith("GET 127.0.0.1 failed: ")


async def test_a_body_cut_short_is_reported(client: HttpClient) -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(cut_short, "127.0.0.1", 0)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        error = await failure(client, spec(f"http://127.0.0.1:{port}/"))
    assert str(error).startswith("reading the response from 127.0.0.1: ")


async def test_an_unresolvable_host_is_reported(client: HttpClient) -> None:
    error = await failure(client, spec("http://no-such-host.invalid/"))
    assert str(error).startswith("cannot resolve no-such-host.invalid: ")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/", "URL must be http or https, not 'ftp'"),
        ("file:///etc/passwd", "URL must be http or https, not 'file'"),
        ("/relative", "URL must be http or https, not 'relative'"),
        ("http:///path", "URL has no host"),
        ("http://[nope]/", "invalid URL: Invalid IPv6 address: '[nope]'"),
        (
            "http://user:pw@127.0.0.1/",
            "URL must not carry credentials; use an Authorization header",
        ),
    ],
)
async def test_a_bad_url_is_refused(client: HttpClient, url: str, message: str) -> None:
    assert str(await failure(client, spec(url))) == message


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (spec("http://127.0.0.1/", "TRACE"), "unsupported HTTP method 'TRACE'"),
        (spec("http://127.0.0.1/", "POST", body={1, 2}), "body is not a JSON value"),
        (spec("http://127.0.0.1/", "POST", body=float("nan")), "body is not a JSON value"),
        (spec("http://127.0.0.1/", headers={"X-A": "a\r\nX-B: b"}), "header 'X-A' has a line"),
        (spec("http://127.0.0.1/", headers={"Bad Name": "a"}), "invalid header name 'Bad Name'"),
        (spec("http://127.0.0.1/", timeout=0), "timeout_seconds must be a positive number"),
    ],
)
async def test_a_bad_request_is_refused_before_sending(
    client: HttpClient, request_: HttpRequestSpec, message: str
) -> None:
    assert str(await failure(client, request_)).startswith(message)


# Redirects


async def test_redirects_are_followed(server: Server, client: HttpClient) -> None:
    result = await client.send(spec(server.url("/chain/5")))
    assert result == {
        "status": 200,
        "headers": result["headers"],
        "body": {"arrived": True},
    }
    assert server.seen == [f"/chain/{left}" for left in range(5, -1, -1)]


async def test_too_many_redirects_are_refused(server: Server) -> None:
    async with HttpClient(allow_private=True, max_redirects=2) as client:
        error = await failure(client, spec(server.url("/loop")))
    assert str(error) == "GET 127.0.0.1: more than 2 redirects (a redirect loop?)"
    assert server.seen == ["/loop"] * 3


@pytest.mark.parametrize(
    ("code", "method", "then"),
    [(303, "POST", "GET"), (303, "PUT", "GET"), (302, "POST", "GET"), (301, "POST", "GET")],
)
async def test_a_redirect_that_changes_the_method_drops_the_body(
    server: Server, client: HttpClient, code: int, method: str, then: str
) -> None:
    url = server.url(f"/redirect?to=/echo&code={code}")
    echoed = (await client.send(spec(url, method, body={"a": 1})))["body"]
    assert echoed["method"] == then
    assert echoed["body"] == ""
    assert "content-type" not in echoed["headers"]


@pytest.mark.parametrize(("code", "method"), [(307, "POST"), (308, "PUT"), (302, "PATCH")])
async def test_a_redirect_that_keeps_the_method_keeps_the_body(
    server: Server, client: HttpClient, code: int, method: str
) -> None:
    url = server.url(f"/redirect?to=/echo&code={code}")
    echoed = (await client.send(spec(url, method, body={"a": 1})))["body"]
    assert echoed["method"] == method
    assert json.loads(echoed["body"]) == {"a": 1}
    assert echoed["headers"]["content-type"] == "application/json"


async def test_credentials_stay_with_their_origin(server: Server, client: HttpClient) -> None:
    headers = {"Authorization": "Bearer s3cret", "Cookie": "a=b", "X-Trace": "1"}
    same = server.url("/redirect?" + urlencode({"to": server.url("/echo")}))
    sent = (await client.send(spec(same, headers=headers)))["body"]["headers"]
    assert sent["authorization"] == "Bearer s3cret"
    assert sent["cookie"] == "a=b"

    other = server.url("/redirect?" + urlencode({"to": server.url("/echo", host="localhost")}))
    sent = (await client.send(spec(other, headers=headers)))["body"]["headers"]
    assert "authorization" not in sent
    assert "cookie" not in sent
    assert sent["x-trace"] == "1"
    assert sent["host"] == f"localhost:{server.port}"


async def test_a_redirect_to_another_scheme_is_refused(server: Server, client: HttpClient) -> None:
    url = server.url("/redirect?to=file:///etc/passwd")
    error = await failure(client, spec(url))
    assert str(error) == "redirect URL must be http or https, not 'file'"


async def test_every_hop_is_vetted(server: Server) -> None:
    asked: list[IPAddress] = []

    def only_127_0_0_1(address: IPAddress) -> str | None:
        asked.append(address)
        return None if address == LOOPBACK else "forbidden"

    async with HttpClient(allow_private=False, vet=only_127_0_0_1) as client:
        result = await client.send(spec(server.url("/redirect?to=/echo")))
        assert result["status"] == 200
        assert asked == [LOOPBACK, LOOPBACK]

        # Served by nothing: without a vet on this hop it would be "cannot connect".
        url = server.url("/redirect?" + urlencode({"to": server.url("/echo", host="127.0.0.2")}))
        error = await failure(client, spec(url))
    assert str(error) == "refused: 127.0.0.2, which is forbidden (SLUICE_HTTP_ALLOW_PRIVATE is off)"
    assert server.seen == ["/redirect", "/echo", "/redirect"]


# Private targets


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("127.1", "loopback"),
        ("2130706433", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
async def test_a_private_target_is_refused_without_connecting(
    server: Server, strict: HttpClient, host: str, kind: str
) -> None:
    error = await failure(strict, spec(server.url("/echo", host=host)))
    assert str(error).startswith(f"refused: {host.strip('[]')}")
    assert str(error).endswith(f", which is {kind} (SLUICE_HTTP_ALLOW_PRIVATE is off)")
    assert server.seen == []


async def test_allow_private_reaches_loopback(server: Server, client: HttpClient) -> None:
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
        assert (await client.send(spec(server.url("/json", host=host))))["status"] == 200
    assert server.seen == ["/json"] * 3


# TLS


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_tls_names_the_host_and_verifies_its_certificate(
    client: HttpClient, self_signed: tuple[Path, Path]
) -> None:
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(self_signed[1], self_signed[0])
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        error = await failure(client, spec(f"https://localhost:{port}/"))
    # Connected to the vetted address, yet the server was asked for (and checked as) the name.
    assert names == ["localhost"]
    assert str(error).startswith("cannot connect to localhost (127.0.0.1): ")
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
