"""What a replay asks for, what it is answered, and how an execution ends: plain values.

The replay (`worker.flow.replay`) yields an effect when it reaches a step that acts outside
the run, and is sent the answer once the effect is performed. Each effect carries the
writes the replay made since its last effect (`writes`): results of steps without effects
and the reply, which are committed before (or together with) the effect. When an effect
stops the execution instead (a pause, a lost lease, a run ended elsewhere), the replay is
closed and never answered. `Render` is the one effect that acts on nothing outside the run:
it carries no writes (they stay pending for the next effect).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from app.flows.model import RunStatus, StepRecord, StepStatus, Waitpoint, Writes

# --- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Effect:
    key: str
    """The step instance asking (``each[2].notify``)."""
    writes: Writes = field(default_factory=Writes)


@dataclass(frozen=True, kw_only=True)
class RunCode(Effect):
    """Run a code step's ``run(input, ctx)`` in its project's sandbox."""

    code: str
    input: Any
    ctx: dict[str, Any]
    requirements: tuple[str, ...]
    timeout_seconds: float
    network: bool = False


@dataclass(frozen=True, kw_only=True)
class SendHttp(Effect):
    """Send an http step's request through the guarded client."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout_seconds: float


@dataclass(frozen=True, kw_only=True)
class Wait(Effect):
    """Pause on the step's waitpoint unless it is completed or due already.

    Answered with the `Waitpoint` when the run goes on; otherwise the run pauses with
    `paused` recorded, its job handed over to a continuation at the waitpoint's time."""

    kind: str
    """``delay``, ``webhook`` or ``subflow``."""
    resume_in_seconds: float | None
    paused: StepRecord
    expires: bool
    """The pause is bounded by SLUICE_PAUSED_RUN_TTL (it waits on no known time)."""


@dataclass(frozen=True, kw_only=True)
class StartChild(Effect):
    """Start a run of `flow` (a call_flow step) with `child_run_id`.

    With `wait`, the parent pauses in the same commit (`paused` recorded) and is resumed by
    the child's end. Without, `started` is recorded with the child and the replay is
    answered `ChildStarted`. A missing flow is answered `Failed`."""

    flow: str
    input: Any
    child_run_id: UUID
    wait: bool
    paused: StepRecord
    started: StepRecord


@dataclass(frozen=True, kw_only=True)
class Render(Effect):
    """Render a template that is not inline (`app.flows.inline`) in a render process.

    Answered `Done` with the value, or `Failed` (final) naming `field`. Its `writes` are
    always empty."""

    field: str
    """Where the template is in the step (``body.text``, ``condition``)."""
    source: str
    condition: bool
    context: dict[str, Any]
    """What the template reads of its context."""
    max_chars: int


# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """The effect succeeded: the step's output (and a code step's captured output)."""

    output: Any
    stdout: str | None = None
    stderr: str | None = None


@dataclass(frozen=True)
class Failed:
    """The step failed with `status`; `cut_short` when the run's deadline, not the step's own
    timeout, bounded the attempt (the run may have run out of time); `final` when another
    attempt would fail the same way (a template), so the step's retries are not used."""

    status: StepStatus
    error: str
    output: Any = None
    stdout: str | None = None
    stderr: str | None = None
    cut_short: bool = False
    final: bool = False


@dataclass(frozen=True)
class Broken:
    """The sandbox broke, not the step: the job is run again (and the step with it)."""

    error: str


@dataclass(frozen=True)
class Stopped:
    """The run ended elsewhere (canceled, timed out) while the effect was performed, and the
    effect was stopped: the step is recorded as stopped, and the execution ends."""

    run_status: RunStatus

    @property
    def step_status(self) -> StepStatus:
        return StepStatus.TIMEOUT if self.run_status is RunStatus.TIMEOUT else StepStatus.CANCELED


@dataclass(frozen=True)
class ChildStarted:
    run_id: UUID


Answer = Done | Failed | Broken | Stopped | ChildStarted | Waitpoint
"""What an effect is answered: the above, or the `Waitpoint` a `Wait` went on with."""

# --- how an execution ends -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Finish:
    """The run ends with `status` (its last step is done, or one failed)."""

    status: RunStatus
    output: Any = None
    error: str | None = None
    writes: Writes = field(default_factory=Writes)


@dataclass(frozen=True, kw_only=True)
class Reschedule:
    """Continue the run after a step's retry backoff; the job is handed over, no slot held."""

    delay_seconds: float
    writes: Writes = field(default_factory=Writes)


@dataclass(frozen=True, kw_only=True)
class Abandon:
    """Give the execution up: its job is retried (after `delay_seconds`, or the queue's
    backoff), and the next execution replays from what was committed."""

    error: str
    delay_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class Settle:
    """The run ended elsewhere: record what was stopped, and let the job go."""

    writes: Writes = field(default_factory=Writes)


Outcome = Finish | Reschedule | Abandon | Settle
