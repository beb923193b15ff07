"""`POST /webhooks/{flow_id}`: which flows it starts, the bodies it accepts, signatures, and
the version a run is pinned to."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from tests.flows.helpers import code, signature, started_run, step
from tests.flows.stack import Stack, running_stack

ECHO: dict[str, Any] = {
    "name": "echo",
    "steps": [{"id": "reply", "type": "respond", "body": "{{ trigger.body }}"}],
}


async def run_count(stack: Stack) -> int:
    response = await stack.client.get("/api/v1/runs")
    assert response.status_code == 200, response.text
    return len(response.json()["runs"])


async def test_only_live_enabled_flows_can_be_triggered(stack: Stack) -> None:
    flow = await stack.deploy(ECHO)
    unknown = "00000000-0000-4000-8000-000000000000"

    for path in (f"/webhooks/{unknown}", f"/webhooks/{unknown}/sync", "/webhooks/not-a-uuid"):
        missing = await stack.client.post(path, json={})
        assert missing.status_code == 404, path
        assert "error" in missing.json()

    assert (await stack.client.post(f"/api/v1/flows/{flow['name']}/disable")).status_code == 200
    disabled = await stack.trigger(flow["id"], {})
    assert disabled.status_code == 404
    assert disabled.json()["error"] == f"no enabled flow {flow['id']}"
    assert await run_count(stack) == 0

    assert (await stack.client.post(f"/api/v1/flows/{flow['name']}/enable")).status_code == 200
    assert (await stack.trigger(flow["id"], {})).status_code == 202

    assert (await stack.client.delete(f"/api/v1/flows/{flow['name']}")).status_code == 204
    assert (await stack.trigger(flow["id"], {})).status_code == 404
    assert await run_count(stack) == 1


async def test_bodies_over_the_limit_are_refused_with_413(database_url: str) -> None:
    async with running_stack(database_url, max_body_bytes=2048) as stack:
        flow = await stack.deploy(ECHO)
        big = json.dumps({"pad": "x" * 3000}).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * 1000

        declared = await stack.client.post(
            f"/webhooks/{flow['id']}", content=big, headers={"content-type": "application/json"}
        )
        streamed = await stack.client.post(f"/webhooks/{flow['id']}/sync", content=chunks())
        deploy = await stack.client.put(
            "/api/v1/flows/echo", json={**ECHO, "description": "x" * 1999}
        )
        fits = await stack.trigger(flow["id"], {"pad": "x" * 1000}, sync=True)

        assert declared.status_code == 413
        assert declared.json() == {"error": "request body exceeds 2048 bytes", "limit": 2048}
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert deploy.status_code == 413
        assert fits.status_code == 200
        assert fits.json() == {"pad": "x" * 1000}
        assert await run_count(stack) == 1


async def test_bodies_are_json_when_they_parse_and_text_otherwise(stack: Stack) -> None:
    flow = await stack.deploy(ECHO)
    url = f"/webhooks/{flow['id']}/sync"

    malformed = await stack.client.post(
        url, content=b'{"a": ', headers={"content-type": "application/json"}
    )
    vendor = await stack.client.post(
        url, content=b"{oops", headers={"content-type": "application/vnd.api+json"}
    )
    text = await stack.client.post(
        url, content=b"just words", headers={"content-type": "text/plain"}
    )
    undeclared = await stack.client.post(url, content=b'{"n": 1}')
    empty = await stack.client.post(url)
    query = await stack.client.post(url + "?source=test", json=[1, 2])

    assert malformed.status_code == 400
    assert malformed.json()["error"].startswith("malformed JSON")
    assert vendor.status_code == 400
    assert text.status_code == 200
    assert text.text == "just words"
    assert undeclared.json() == {"n": 1}
    assert empty.json() == {}
    assert query.json() == [1, 2]
    run = await stack.run(query.headers["x-sluice-run-id"])
    assert run["trigger"]["query"] == {"source": "test"}
    assert run["trigger"]["body"] == [1, 2]
    assert "authorization" not in run["trigger"]["headers"]
    assert run["trigger"]["headers"]["content-type"] == "application/json"
    text_run = await stack.run(text.headers["x-sluice-run-id"])
    assert text_run["trigger"]["body"] == "just words"
    assert await run_count(stack) == 4


async def test_a_flow_with_a_secret_takes_only_signed_bodies(stack: Stack) -> None:
    flow = await stack.deploy({**ECHO, "name": "signed", "trigger": {"secret": "s3cret"}})
    url = f"/webhooks/{flow['id']}/sync"
    raw = b'{"amount": 10}'
    json_type = {"content-type": "application/json"}

    signed = await stack.client.post(
        url, content=raw, headers={**json_type, "x-sluice-signature": signature("s3cret", raw)}
    )
    upper = await stack.client.post(
        url,
        content=raw,
        headers={**json_type, "x-sluice-signature": signature("s3cret", raw).upper()},
    )
    unsigned = await stack.client.post(url, content=raw, headers=json_type)
    wrong_key = await stack.client.post(
        url, content=raw, headers={**json_type, "x-sluice-signature": signature("other", raw)}
    )
    other_body = await stack.client.post(
        url,
        content=b'{"amount": 1000}',
        headers={**json_type, "x-sluice-signature": signature("s3cret", raw)},
    )

    assert signed.status_code == 200, signed.text
    assert signed.json() == {"amount": 10}
    assert upper.status_code == 200
    assert unsigned.status_code == 401
    assert "missing X-Sluice-Signature" in unsigned.json()["error"]
    assert wrong_key.status_code == 401
    assert "invalid X-Sluice-Signature" in wrong_key.json()["error"]
    assert other_body.status_code == 401
    assert await run_count(stack) == 2


def versioned(marker: str) -> dict[str, Any]:
    return {
        "name": "pinned",
        "steps": [
            {"id": "ask", "type": "respond", "body": "{{ resume_urls.gate }}"},
            {"id": "gate", "type": "wait_for_webhook"},
            code(f"{marker}_step", f"def run(input, ctx):\n    return '{marker}'"),
        ],
    }


async def test_a_run_keeps_the_version_it_started_with(stack: Stack) -> None:
    first = await stack.deploy(versioned("v1"))
    asked = await stack.trigger(first["id"], sync=True)
    run_id = asked.headers["x-sluice-run-id"]
    await stack.wait_for_status(run_id, {"PAUSED"})

    second = await stack.deploy(versioned("v2"))
    assert (second["id"], second["version"]) == (first["id"], 2)
    assert (await stack.client.post(asked.text, json={})).status_code == 202
    run = await stack.wait_for_status(run_id)
    newer = await stack.wait_for_status(await started_run(stack, first["id"]), {"PAUSED"})

    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["version"] == 1
    assert run["output"] == "v1"
    assert [s["key"] for s in run["steps"]] == ["ask", "gate", "v1_step"]
    assert step(run, "v1_step")["status"] == "SUCCEEDED"
    assert newer["version"] == 2


async def test_a_body_that_cannot_be_stored_is_refused_with_a_clear_4xx(stack: Stack) -> None:
    flow = await stack.deploy(ECHO)
    url = f"/webhooks/{flow['id']}"

    escaped = await stack.client.post(
        url, content=b'{"a": "x\\u0000y"}', headers={"content-type": "application/json"}
    )
    raw = await stack.client.post(url, content=b"x\x00y", headers={"content-type": "text/plain"})
    query = await stack.client.post(f"{url}?q=x%00y", json={})

    for refused in (escaped, raw, query):
        assert 400 <= refused.status_code < 500, refused.text
        assert "error" in refused.json()


async def test_form_bodies_reach_the_run_as_fields_with_the_raw_text_kept(stack: Stack) -> None:
    flow = await stack.deploy(ECHO)
    url = f"/webhooks/{flow['id']}/sync"

    encoded = await stack.client.post(
        url,
        content=b"name=Ada&tag=a&tag=b&empty=&note=caf%C3%A9+au+lait",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    multipart = await stack.client.post(
        url,
        data={"name": "Ada", "tag": ["a", "b"]},
        files={"upload": ("report.csv", b"a,b\n1,2\n", "text/csv")},
    )
    broken = await stack.client.post(
        url, content=b"--nope\r\n", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    nul = await stack.client.post(
        url, content=b"a=%00", headers={"content-type": "application/x-www-form-urlencoded"}
    )

    assert encoded.status_code == 200, encoded.text
    fields = {"name": "Ada", "tag": ["a", "b"], "empty": "", "note": "café au lait"}
    assert encoded.json() == fields
    run = await stack.run(encoded.headers["x-sluice-run-id"])
    assert run["trigger"]["body"] == fields
    assert run["trigger"]["raw_body"] == "name=Ada&tag=a&tag=b&empty=&note=caf%C3%A9+au+lait"
    assert multipart.status_code == 200, multipart.text
    assert multipart.json() == {
        "name": "Ada",
        "tag": ["a", "b"],
        "upload": {"filename": "report.csv", "content_type": "text/csv", "size": 8},
    }
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("malformed multipart/form-data")
    assert nul.status_code == 400


async def test_a_failed_sync_run_tells_its_caller_one_line_not_the_traceback(
    stack: Stack,
) -> None:
    source = "def run(input, ctx):\n    raise ValueError('boom')"
    flow = await stack.deploy({"name": "explodes", "steps": [code("explode", source)]})

    answer = await stack.trigger(flow["id"], sync=True)

    assert answer.status_code == 500
    run_id = answer.headers["x-sluice-run-id"]
    assert answer.json() == {"run_id": run_id, "status": "FAILED", "error": "ValueError: boom"}
    assert "Traceback" not in answer.text
    run = await stack.run(run_id)
    assert "Traceback" in run["error"]
    assert run["error"].endswith("ValueError: boom")


async def test_a_timestamped_sluice_signature_cannot_be_replayed_later(stack: Stack) -> None:
    flow = await stack.deploy({**ECHO, "name": "stamped", "trigger": {"secret": "s3cret"}})
    url = f"/webhooks/{flow['id']}/sync"
    raw = b'{"amount": 10}'

    def signed_at(stamp: int) -> dict[str, str]:
        content = str(stamp).encode() + b"." + raw
        return {
            "content-type": "application/json",
            "x-sluice-timestamp": str(stamp),
            "x-sluice-signature": signature("s3cret", content),
        }

    fresh = await stack.client.post(url, content=raw, headers=signed_at(int(time.time())))
    replayed = await stack.client.post(url, content=raw, headers=signed_at(int(time.time()) - 301))
    unstamped = signed_at(int(time.time()))
    del unstamped["x-sluice-timestamp"]  # the signature covers the timestamp: it must be sent
    assert fresh.status_code == 200, fresh.text
    assert replayed.status_code == 401
    assert "X-Sluice-Timestamp is outside the tolerance of 300 s" in replayed.json()["error"]
    assert (await stack.client.post(url, content=raw, headers=unstamped)).status_code == 401
