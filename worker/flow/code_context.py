"""What a code step is sent besides its input: its `ctx` (with the secrets it declares) and
whether it may use the network. Part of the replay: no I/O."""

from __future__ import annotations

from typing import Any

from app.flows.definition import CodeStep
from app.flows.model import LoadedRun, StepStatus
from worker.flow.context import FlowPlan, Named, idempotency_key
from worker.flow.effects import Failed

NETWORK_OFF = (
    "the step asks for network, which this project's administrator has turned off "
    "(allow_network: false)"
)


def code_ctx(
    run: LoadedRun,
    plan: FlowPlan,
    step: CodeStep,
    key: str,
    context: dict[str, Any],
    named: Named,
) -> tuple[dict[str, Any], bool] | Failed:
    """The step's `ctx` and whether it gets the network, or why it cannot run."""
    ctx: dict[str, Any] = {
        "run_id": str(run.id),
        "flow": context["flow"],
        "step_id": step.id,
        "step_key": key,
        "resume_urls": context["resume_urls"],
        "idempotency_key": idempotency_key(run.id, key),
    }
    if step.secrets:
        secrets = secrets_for(named, step.secrets)
        if isinstance(secrets, Failed):
            return secrets
        ctx["secrets"] = secrets
    network = plan.definition.network if step.network is None else step.network
    if network and not run.allow_network:
        return Failed(StepStatus.FAILED, NETWORK_OFF)
    return ctx, network


def secrets_for(named: Named, names: list[str]) -> dict[str, str] | Failed:
    """A code step's declared secrets, or why it cannot have them."""
    if named.unavailable is not None:
        return Failed(StepStatus.FAILED, named.unavailable, final=True)
    missing = [name for name in names if name not in named.secrets]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        return Failed(StepStatus.FAILED, f"no secret {listed} in this project", final=True)
    return {name: named.secrets[name] for name in names}
