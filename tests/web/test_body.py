"""Hostile bodies: JSON nested too deep or with too long a number is a 400 naming the limit,
a body that does not arrive in time a 408, a client gone mid-body a debug line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.testclient import TestClient
from starlette.types import Message

from app.web import body
from app.web.errors import ApiError
from tests.web.apps import ADMIN, app_client, app_settings

ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
FLOW_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url) as client:
        yield client


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def project_key(client: TestClient) -> dict[str, str]:
    created = client.post("/api/v1/projects", json={"name": "acme"}, headers=ADMIN_HEADERS)
    return {"authorization": f"Bearer {created.json()['api_key']}"}


@pytest.mark.parametrize(
    ("document", "limit", "says"),
    [
        (deep(5000), 64, "nested deeper than 64"),
        (b'{"name": "a", "n": [' * 40 + b"1" + b"]}" * 40, 64, "nested deeper than 64"),
        (b'{"name": "acme", "n": ' + b"9" * 5000 + b"}", 1000, "more than 1000 digits"),
    ],
)
def test_over_deep_or_over_long_json_is_a_400_naming_the_limit(
    client: TestClient, document: bytes, limit: int, says: str
) -> None:
    key = {**project_key(client), "content-type": "application/json"}
    for method, path, headers in [
        ("POST", "/api/v1/projects", ADMIN_HEADERS),
        ("PUT", "/api/v1/flows/hello", key),
        ("POST", f"/webhooks/{FLOW_ID}", {"content-type": "application/json"}),
        ("POST", f"/webhooks/{FLOW_ID}/sync", {"content-type": "application/json"}),
    ]:
        response = client.request(method, path, content=document, headers=headers)

        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert says in response.json()["error"]
        assert response.json()["limit"] == limit


def test_the_limits_are_settings(database_url: str) -> None:
    with app_client(database_url, max_json_depth=3, max_json_number_digits=20) as client:
        ok = client.post("/api/v1/projects", json={"name": "a", "x": [[1]]}, headers=ADMIN_HEADERS)
        deeper = client.post("/api/v1/projects", content=b'{"x": [[[1]]]}', headers=ADMIN_HEADERS)
        longer = client.post(
            "/api/v1/projects", content=b'{"x": 1' + b"0" * 20 + b"}", headers=ADMIN_HEADERS
        )
    assert ok.status_code == 422  # within the limits: the unknown field is the problem
    assert (deeper.status_code, deeper.json()["limit"]) == (400, 3)
    assert (longer.status_code, longer.json()["limit"]) == (400, 20)


def test_brackets_and_digits_inside_strings_do_not_count(client: TestClient) -> None:
    name = '[[[[{"' * 50 + "1" * 2000
    response = client.post("/api/v1/projects", json={"name": name}, headers=ADMIN_HEADERS)
    assert response.status_code == 422, response.text  # too long a name, but JSON it is


@pytest.mark.parametrize(
    "document",
    [b"[1e999]", b"[NaN]", b"[-Infinity]", b'{"name": "\\ud800"}', b'{"name": "a\\u0000"}'],
)
def test_what_postgres_cannot_store_is_a_400(client: TestClient, document: bytes) -> None:
    response = client.post("/api/v1/projects", content=document, headers=ADMIN_HEADERS)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"


def test_a_webhook_body_not_declared_json_beyond_the_limits_is_text(client: TestClient) -> None:
    response = client.post(f"/webhooks/{FLOW_ID}", content=deep(5000))
    assert response.status_code == 404  # read as text, then: no such flow


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def test_random_bodies_are_a_json_4xx_or_accepted_never_a_500(client: TestClient) -> None:
    key = {**project_key(client), "content-type": "application/json"}

    @hypothesis.settings(max_examples=60, deadline=None, database=None)
    @hypothesis.given(
        document=st.one_of(
            _json_values.map(lambda value: json.dumps(value).encode()),
            st.integers(min_value=1, max_value=3000).map(deep),
            st.integers(min_value=1, max_value=3000).map(lambda n: b"[" + b"7" * n + b"]"),
            st.binary(max_size=200),
        ),
        path=st.sampled_from(["/api/v1/projects", "/api/v1/flows/f", f"/webhooks/{FLOW_ID}"]),
    )
    def check(document: bytes, path: str) -> None:
        method = "PUT" if "flows" in path else "POST"
        headers = ADMIN_HEADERS if "projects" in path else key
        response = client.request(method, path, content=document, headers=headers)
        assert response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json() or response.status_code < 300

    check()


def _request(receive: Any, **settings: Any) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [],
        "state": {"settings": app_settings("postgresql://unused", **settings)},
    }
    return Request(scope, receive)


async def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    async def trickle() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}

    request = _request(trickle, http_body_timeout_seconds=0.3)
    with pytest.raises(ApiError) as refused:
        await asyncio.wait_for(body.read_limited(request), 5)
    assert refused.value.status == 408
    assert "longer than 0.3 s" in refused.value.message


def test_a_client_gone_mid_body_is_a_debug_line_not_an_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    messages: Iterator[Message] = iter(
        [{"type": "http.request", "body": b'{"na', "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        await client.app(scope, receive, send)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/projects",
        "raw_path": b"/api/v1/projects",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {ADMIN}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": dict(client.app_state),
    }
    caplog.set_level(logging.DEBUG, logger="app.web.errors")
    asyncio.run(call())

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("disconnected" in r.getMessage() for r in caplog.records)
