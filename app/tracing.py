"""Opt-in OpenTelemetry tracing: the facade every module uses, importing nothing of
OpenTelemetry until tracing is set up.

Tracing is on when `SLUICE_OTEL_ENABLED` is true, or when it is unset and a standard OTLP
endpoint variable (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is;
`OTEL_SDK_DISABLED=true` turns it off whatever else is set (`wanted`). `setup` then builds
the process's tracer (once: the app and the worker of one process share it) with an OTLP
over HTTP exporter that reads the standard `OTEL_*` variables; it needs the `otel` extra.

Invariants kept here:

* Off, every helper is a no-op that costs a check of one module global: no span, no import.
* The trace context crosses processes and the queue as a W3C `traceparent` only (in the
  request's headers, in a run's row, in an outbound request's headers).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from app.settings import Settings

if TYPE_CHECKING:
    from app import _otel

TRACEPARENT = "traceparent"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
Attributes = Mapping[str, str | int | float | bool]
T = TypeVar("T")


class TracingUnavailable(RuntimeError):
    """Tracing is asked for but OpenTelemetry is not installed."""


class Span:
    """A span to annotate; this one, of tracing off, ignores everything."""

    traceparent: str | None = None

    def set(self, key: str, value: str | int | float | bool) -> None:
        """Set attribute `key`."""

    def fail(self, message: str) -> None:
        """Mark the span's outcome an error, with `message` as its description."""


NO_SPAN = Span()
_otel_state: _otel.Tracing | None = None


def wanted(settings: Settings, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `settings` and the environment ask for tracing (see the module's doc)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if settings.otel_enabled is not None:
        return settings.otel_enabled
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def setup(settings: Settings) -> bool:
    """Start tracing for this process when it is wanted and not started yet; whether it is
    on. Raises `TracingUnavailable` when it is wanted and OpenTelemetry is missing."""
    global _otel_state
    if _otel_state is None and wanted(settings):
        try:
            from app import _otel
        except ImportError as exc:
            raise TracingUnavailable(
                f"tracing is on (SLUICE_OTEL_ENABLED or OTEL_EXPORTER_OTLP_ENDPOINT) but "
                f"OpenTelemetry is not installed ({exc.name}): pip install 'sluice[otel]'"
            ) from None
        _otel_state = _otel.Tracing.exporting()
    return _otel_state is not None


def install(provider: Any) -> None:
    """Trace with `provider`, an OpenTelemetry SDK `TracerProvider` (tests: an in-memory
    exporter's); `setup` then keeps it."""
    global _otel_state
    from app import _otel

    _otel_state = _otel.Tracing(provider)


def uninstall() -> None:
    """Tracing off again (tests)."""
    global _otel_state
    _otel_state = None


def active() -> bool:
    return _otel_state is not None


@contextlib.contextmanager
def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: str = "internal",
    parent: str | None = None,
    headers: Mapping[str, str] | None = None,
    start_ns: int | None = None,
) -> Iterator[Span]:
    """A span, current while the block runs: a child of the current one, or of `parent`
    (a traceparent) or of the `traceparent` in `headers` when given (a new trace when that is
    missing or invalid). `kind`: internal, server, client, producer or consumer."""
    state = _otel_state
    if state is None:
        yield NO_SPAN
        return
    with state.span(name, attributes, kind, parent, headers, start_ns) as opened:
        yield opened


@contextlib.asynccontextmanager
async def aspan(name: str, attributes: Attributes | None = None) -> AsyncIterator[Span]:
    """`span` for an `async with` (a child of the current span)."""
    with span(name, attributes) as opened:
        yield opened


async def within(name: str, work: Awaitable[T], attributes: Attributes | None = None) -> T:
    """`work`, awaited inside a span."""
    with span(name, attributes):
        return await work


def record(
    name: str, start_ns: int, end_ns: int, attributes: Attributes, error: str | None = None
) -> None:
    """A span that happened (from `start_ns` to `end_ns`), a child of the current one."""
    state = _otel_state
    if state is not None:
        state.record(name, start_ns, end_ns, attributes, error)


def traceparent() -> str | None:
    """The current span's context as a W3C traceparent (None: no span, or tracing off)."""
    state = _otel_state
    return None if state is None else state.traceparent()
