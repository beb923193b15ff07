"""The secrets and vars a flow names: what deploy checks exist, what a run loads, what
``GET /api/v1/secrets`` lists as a secret's users."""

from __future__ import annotations

import dataclasses

from app.flows import templating
from app.flows.definition import CodeStep, FlowDefinition
from app.flows.structure import template_strings


@dataclasses.dataclass(frozen=True)
class References:
    secrets: frozenset[str]
    vars: frozenset[str]
    all_vars: bool
    """A template reads vars other than by name (``vars|list``): every var is loaded."""

    @property
    def any(self) -> bool:
        return bool(self.secrets or self.vars or self.all_vars)


def of(definition: FlowDefinition) -> References:
    """What `definition` names (a definition that deployed: its templates compile)."""
    secrets: set[str] = set()
    variables: set[str] = set()
    all_vars = False
    webhook = definition.webhook
    if webhook is not None and webhook.secret_name is not None:
        secrets.add(webhook.secret_name)
    for path, step in definition.iter_steps():
        if isinstance(step, CodeStep):
            secrets.update(step.secrets)
        compile_ = (
            templating.compile_condition if step.type == "branch" else templating.compile_template
        )
        for name in step.templated:
            for _where, text in template_strings(getattr(step, name), f"{path}.{name}"):
                if not templating.is_template(text):
                    continue
                needs = compile_(text).needs
                secrets.update(needs.fixed("secrets") or ())
                named = needs.fixed("vars")
                if named is None:
                    all_vars = True
                else:
                    variables.update(named)
    return References(frozenset(secrets), frozenset(variables), all_vars)
