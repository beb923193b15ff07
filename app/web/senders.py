"""A webhook request checked as its flow's trigger says (`app.web.verify`), with the secret
resolved: a literal, or one of the project's secrets (``{{ secrets.NAME }}``)."""

from __future__ import annotations

import time
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request

from app.flows.control import FlowTarget
from app.flows.triggers import WebhookTrigger
from app.secrets import keys, store
from app.web import verify
from app.web.errors import ApiError


async def check(
    request: Request, conn: AsyncConnection[Any], target: FlowTarget, raw: bytes, body: Any
) -> verify.Verified:
    """What the request proves; raises ApiError (401 refused, 503 a secret unavailable)."""
    assert target.webhook is not None
    trigger = WebhookTrigger.model_validate(target.webhook, strict=False)
    if trigger.scheme == "none":
        return verify.Verified()
    secret = await _secret(request, conn, target.project_id, trigger)
    given = verify.Request(raw, request.headers, body, time.time())
    return verify.verify(trigger.scheme, secret, trigger.tolerance_seconds, trigger.ping, given)


async def _secret(
    request: Request, conn: AsyncConnection[Any], project_id: int, trigger: WebhookTrigger
) -> str:
    assert trigger.secret is not None
    name = trigger.secret_name
    if name is None:
        return trigger.secret
    try:
        ring = keys.keyring(request.state.settings)
        found = await store.secret_values(conn, ring, project_id, [name])
    except (keys.SecretsUnavailable, keys.UnknownKey) as exc:
        raise ApiError(503, f"this flow's webhook secret cannot be read: {exc}") from None
    if name not in found:
        raise ApiError(503, f"this flow's webhook secret {name!r} is not set in its project")
    return found[name]
