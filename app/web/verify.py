"""How a webhook request is authenticated: each scheme a webhook trigger can name.

* ``hmac-sha256``: ``X-Sluice-Signature: sha256=<hex>`` over the body, or over
  ``<t>.<body>`` when ``X-Sluice-Timestamp: <t>`` is sent (then within the tolerance).
* ``github``: ``X-Hub-Signature-256: sha256=<hex>`` over the body; ``X-GitHub-Delivery``
  is the idempotency key, ``X-GitHub-Event`` the event; ``ping`` is answered without a run.
* ``stripe``: ``Stripe-Signature: t=<t>,v1=<hex>[,v1=…]`` over ``<t>.<body>``, within the
  tolerance; the event's ``id`` is the key.
* ``slack``: ``X-Slack-Signature: v0=<hex>`` over ``v0:<t>:<body>``, with
  ``X-Slack-Request-Timestamp`` within the tolerance; ``url_verification`` is answered with
  its challenge; an Events API ``event_id`` is the key.
* ``standard`` (Standard Webhooks: Svix, OpenAI, Resend): ``webhook-signature: v1,<base64>``
  (one of several) over ``<id>.<t>.<body>`` under the base64 key after ``whsec_``, within
  the tolerance; ``webhook-id`` is the key.
* ``bearer`` / ``basic``: ``Authorization: Bearer <secret>`` / ``Basic
  base64(<user:password>)``.

Invariant: every comparison is constant-time, and every refusal is a 401 that names what is
wrong, never the secret or the expected value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from app.web.errors import ApiError


@dataclasses.dataclass(frozen=True)
class Verified:
    """A request that passed: its delivery id (an idempotency key) and event, if the sender
    gives them, or the `answer` a sender's handshake gets instead of a run."""

    key: str | None = None
    event: str | None = None
    answer: Response | None = None


@dataclasses.dataclass(frozen=True)
class Request:
    raw: bytes
    headers: Mapping[str, str]
    body: Any
    """The decoded body (JSON, a form's fields, or text)."""
    now: float
    """Unix time."""


def verify(scheme: str, secret: str, tolerance: int, ping: bool, request: Request) -> Verified:
    """Raises ApiError(401) for a request the scheme does not accept."""
    return _SCHEMES[scheme](secret, tolerance, ping, request)


def _refuse(message: str) -> ApiError:
    return ApiError(401, message)


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name.lower())
    if value is None:
        raise _refuse(f"missing {name}")
    return value


def _hex_hmac(secret: bytes, content: bytes) -> str:
    return hmac.new(secret, content, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _timestamp(text: str, name: str, tolerance: int, now: float) -> None:
    try:
        moment = int(text.strip())
    except ValueError:
        raise _refuse(f"{name} is not a Unix timestamp") from None
    if abs(now - moment) > tolerance:
        raise _refuse(f"{name} is outside the tolerance of {tolerance} s (a replay, or a clock)")


def _field(body: Any, name: str) -> str | None:
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _sluice(secret: str, tolerance: int, _ping: bool, request: Request) -> Verified:
    signature = _header(request, "X-Sluice-Signature")
    stamp = request.headers.get("x-sluice-timestamp")
    content = request.raw
    if stamp is not None:
        _timestamp(stamp, "X-Sluice-Timestamp", tolerance, request.now)
        content = stamp.strip().encode() + b"." + request.raw
    if not _same(signature.lower(), "sha256=" + _hex_hmac(secret.encode(), content)):
        raise _refuse("invalid X-Sluice-Signature: expected sha256=<hex HMAC of the body>")
    return Verified()


def _github(secret: str, _tolerance: int, ping: bool, request: Request) -> Verified:
    signature = _header(request, "X-Hub-Signature-256")
    if not _same(signature.lower(), "sha256=" + _hex_hmac(secret.encode(), request.raw)):
        raise _refuse("invalid X-Hub-Signature-256 (is the webhook's secret the flow's?)")
    event = request.headers.get("x-github-event")
    if event == "ping" and ping:
        return Verified(answer=JSONResponse({"ping": "ok", "zen": _field(request.body, "zen")}))
    return Verified(request.headers.get("x-github-delivery"), event)


def _stripe(secret: str, tolerance: int, _ping: bool, request: Request) -> Verified:
    header = _header(request, "Stripe-Signature")
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [value for name, value in parts if name.strip() == "t"]
    signatures = [value for name, value in parts if name.strip() == "v1"]
    if len(stamps) != 1 or not signatures:
        raise _refuse("Stripe-Signature needs one t= and at least one v1=")
    _timestamp(stamps[0], "Stripe-Signature's t", tolerance, request.now)
    expected = _hex_hmac(secret.encode(), stamps[0].strip().encode() + b"." + request.raw)
    if not any(_same(given, expected) for given in signatures):
        raise _refuse("invalid Stripe-Signature (is the endpoint's signing secret the flow's?)")
    return Verified(_field(request.body, "id"), _field(request.body, "type"))


def _slack(secret: str, tolerance: int, _ping: bool, request: Request) -> Verified:
    signature = _header(request, "X-Slack-Signature")
    stamp = _header(request, "X-Slack-Request-Timestamp")
    _timestamp(stamp, "X-Slack-Request-Timestamp", tolerance, request.now)
    base = b"v0:" + stamp.strip().encode() + b":" + request.raw
    if not _same(signature, "v0=" + _hex_hmac(secret.encode(), base)):
        raise _refuse("invalid X-Slack-Signature (is the app's signing secret the flow's?)")
    body = request.body
    if _field(body, "type") == "url_verification":
        return Verified(answer=JSONResponse({"challenge": _field(body, "challenge")}))
    inner = body.get("event") if isinstance(body, dict) else None
    event = _field(inner, "type") or _field(body, "command") or _field(body, "type")
    return Verified(_field(body, "event_id"), event)


def _standard(secret: str, tolerance: int, _ping: bool, request: Request) -> Verified:
    message_id = _header(request, "webhook-id")
    stamp = _header(request, "webhook-timestamp")
    signatures = _header(request, "webhook-signature")
    _timestamp(stamp, "webhook-timestamp", tolerance, request.now)
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("the flow's secret is not a Standard Webhooks key (whsec_<base64>)") from None
    content = f"{message_id}.{stamp.strip()}.".encode() + request.raw
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in signatures.split() if s.startswith("v1,")]
    if not any(_same(signature, expected) for signature in given):
        raise _refuse("invalid webhook-signature (is the endpoint's secret the flow's?)")
    return Verified(message_id, _field(request.body, "type"))


def _bearer(secret: str, _tolerance: int, _ping: bool, request: Request) -> Verified:
    given = _header(request, "Authorization")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not _same(token, secret):
        raise _refuse("invalid Authorization: expected Bearer <the flow's token>")
    return Verified()


def _basic(secret: str, _tolerance: int, _ping: bool, request: Request) -> Verified:
    given = _header(request, "Authorization")
    scheme, _, encoded = given.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        decoded = None
    if scheme.lower() != "basic" or decoded is None or not _same(decoded, secret):
        raise _refuse("invalid Authorization: expected Basic <user:password>")
    return Verified()


_SCHEMES: dict[str, Callable[[str, int, bool, Request], Verified]] = {
    "hmac-sha256": _sluice,
    "github": _github,
    "stripe": _stripe,
    "slack": _slack,
    "standard": _standard,
    "bearer": _bearer,
    "basic": _basic,
}
