"""Real webhook senders: GitHub, Stripe, Slack and Standard Webhooks requests, signed by the
senders' own libraries (githubkit, stripe, slack_sdk, standardwebhooks) or GitHub's published
test vector, each start exactly one run (also when delivered twice); tampered bodies, wrong
secrets and stale timestamps get a 401 that says what was wrong."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import stripe
from githubkit.webhooks import sign as github_sign
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.flows.stack import Stack
from tests.integration.helpers import connect

# GitHub's documented vector (docs.github.com: "Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_VECTOR = (
    b"Hello, World!",
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
)
STRIPE_SECRET = "whsec_test_5f4dcc3b5aa765d61d8327deb882cf99"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def echoing(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    """A flow that replies with what it saw of its trigger."""
    body = {"event": "{{ trigger.event | default(none) }}", "body": "{{ trigger.body }}"}
    return {
        "name": name,
        "trigger": trigger,
        "steps": [{"id": "r", "type": "respond", "body": body}],
    }


async def deploy_with_secret(stack: Stack, name: str, verify: str, value: str) -> str:
    secret_name = name.upper() + "_SECRET"
    put = await stack.client.put(f"/api/v1/secrets/{secret_name}", json={"value": value})
    assert put.status_code in (200, 201), put.text
    trigger = {"verify": verify, "secret": "{{ secrets." + secret_name + " }}"}
    await stack.deploy(echoing(name, trigger))
    return f"/webhooks/tests/{name}/sync"


async def runs_of(stack: Stack, flow: str) -> int:
    async with await connect(stack.settings.database_url.get_secret_value()) as conn:  # type: ignore[union-attr]
        cur = await conn.execute(
            "SELECT count(*) FROM flow_runs r JOIN flows f ON f.id = r.flow_id WHERE f.name = %s",
            (flow,),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def slack_sign(signer: SignatureVerifier, *, timestamp: str, body: str) -> str:
    signature = signer.generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return signature


async def post(stack: Stack, url: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return await stack.client.post(url, content=raw, headers=headers)


async def test_github_push_ping_and_refusals(stack: Stack) -> None:
    url = await deploy_with_secret(stack, "github", "github", GITHUB_SECRET)
    payload, vector = GITHUB_VECTOR
    assert github_sign(GITHUB_SECRET, payload.decode(), method="sha256") == vector
    push = json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
            "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
            "pusher": {"name": "octocat"},
            "commits": [{"id": "59b20b8d", "message": "Fix all the bugs"}],
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "x-hub-signature-256": github_sign(GITHUB_SECRET, push.decode(), method="sha256"),
    }
    first = await post(stack, url, push, headers)
    again = await post(stack, url, push, headers)
    assert first.status_code == 200, first.text
    assert first.json()["event"] == "push"
    assert first.json()["body"]["pusher"] == {"name": "octocat"}
    assert again.headers["x-sluice-run-id"] == first.headers["x-sluice-run-id"]
    ping = await post(
        stack, url, payload, {"x-github-event": "ping", "x-hub-signature-256": vector}
    )
    assert ping.status_code == 200
    assert ping.json()["ping"] == "ok"
    assert await runs_of(stack, "github") == 1
    tampered = await post(stack, url, push.replace(b"main", b"evil"), headers)
    assert tampered.status_code == 401
    assert tampered.json()["error"].startswith("invalid X-Hub-Signature-256")
    wrong = github_sign("another secret", push.decode(), method="sha256")
    assert (
        await post(stack, url, push, {**headers, "x-hub-signature-256": wrong})
    ).status_code == 401
    missing = await post(stack, url, push, {"content-type": "application/json"})
    assert missing.json() == {"error": "missing X-Hub-Signature-256"}
    assert GITHUB_SECRET not in tampered.text + missing.text
    assert await runs_of(stack, "github") == 1


async def test_stripe_event_once_and_stale_or_tampered_refused(stack: Stack) -> None:
    url = await deploy_with_secret(stack, "stripe", "stripe", STRIPE_SECRET)
    event = json.dumps(
        {
            "id": "evt_1PqXyZ2eZvKYlo2C8mVQ3nJk",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {"object": {"id": "cs_test_a1b2", "object": "checkout.session",
                                "amount_total": 2000, "currency": "eur", "payment_status": "paid"}},
            "livemode": False,
        }
    )  # fmt: skip
    signature = stripe.WebhookSignature.generate_signature_header(event, STRIPE_SECRET)
    # Stripe's own verifier takes what is sent: the test signs as Stripe does.
    stripe.Webhook.construct_event(event, signature, STRIPE_SECRET)
    headers = {"content-type": "application/json", "stripe-signature": signature}
    first = await post(stack, url, event.encode(), headers)
    again = await post(stack, url, event.encode(), headers)
    assert first.status_code == 200, first.text
    assert first.json()["event"] == "checkout.session.completed"
    assert again.headers["x-sluice-run-id"] == first.headers["x-sluice-run-id"]
    stale_header = stripe.WebhookSignature.generate_signature_header(
        event, STRIPE_SECRET, timestamp=int(time.time()) - 600
    )
    stale = await post(stack, url, event.encode(), {**headers, "stripe-signature": stale_header})
    assert stale.status_code == 401
    assert "outside the tolerance of 300 s" in stale.json()["error"]
    tampered = await post(stack, url, event.replace("2000", "1").encode(), headers)
    assert tampered.status_code == 401
    other = stripe.WebhookSignature.generate_signature_header(event, "whsec_other")
    assert (
        await post(stack, url, event.encode(), {**headers, "stripe-signature": other})
    ).status_code == 401
    assert await runs_of(stack, "stripe") == 1


async def test_slack_slash_command_url_verification_and_stale_timestamp(stack: Stack) -> None:
    url = await deploy_with_secret(stack, "slack", "slack", SLACK_SECRET)
    signer = SignatureVerifier(SLACK_SECRET)
    form = urlencode(
        {"token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0001", "team_domain": "example",
         "channel_name": "ops", "user_name": "ada", "command": "/deploy", "text": "prod now",
         "response_url": "https://hooks.slack.com/commands/1234/5678"}
    )  # fmt: skip
    now = str(int(time.time()))
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": now,
        "x-slack-signature": slack_sign(signer, timestamp=now, body=form),
    }
    command = await post(stack, url, form.encode(), headers)
    assert command.status_code == 200, command.text
    assert command.json()["event"] == "/deploy"
    assert command.json()["body"]["text"] == "prod now"
    challenge = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595", "type": "url_verification"}
    )
    signed = {
        "content-type": "application/json",
        "x-slack-request-timestamp": now,
        "x-slack-signature": slack_sign(signer, timestamp=now, body=challenge),
    }
    verified = await post(stack, url, challenge.encode(), signed)
    assert verified.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595"}
    old = str(int(time.time()) - 301)
    stale = {**headers, "x-slack-request-timestamp": old,
             "x-slack-signature": slack_sign(signer, timestamp=old, body=form)}  # fmt: skip
    refused = await post(stack, url, form.encode(), stale)
    assert refused.status_code == 401
    assert "X-Slack-Request-Timestamp is outside the tolerance" in refused.json()["error"]
    assert await runs_of(stack, "slack") == 1


async def test_standard_webhooks_event_once_and_refusals(stack: Stack) -> None:
    url = await deploy_with_secret(stack, "resend", "standard", STANDARD_SECRET)
    payload = json.dumps(
        {"type": "email.delivered", "created_at": "2026-12-03T12:00:00Z",
         "data": {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c", "to": ["ada@example.com"]}}
    )  # fmt: skip
    signer = StandardWebhook(STANDARD_SECRET)
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, payload),
    }
    first = await post(stack, url, payload.encode(), headers)
    again = await post(stack, url, payload.encode(), headers)
    assert first.status_code == 200, first.text
    assert first.json()["event"] == "email.delivered"
    assert again.headers["x-sluice-run-id"] == first.headers["x-sluice-run-id"]
    past = now - timedelta(minutes=10)
    stale = {**headers, "webhook-timestamp": str(int(past.timestamp())),
             "webhook-signature": signer.sign(headers["webhook-id"], past, payload)}  # fmt: skip
    assert (await post(stack, url, payload.encode(), stale)).status_code == 401
    tampered = await post(stack, url, payload.replace("delivered", "bounced").encode(), headers)
    assert tampered.status_code == 401
    assert tampered.json()["error"].startswith("invalid webhook-signature")
    assert await runs_of(stack, "resend") == 1


async def test_bearer_and_basic_compare_the_whole_credential(stack: Stack) -> None:
    bearer = await deploy_with_secret(stack, "bearer", "bearer", "t0ken-value")
    basic = await deploy_with_secret(stack, "basic", "basic", "ada:pa55word")
    ok = await stack.client.post(bearer, json={}, headers={"authorization": "Bearer t0ken-value"})
    assert ok.status_code == 200, ok.text
    near = await stack.client.post(bearer, json={}, headers={"authorization": "Bearer t0ken-valu"})
    assert near.status_code == 401
    auth = httpx.BasicAuth("ada", "pa55word")
    assert (await stack.client.post(basic, json={}, auth=auth)).status_code == 200
    wrong = httpx.BasicAuth("ada", "password")
    assert (await stack.client.post(basic, json={}, auth=wrong)).status_code == 401


async def test_the_stable_url_survives_delete_and_recreate(stack: Stack) -> None:
    flow = {
        "name": "stable",
        "steps": [{"id": "r", "type": "respond", "body": "v{{ flow.version }}"}],
    }
    first = await stack.deploy(flow)
    assert first["stable_webhook_url"].endswith("/webhooks/tests/stable")
    assert (await stack.client.post("/webhooks/tests/stable/sync", json={})).text == "v1"
    assert (await stack.client.delete("/api/v1/flows/stable")).status_code == 204
    assert (await stack.client.post("/webhooks/tests/stable/sync", json={})).status_code == 404
    second = await stack.deploy(flow)
    assert second["id"] != first["id"]
    assert second["stable_webhook_url"] == first["stable_webhook_url"]
    assert (await stack.client.post("/webhooks/tests/stable/sync", json={})).text == "v1"
    assert (await stack.client.post(f"/webhooks/{second['id']}/sync", json={})).text == "v1"
