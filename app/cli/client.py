"""A blocking HTTP client of the Sluice API, for the command line: one method per route.

It talks HTTP only (never the database or the web app's modules). Failures are exceptions:
`MissingKey` and `BadUrl` before anything is sent, `Unreachable` when no answer comes,
`ApiError` for an answer of 4xx/5xx (with the server's message and problems), and
`UnexpectedAnswer` for a success that is not the JSON the route promises.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

JsonObject = dict[str, Any]

DEFAULT_TIMEOUT = 30.0
WEBHOOK_ATTEMPTS = 5
"""A webhook is sent up to this many times, with the same Idempotency-Key."""
# How a flow with a webhook secret wants its requests signed: an HMAC-SHA256 of the body.
SIGNATURE_HEADER = "X-Sluice-Signature"
TIMESTAMP_HEADER = "X-Sluice-Timestamp"

# A sync webhook holds the request until the run replies; the server bounds that wait.
_UNTIL_REPLY = httpx.Timeout(DEFAULT_TIMEOUT, read=None)


class ClientError(Exception):
    """The request could not be made or was refused."""


class MissingKey(ClientError):
    """The route needs a key the client was not given."""

    def __init__(self, *, admin: bool) -> None:
        super().__init__("no admin API key" if admin else "no API key")
        self.admin = admin


class BadUrl(ClientError):
    """The server URL is not an http(s) URL."""


class Unreachable(ClientError):
    """No answer: the connection failed or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


class ApiError(ClientError):
    """The server answered 4xx/5xx: its `error` message and any `problems`."""

    def __init__(
        self, status: int, message: str, problems: list[dict[str, str]], body: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems
        self.body = body


class UnexpectedAnswer(ClientError):
    """A success whose body is not the JSON object the route answers."""


@dataclass(frozen=True)
class Reply:
    """A webhook's answer as it came: the flow decides its status, headers and body."""

    status: int
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Client:
    """One server at `url`; project routes send `api_key`, administration `admin_key`."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadUrl(f"not an http(s) URL: {url!r} (expected http://HOST:PORT)")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._admin_key = admin_key
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "sluice-cli"},
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Flows

    def deploy_flow(self, name: str, definition: JsonObject) -> JsonObject:
        return self._json("PUT", f"/api/v1/flows/{_segment(name)}", json=definition)

    def list_flows(self) -> JsonObject:
        """`{"flows": [...]}`."""
        return self._json("GET", "/api/v1/flows")

    def get_flow(self, name: str, *, defaults: bool = True) -> JsonObject:
        """The flow; `defaults=False`: its definition without the fields at their default."""
        params = None if defaults else {"defaults": "false"}
        return self._json("GET", f"/api/v1/flows/{_segment(name)}", params=params)

    def set_flow_enabled(self, name: str, enabled: bool) -> JsonObject:
        action = "enable" if enabled else "disable"
        return self._json("POST", f"/api/v1/flows/{_segment(name)}/{action}")

    def list_schedules(self) -> JsonObject:
        return self._json("GET", "/api/v1/schedules")

    def delete_flow(self, name: str) -> None:
        self._send("DELETE", f"/api/v1/flows/{_segment(name)}")

    # Secrets and vars

    def put_named(self, kind: str, name: str, value: str) -> JsonObject:
        """Set a secret or var (`kind`: ``secrets`` or ``vars``)."""
        return self._json("PUT", f"/api/v1/{kind}/{_segment(name)}", json={"value": value})

    def list_named(self, kind: str) -> JsonObject:
        return self._json("GET", f"/api/v1/{kind}")

    def get_var(self, name: str) -> JsonObject:
        return self._json("GET", f"/api/v1/vars/{_segment(name)}")

    def delete_named(self, kind: str, name: str) -> None:
        self._send("DELETE", f"/api/v1/{kind}/{_segment(name)}")

    # Webhooks

    def trigger(self, flow_id: str, data: Any, *, secret: str | None = None) -> JsonObject:
        """Start a run (the answer, 202, names it); `secret` signs the body for the flow."""
        response = self._webhook(f"/webhooks/{_segment(flow_id)}", data, secret)
        if response.status_code >= 400:
            raise api_error(response.status_code, response.content, response.reason_phrase)
        return self._body(response)

    def trigger_sync(self, flow_id: str, data: Any, *, secret: str | None = None) -> Reply:
        """Start a run and wait for its reply, whatever its status (the server bounds the wait)."""
        path = f"/webhooks/{_segment(flow_id)}/sync"
        response = self._webhook(path, data, secret, timeout=_UNTIL_REPLY)
        return Reply(response.status_code, response.headers, response.content)

    def _webhook(
        self, path: str, data: Any, secret: str | None, *, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        """POST a webhook as a careful client does: with an Idempotency-Key, sent again with
        the same key after a 503 or a lost answer (the server then makes no second run)."""
        request = _webhook_body(data, secret)
        request["headers"]["Idempotency-Key"] = uuid.uuid4().hex
        for attempt in range(WEBHOOK_ATTEMPTS):
            last = attempt == WEBHOOK_ATTEMPTS - 1
            try:
                response = self._send("POST", path, **request, timeout=timeout, check=False)
            except Unreachable:
                if last:
                    raise
                time.sleep(_backoff(attempt, None))
                continue
            if response.status_code != 503 or last:
                return response
            time.sleep(_backoff(attempt, response.headers.get("retry-after")))
        raise AssertionError("unreachable")

    # Runs

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JsonObject:
        """A page of runs, newest first: `{"runs": [...], "next_cursor": ...}`."""
        query = {"flow": flow, "status": status, "limit": limit, "cursor": cursor}
        params = {key: str(value) for key, value in query.items() if value is not None}
        return self._json("GET", "/api/v1/runs", params=params)

    def get_run(self, run_id: str) -> JsonObject:
        return self._json("GET", f"/api/v1/runs/{_segment(run_id)}")

    def cancel_run(self, run_id: str) -> JsonObject:
        return self._json("POST", f"/api/v1/runs/{_segment(run_id)}/cancel")

    def retry_run(self, run_id: str, body: JsonObject | None = None) -> JsonObject:
        return self._json("POST", f"/api/v1/runs/{_segment(run_id)}/retry", json=body)

    def replay_run(self, run_id: str, body: JsonObject) -> JsonObject:
        return self._json("POST", f"/api/v1/runs/{_segment(run_id)}/replay", json=body)

    def bulk_retry(self, body: JsonObject) -> JsonObject:
        """Retry every run the filter matches: `{"count", "batch_id", "dry_run"}`."""
        return self._json("POST", "/api/v1/runs/retry", json=body)

    def resume_step(self, run_id: str, step: str, body: Any) -> JsonObject:
        """Resume a run's waiting step: `body` is a decision or the step's output."""
        path = f"/api/v1/runs/{_segment(run_id)}/steps/{_segment(step)}/resume"
        return self._json("POST", path, json=body)

    # Workers and administration

    def list_workers(self) -> JsonObject:
        """`{"workers": [...]}` (every project's workers: the admin key's view)."""
        return self._json("GET", "/api/v1/workers", admin=True)

    def create_project(self, name: str, concurrency_limit: int | None = None) -> JsonObject:
        body: JsonObject = {"name": name}
        if concurrency_limit is not None:
            body["concurrency_limit"] = concurrency_limit
        return self._json("POST", "/api/v1/projects", json=body, admin=True)

    def update_project(self, project: str, changes: JsonObject) -> JsonObject:
        """Change a project (named by its id or its name)."""
        path = f"/api/v1/projects/{_segment(project)}"
        return self._json("PATCH", path, json=changes, admin=True)

    def create_api_key(self, project: str, name: str | None = None) -> JsonObject:
        body = {} if name is None else {"name": name}
        path = f"/api/v1/projects/{_segment(project)}/api-keys"
        return self._json("POST", path, json=body, admin=True)

    def call(
        self,
        method: str,
        path: str,
        *segments: str,
        admin: bool = False,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> JsonObject:
        """Any JSON operation: `path` with ``{}`` for each of `segments`, which are quoted
        as one path segment each (for commands that need no method of their own here)."""
        quoted = path.format(*(_segment(each) for each in segments))
        return self._json(method, quoted, admin=admin, json=json, params=params)

    # Plumbing

    def _json(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        return self._body(self._send(method, path, **kwargs))

    @staticmethod
    def _body(response: httpx.Response) -> JsonObject:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("content-type", "no content type")
            raise UnexpectedAnswer(
                f"{response.request.method} {response.request.url} answered HTTP"
                f" {response.status_code} with {kind},"
                " not a JSON object: is this a Sluice server?"
            )
        return body

    def _send(
        self,
        method: str,
        path: str,
        *,
        admin: bool = False,
        check: bool = True,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        key = self._admin_key if admin else self._api_key
        if key is None:
            raise MissingKey(admin=admin)
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                content=content,
                params=params,
                headers={**(headers or {}), "Authorization": f"Bearer {key}"},
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TimeoutException:
            raise Unreachable(self.url, "no answer in time") from None
        except httpx.TransportError as exc:
            raise Unreachable(self.url, _reason(exc)) from None
        if check and response.status_code >= 400:
            raise api_error(response.status_code, response.content, response.reason_phrase)
        return response


def api_error(status: int, content: bytes, reason_phrase: str = "") -> ApiError:
    """The error an answer of `status` carries: the server's `{"error", "problems"}` if any."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        problems = [
            {"path": str(p.get("path", "")), "message": str(p.get("message", ""))}
            for p in body.get("problems") or []
            if isinstance(p, dict)
        ]
        return ApiError(status, body["error"], problems, body)
    text = content.decode("utf-8", errors="replace").strip()
    first_line = text.splitlines()[0][:200] if text else ""
    message = f"HTTP {status} {reason_phrase}".strip() + (f": {first_line}" if first_line else "")
    return ApiError(status, message, [], body)


def _webhook_body(data: Any, secret: str | None) -> dict[str, Any]:
    """The request body, signed with the flow's webhook secret when it has one."""
    content = json.dumps(data).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        # Signed with a timestamp, so a captured request cannot be replayed later.
        stamp = str(int(time.time()))
        signed = stamp.encode() + b"." + content
        digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
        headers[TIMESTAMP_HEADER] = stamp
    return {"content": content, "headers": headers}


def _backoff(attempt: int, retry_after: str | None) -> float:
    """Seconds before the next try: the server's Retry-After when it gives one (at most
    5 s), else 0.5, 1, 2, 4 s."""
    if retry_after is not None and retry_after.isdigit():
        return min(5.0, float(retry_after))
    return float(0.5 * 2**attempt)


def _segment(value: str) -> str:
    """`value` as one path segment (a name can never reach another route)."""
    return quote(value, safe="")


def _reason(exc: httpx.TransportError) -> str:
    """`[Errno 111] Connection refused` → `connection refused`."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip()) or type(exc).__name__
    return text[0].lower() + text[1:]
