"""The `http` step's requests: vetted targets, pinned connections, bounded responses.

Invariants: unless `allow_private`, no connection is opened to an address the guard refuses
(`guard.address_refusal`). Each hop (the first request and every redirect) resolves its host
once, refuses the hop if *any* resolved address is refused, and connects to one of those
vetted addresses, never resolving again, so a DNS answer that changes between the check and
the connection (rebinding) cannot redirect it. The request still names the original host
(`Host`, TLS SNI and certificate verification), and the name picks its connection pool
(`_host_pools`). A response body is read only up to `max_response_bytes`; every failure,
httpx's included, surfaces as one `HttpStepError`. Header values are never logged or put in
errors.
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from ipaddress import ip_address
from types import TracebackType
from typing import Any

import httpx

from worker.steps import _bodies
from worker.steps._host_pools import PoolPerHost
from worker.steps.guard import IPAddress, address_refusal

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Sent only to the origin the user addressed, never to another one a redirect names.
_ORIGIN_HEADERS = ("authorization", "proxy-authorization", "cookie")
_BODY_HEADERS = ("content-type", "content-length", "transfer-encoding")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ERROR_SNIPPET = 200


@dataclass(frozen=True)
class HttpRequestSpec:
    """One request of an `http` step, its templates already rendered.

    `body`: None sends nothing, a str is sent as text/plain UTF-8, any other JSON value as
    application/json; a `content-type` in `headers` overrides either type.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any
    timeout_seconds: float


class HttpStepError(Exception):
    """One-line message fit for a run's step error.

    `output` is the response dict when a response was received (status >= 400), else None.
    """

    output: dict[str, Any] | None

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output


class HttpClient:
    """Sends `http` steps' requests over one pooled httpx client; `aclose` when done.

    Credentials in a URL (`https://user:pass@host/`) are refused: they belong in an
    `Authorization` header, which, like `Cookie`, is dropped when a redirect leaves the
    origin. The `Host` header always comes from the URL. Cookies are never stored, so one
    run's responses cannot reach another's requests. `vet` names the kind of an address
    that is refused (None: allowed); it is asked about every resolved address of every hop
    unless `allow_private`.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        max_response_bytes: int = 1_048_576,
        max_redirects: int = 5,
        vet: Callable[[IPAddress], str | None] = address_refusal,
    ) -> None:
        if max_response_bytes < 0 or max_redirects < 0:
            raise ValueError("max_response_bytes and max_redirects must not be negative")
        self._allow_private = allow_private
        self._max_response_bytes = max_response_bytes
        self._max_redirects = max_redirects
        self._vet = vet
        self._client = httpx.AsyncClient(
            transport=PoolPerHost(),
            headers={"User-Agent": "sluice"},
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            timeout=None,
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, spec: HttpRequestSpec) -> dict[str, Any]:
        """`{"status", "headers", "body"}` of the final response, redirects followed.

        Raises HttpStepError for a refused or malformed request, a failure to connect, a
        timeout (`timeout_seconds` covers everything, redirects and body included), a body
        over the size limit, too many redirects, or a final status of 400 or more.
        """
        method = spec.method.upper()
        if method not in METHODS:
            raise HttpStepError(f"unsupported HTTP method {spec.method!r}")
        url = _target(spec.url, "URL")
        headers = _headers(spec.headers)
        try:
            content = _bodies.encode(spec.body, headers)
        except _bodies.NotJson as exc:
            raise HttpStepError(f"body is not a JSON value: {exc}") from None
        timeout = spec.timeout_seconds
        if not (timeout > 0 and math.isfinite(timeout)):
            raise HttpStepError(f"timeout_seconds must be a positive number, not {timeout!r}")
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(method, url, headers, content)
        except TimeoutError:
            raise HttpStepError(f"{method} {url.host} timed out after {timeout:g}s") from None

    async def _follow(
        self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes | None
    ) -> dict[str, Any]:
        redirects = 0
        while True:
            response = await self._open(method, url, headers, content)
            try:
                status = response.status_code
                location = response.headers.get("location")
                if status not in _REDIRECTS or location is None:
                    body = b"" if method == "HEAD" else await self._read(response, url)
                    return _result(url, response, body)
            finally:
                await response.aclose()
            if redirects == self._max_redirects:
                raise HttpStepError(
                    f"{method} {url.host}: more than {self._max_redirects} redirects "
                    f"(a redirect loop?)"
                )
            redirects += 1
            try:
                next_url = _target(str(url.join(location)), "redirect URL")
            except httpx.InvalidURL:
                raise HttpStepError(f"{url.host} redirected to an invalid URL") from None
            if _becomes_get(status, method):
                method, content = "GET", None
                headers = headers.copy()
                for name in _BODY_HEADERS:
                    headers.pop(name, None)
            if _origin(next_url) != _origin(url):
                headers = headers.copy()
                for name in _ORIGIN_HEADERS:
                    headers.pop(name, None)
            url = next_url

    async def _open(
        self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes | None
    ) -> httpx.Response:
        """The response to one hop, its body still unread, from the first vetted address that
        accepts a connection."""
        host = url.raw_host.decode("ascii")
        failure = ""
        for address in await self._addresses(url):
            try:
                request = self._client.build_request(
                    method,
                    url.copy_with(host=str(address), fragment=None),
                    headers=[(b"Host", url.netloc), *headers.raw],
                    content=content,
                    extensions={"sni_hostname": host},
                )
                return await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                failure = f"cannot connect to {url.host} ({address}): {_reason(exc)}"
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                raise HttpStepError(f"{method} {url.host} failed: {_reason(exc)}") from None
        raise HttpStepError(failure)

    async def _addresses(self, url: httpx.URL) -> list[IPAddress]:
        """Every address `url`'s host resolves to, once; refused if any of them is."""
        try:
            addresses = [ip_address(url.raw_host.decode("ascii"))]
            literal = True
        except ValueError:
            addresses = await _resolve(url)
            literal = False
        if not self._allow_private:
            for address in addresses:
                kind = self._vet(address)
                if kind is not None:
                    target = url.host if literal else f"{url.host} resolves to {address}"
                    raise HttpStepError(
                        f"refused: {target}, which is {kind} (SLUICE_HTTP_ALLOW_PRIVATE is off)"
                    )
        return addresses

    async def _read(self, response: httpx.Response, url: httpx.URL) -> bytes:
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_response_bytes:
                    raise HttpStepError(
                        f"response from {url.host} is larger than the limit of "
                        f"{self._max_response_bytes} bytes"
                    )
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise HttpStepError(f"reading the response from {url.host}: {_reason(exc)}") from None
        return bytes(body)


async def _resolve(url: httpx.URL) -> list[IPAddress]:
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            url.raw_host.decode("ascii"), port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise HttpStepError(f"cannot resolve {url.host}: {_reason(exc)}") from None
    addresses = list(dict.fromkeys(ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise HttpStepError(f"cannot resolve {url.host}: no addresses")
    return addresses


def _target(text: str, what: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise HttpStepError(f"invalid {what}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise HttpStepError(f"{what} must be http or https, not {url.scheme or 'relative'!r}")
    if not url.raw_host:
        raise HttpStepError(f"{what} has no host")
    if url.userinfo:
        raise HttpStepError(f"{what} must not carry credentials; use an Authorization header")
    return url


def _result(url: httpx.URL, response: httpx.Response, body: bytes) -> dict[str, Any]:
    """The step output for a final response; raised in an HttpStepError when it is an error."""
    output = {
        "status": response.status_code,
        "headers": dict(response.headers.items()),
        "body": _bodies.decode(body, response.headers.get("content-type", "")),
    }
    if response.status_code >= 400:
        text = " ".join(body[: _ERROR_SNIPPET * 4].decode(errors="replace").split())
        raise HttpStepError(
            f"HTTP {response.status_code} from {url.host}: {text[:_ERROR_SNIPPET]}", output
        )
    return output


def _becomes_get(status: int, method: str) -> bool:
    """Whether a redirect is followed with a bodiless GET, as browsers do."""
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


def _headers(headers: Mapping[str, str]) -> httpx.Headers:
    raw: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise HttpStepError(f"invalid header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise HttpStepError(f"header {name!r} has a line break or NUL in its value")
        if name.lower() != "host":
            raw.append((name.encode("ascii"), value.encode()))
    return httpx.Headers(raw)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__
