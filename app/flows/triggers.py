"""What starts a flow's runs: webhooks (each naming how its requests are verified) and
schedules. A flow has one trigger or a list of them (a webhook and a schedule together)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

SECRET_REFERENCE = re.compile(r"\{\{\s*secrets\.(?P<name>[A-Za-z_][A-Za-z0-9_]{0,127})\s*\}\}")
"""A webhook's `secret` naming one of the project's secrets: ``{{ secrets.NAME }}``."""

Verify = Literal["github", "stripe", "slack", "standard", "hmac-sha256", "bearer", "basic", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WebhookTrigger(_Model):
    """Runs the flow on ``POST /webhooks/{flow_id}`` (and ``/webhooks/{project}/{flow}``).

    `verify` names how a request is authenticated, with `secret` (a literal, or
    ``{{ secrets.NAME }}``); a `secret` without `verify` means ``hmac-sha256``, as it
    always has."""

    type: Literal["webhook"] = "webhook"
    verify: Verify | None = None
    secret: str | None = Field(default=None, min_length=1, max_length=256)
    tolerance_seconds: int = Field(
        default=300, ge=1, le=86_400, description="How old a signed timestamp may be."
    )
    ping: bool = Field(
        default=True, description="github: answer a `ping` event 200 without starting a run."
    )

    @property
    def secret_name(self) -> str | None:
        """The project secret `secret` names, or None for a literal secret (or none)."""
        found = SECRET_REFERENCE.fullmatch(self.secret.strip()) if self.secret else None
        return found["name"] if found else None

    @property
    def scheme(self) -> Verify:
        if self.verify is not None:
            return self.verify
        return "hmac-sha256" if self.secret is not None else "none"

    @model_validator(mode="after")
    def _secret_when_needed(self) -> WebhookTrigger:
        if self.scheme != "none" and self.secret is None:
            raise ValueError(f"verify: {self.scheme} needs a secret")
        if self.scheme == "none" and self.secret is not None:
            raise ValueError("verify: none takes no secret")
        if self.secret is not None and "{" in self.secret and self.secret_name is None:
            raise ValueError("secret is a literal or exactly {{ secrets.NAME }}")
        return self


class ScheduleTrigger(_Model):
    """Runs the flow on a schedule: `cron` (five fields) or `every` (``30s``, ``5m``,
    ``1h``), in `timezone`."""

    type: Literal["schedule"]
    cron: str | None = Field(default=None, max_length=200)
    every: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,6}(s|m|h|d)$")
    timezone: str = Field(default="UTC", max_length=64)
    overlap: Literal["skip", "queue", "allow"] = "skip"
    catch_up: Literal["none", "latest", "all"] = "latest"
    input: JsonValue = None

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron and every")
        return self


Trigger = Annotated[WebhookTrigger | ScheduleTrigger, Field(discriminator="type")]
