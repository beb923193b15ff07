"""What a step sees: its scope (key prefix, visible results, loop variables) and the
template context built from the run and that scope.

A `FlowPlan` is what the engine derives once from a flow version (cached by version id):
the parsed definition and, per loop scope, the wait_for_webhook steps whose resume URLs
templates in that scope can use.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from app.flows import resume
from app.flows.definition import BranchStep, FlowDefinition, LoopStep, Step, WaitForWebhookStep
from app.flows.model import LoadedRun, StepRecord
from app.secrets import references
from app.secrets.masking import NO_SECRETS, Masker


class FlowPlan:
    """A parsed definition with what the engine derives from it once."""

    def __init__(self, definition: FlowDefinition) -> None:
        self.definition = definition
        self.names = references.of(definition)
        """The secrets and vars it names (loaded for each execution)."""
        # The wait_for_webhook steps reachable in each loop scope (None: the top level).
        self.waits_by_scope: dict[str | None, list[str]] = {}
        self._collect(definition.steps, None)

    def _collect(self, steps: Sequence[Step], scope: str | None) -> None:
        for step in steps:
            if isinstance(step, WaitForWebhookStep):
                self.waits_by_scope.setdefault(scope, []).append(step.id)
            elif isinstance(step, BranchStep):
                self._collect(step.then, scope)
                self._collect(step.else_, scope)
            elif isinstance(step, LoopStep):
                self._collect(step.steps, step.id)


@dataclasses.dataclass
class Scope:
    """Where a step runs: its key prefix, the results visible to it, loop variables."""

    prefix: str = ""
    loop: str | None = None
    steps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    variables: dict[str, Any] = dataclasses.field(default_factory=dict)

    def iteration(self, key: str, loop: str, item: Any, index: int) -> Scope:
        """The scope of iteration `index` of loop step `loop` (instance `key`)."""
        return Scope(f"{key}[{index}].", loop, dict(self.steps), {"item": item, "index": index})

    def see(self, step_id: str, record: StepRecord) -> None:
        self.steps[step_id] = {
            "output": record.output,
            "status": str(record.status),
            "error": record.error,
        }


@dataclasses.dataclass(frozen=True)
class Named:
    """The secrets and vars of the run's project that its flow names."""

    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    vars: dict[str, str] = dataclasses.field(default_factory=dict)
    unavailable: str | None = None
    """Why the secrets could not be read (no key, an unknown key)."""

    @functools.cached_property
    def masker(self) -> Masker:
        """Masks the secrets in what a step's record holds."""
        return Masker(self.secrets.values()) if self.secrets else NO_SECRETS


NOTHING_NAMED = Named()


def idempotency_key(run_id: UUID, step_key: str) -> str:
    """The same for every attempt of one step instance of one run: what an external service
    can deduplicate a step's effect by (an attempt repeated after a lost lease included)."""
    digest = hashlib.sha256(f"{run_id}/{step_key}".encode()).hexdigest()
    return f"sluice-{digest[:40]}"


def template_context(
    run: LoadedRun, plan: FlowPlan, scope: Scope, public_url: str, variables: dict[str, str]
) -> dict[str, Any]:
    """The names a template in `scope` can use: trigger, steps, flow, run, resume_urls,
    vars, and a loop's item and index (an http step's also `secrets`)."""
    urls = {
        step_id: resume.url(public_url, run.id, run.resume_secret, scope.prefix + step_id)
        for step_id in plan.waits_by_scope.get(scope.loop, ())
    }
    return {
        "trigger": run.trigger,
        "steps": scope.steps,
        "flow": {"id": str(run.flow_id), "name": run.flow_name, "version": run.version},
        "run": {
            "id": str(run.id),
            "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
        },
        "resume_urls": urls,
        "vars": variables,
        **scope.variables,
    }
