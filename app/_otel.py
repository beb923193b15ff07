"""The OpenTelemetry side of `app.tracing`, imported only once tracing is on (it needs the
`otel` extra)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app import tracing
from app.secrets.masking import mask_remembered

_KINDS = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
_PROPAGATOR = TraceContextTextMapPropagator()


class _Span(tracing.Span):
    def __init__(self, span: trace.Span) -> None:
        self._span = span
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        self.traceparent = carrier.get(tracing.TRACEPARENT)

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def fail(self, message: str) -> None:
        self._span.set_status(_error(message))


class Tracing:
    """This process's tracer."""

    def __init__(self, provider: Any) -> None:
        self.tracer = provider.get_tracer("sluice")

    @classmethod
    def exporting(cls) -> Tracing:
        """Spans batched to OTLP over HTTP; the exporter, the sampler and the resource read
        the standard OTEL_* variables (OTEL_SERVICE_NAME defaults to "sluice" here)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        name = os.environ.get("OTEL_SERVICE_NAME") or "sluice"
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: tracing.Attributes | None,
        kind: str,
        parent: str | None,
        headers: Mapping[str, str] | None,
        start_ns: int | None,
    ) -> Iterator[tracing.Span]:
        context = None
        if headers is not None:
            context = _PROPAGATOR.extract({k.lower(): v for k, v in headers.items()})
        elif parent is not None:
            context = _PROPAGATOR.extract({tracing.TRACEPARENT: parent})
        with self.tracer.start_as_current_span(
            name,
            context=context,
            kind=_KINDS[kind],
            attributes=dict(attributes or {}),
            start_time=start_ns,
            record_exception=False,
        ) as opened:
            yield _Span(opened)

    def record(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: tracing.Attributes,
        error: str | None,
    ) -> None:
        span = self.tracer.start_span(name, attributes=dict(attributes), start_time=start_ns)
        if error is not None:
            span.set_status(_error(error))
        span.end(end_time=max(start_ns, end_ns))

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=otel_context.get_current())
        return carrier.get(tracing.TRACEPARENT)


def _error(message: str) -> Status:
    """An error status whose description (a step's error, say) shows no secret this process
    has loaded: spans leave the process, so they are held to what logs are (invariant 11)."""
    return Status(StatusCode.ERROR, mask_remembered(message)[:1000])
