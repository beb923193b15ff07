"""OpenTelemetry traces of runs, through a real app and worker, read back with the SDK's
in-memory exporter: the caller's trace continues across the queue, each step has its span,
an http step's request carries the trace, and a sub-flow's run is a child in the same trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app import tracing
from tests.flows.helpers import code, local_server, step
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


@pytest.fixture
async def traced(database_url: str, spans: InMemorySpanExporter) -> AsyncIterator[Stack]:
    async with running_stack(database_url, otel_enabled=True) as running:
        yield running


def named(found: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matching = [s for s in found if s.name == name]
    assert len(matching) == 1, (name, [s.name for s in found])
    return matching[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def ended(spans: InMemorySpanExporter, done: Callable[[list[str]], bool]) -> None:
    async def arrived() -> bool:
        return done([s.name for s in spans.get_finished_spans()])

    await eventually(arrived)


async def test_a_webhook_with_a_traceparent_gets_one_trace_across_the_queue(
    traced: Stack, spans: InMemorySpanExporter
) -> None:
    async with local_server() as server:
        flow = await traced.deploy(
            {
                "name": "traced",
                "steps": [
                    code("double", "def run(input, ctx):\n    return 2"),
                    {"id": "notify", "type": "http", "method": "POST", "url": server.url("/n")},
                    {"id": "reply", "type": "respond", "body": "{{ steps.double.output }}"},
                ],
            }
        )
        answer = await traced.client.post(
            f"/webhooks/{flow['id']}/sync?token=hidden",
            json={},
            headers={"traceparent": TRACEPARENT},
        )
        assert answer.status_code == 200, answer.text
        run_id = answer.headers["x-sluice-run-id"]
        run = await traced.wait_for_status(run_id)
        assert step(run, "notify")["status"] == "SUCCEEDED"
        await ended(
            spans, lambda names: "run traced" in names and "POST /webhooks/{flow_id}/sync" in names
        )
        (hit,) = server.hits("/n")

    found = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in found} == {TRACE_ID}
    request = named(found, "POST /webhooks/{flow_id}/sync")
    enqueue = named(found, "enqueue")
    execution = named(found, "run traced")
    claim = named(found, "claim")
    double, notify, reply = (named(found, f"step {key}") for key in ("double", "notify", "reply"))
    outbound = named(found, "POST 127.0.0.1")
    assert request.kind is SpanKind.SERVER
    assert parent_of(request) == int(CALLER_SPAN, 16)
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/webhooks/{flow_id}/sync"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["sluice.run_id"] == run_id
    assert parent_of(enqueue) == request.context.span_id
    assert parent_of(named(found, "reply")) == request.context.span_id
    assert execution.kind is SpanKind.CONSUMER
    assert parent_of(execution) == enqueue.context.span_id
    assert execution.attributes is not None
    assert execution.attributes["sluice.run_id"] == run_id
    for child in (claim, double, notify, reply):
        assert parent_of(child) == execution.context.span_id, child.name
    assert double.attributes is not None
    assert double.attributes["sluice.step.status"] == "SUCCEEDED"
    assert outbound.kind is SpanKind.CLIENT
    assert parent_of(outbound) == notify.context.span_id
    assert outbound.attributes is not None
    assert outbound.attributes["http.response.status_code"] == 200
    assert outbound.attributes["url.path"] == "/n"
    # The request carried the client span's context.
    outbound_id = format(outbound.context.span_id, "016x")
    assert hit.headers["traceparent"] == f"00-{TRACE_ID}-{outbound_id}-01"
    # Nothing of the query (credentials may travel there) is in any span.
    assert all("hidden" not in str(s.attributes) for s in found)


async def test_a_failing_step_marks_its_span_and_a_sub_flow_is_a_child_in_the_same_trace(
    traced: Stack, spans: InMemorySpanExporter
) -> None:
    await traced.deploy(
        {
            "name": "inner",
            "steps": [code("boom", "def run(input, ctx):\n    raise ValueError('x')")],
        }
    )
    outer = await traced.deploy(
        {"name": "outer", "steps": [{"id": "call", "type": "call_flow", "flow": "inner"}]}
    )
    answer = await traced.client.post(
        f"/webhooks/{outer['id']}", json={}, headers={"traceparent": TRACEPARENT}
    )
    assert answer.status_code == 202, answer.text
    run = await traced.wait_for_status(answer.json()["run_id"])
    assert run["status"] == "FAILED"
    await ended(spans, lambda names: names.count("run outer") == 2 and "step call" in names)

    found = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in found} == {TRACE_ID}
    first, _resumed = sorted(
        (s for s in found if s.name == "run outer"), key=lambda s: s.start_time or 0
    )
    inner = named(found, "run inner")
    assert parent_of(inner) == first.context.span_id
    boom = named(found, "step boom")
    assert parent_of(boom) == inner.context.span_id
    assert boom.status.status_code is StatusCode.ERROR
    assert "ValueError" in (boom.status.description or "")
    call = named(found, "step call")
    assert call.status.status_code is StatusCode.ERROR


def test_tracing_is_wanted_by_the_setting_or_an_otlp_endpoint_unless_the_sdk_is_disabled() -> None:
    from app.settings import Settings

    unset, on, off = Settings(), Settings(otel_enabled=True), Settings(otel_enabled=False)
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    traces_endpoint = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}
    disabled = {**endpoint, "OTEL_SDK_DISABLED": "true"}

    assert not tracing.wanted(unset, {})
    assert tracing.wanted(unset, endpoint)
    assert tracing.wanted(unset, traces_endpoint)
    assert tracing.wanted(on, {})
    assert not tracing.wanted(off, endpoint)
    assert not tracing.wanted(on, disabled)
    assert not tracing.wanted(unset, {"OTEL_EXPORTER_OTLP_ENDPOINT": " "})


async def test_a_span_never_holds_a_secret_of_the_step(
    traced: Stack, spans: InMemorySpanExporter
) -> None:
    """Spans leave the process: an error naming a secret reaches them masked."""
    secret = "tr4ce-secret-value-0042"
    put = await traced.client.put("/api/v1/secrets/TOKEN", json={"value": secret})
    assert put.status_code == 201, put.text
    flow = await traced.deploy(
        {
            "name": "leaky",
            "steps": [
                {
                    "id": "leak",
                    "type": "code",
                    "secrets": ["TOKEN"],
                    "code": "def run(input, ctx):\n    raise ValueError(ctx['secrets']['TOKEN'])",
                }
            ],
        }
    )
    answer = await traced.client.post(f"/webhooks/{flow['id']}", json={})
    run = await traced.wait_for_status(answer.json()["run_id"])
    assert run["status"] == "FAILED"
    await ended(spans, lambda names: "step leak" in names and "run leaky" in names)
    leak = named(spans.get_finished_spans(), "step leak")
    assert leak.status.status_code is StatusCode.ERROR
    assert "ValueError: ***" in (leak.status.description or "")
    for span in spans.get_finished_spans():
        assert secret not in (span.status.description or ""), span.name
        assert all(secret not in str(value) for value in (span.attributes or {}).values())
