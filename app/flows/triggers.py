"""What starts a flow's runs: webhooks (each naming how its requests are verified) and
schedules. A flow has one trigger or a list of them (a webhook and a schedule together)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

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


MAX_EVERY_SECONDS = 366 * 86_400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def every_seconds(every: str) -> int:
    """``30s`` → 30, ``5m`` → 300."""
    return int(every[:-1]) * _UNITS[every[-1]]


class ScheduleTrigger(_Model):
    """Runs the flow on a schedule: `cron` (five fields) or `every` (``30s``, ``5m``,
    ``1h``, ``1d``; at least 1 s, at most 366 d), in `timezone` (an IANA name)."""

    type: Literal["schedule"]
    cron: str | None = Field(default=None, max_length=200)
    every: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,6}(s|m|h|d)$")
    timezone: str = Field(default="UTC", max_length=64)
    overlap: Literal["skip", "queue", "allow"] = "skip"
    catch_up: Literal["none", "latest", "all"] = "latest"
    input: JsonValue = None

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, cron: str | None) -> str | None:
        if cron is None:
            return None
        if len(cron.split()) != 5:
            raise ValueError("a cron rule has five fields: minute hour day month weekday")
        try:
            CronSim(cron, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"not a cron rule: {exc}") from None
        return cron

    @field_validator("every")
    @classmethod
    def _every_bounded(cls, every: str | None) -> str | None:
        if every is not None and every_seconds(every) > MAX_EVERY_SECONDS:
            raise ValueError("at most 366d")
        return every

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            message = f"unknown time zone {timezone!r} (an IANA name, e.g. Europe/Paris)"
            raise ValueError(message) from None
        return timezone

    @property
    def key(self) -> str:
        """The schedule's identity across versions: its ticks are keyed by it."""
        if self.cron is not None:
            return f"cron {' '.join(self.cron.split())} {self.timezone}"
        assert self.every is not None
        return f"every {every_seconds(self.every)}s"

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron and every")
        return self


Trigger = Annotated[WebhookTrigger | ScheduleTrigger, Field(discriminator="type")]
