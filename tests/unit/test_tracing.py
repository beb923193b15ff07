"""Tracing's import guard and its exporter, in fresh interpreters: off, nothing of
OpenTelemetry is imported; on without the `otel` extra, a clear error; on with an OTLP
endpoint, spans reach it over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

from tests.flows.helpers import local_server

_BLOCK_OTEL = "import sys; sys.modules['opentelemetry'] = None\n"


def python(source: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SLUICE_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_BUILD = """
    import sys
    from pydantic import SecretStr
    from app import tracing
    from app.settings import Settings
    from app.web import create_app
    import app.serve, worker.runner, worker.handlers, worker.flow
    settings = Settings(database_url=SecretStr("postgresql://nowhere/none"))
    create_app(settings)
"""


def test_off_nothing_of_opentelemetry_is_imported() -> None:
    done = python(
        _BUILD
        + """
    assert tracing.setup(settings) is False
    assert tracing.traceparent() is None
    with tracing.span("x") as span:
        span.set("k", 1)
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_off_without_the_extra_everything_works_and_on_it_says_what_to_install() -> None:
    off = python(_BLOCK_OTEL + textwrap.dedent(_BUILD) + "assert not tracing.setup(settings)\n")
    assert off.returncode == 0, off.stderr

    on = python(
        _BLOCK_OTEL
        + textwrap.dedent(_BUILD)
        + "tracing.setup(settings.model_copy(update={'otel_enabled': True}))\n"
    )
    assert on.returncode == 1
    assert "TracingUnavailable" in on.stderr
    assert "pip install 'sluice[otel]'" in on.stderr


async def test_an_otlp_endpoint_turns_tracing_on_and_spans_are_exported_there() -> None:
    async with local_server() as collector:
        source = """
            from app import tracing
            from app.settings import Settings
            assert tracing.setup(Settings())
            with tracing.span("exported", {"k": "v"}):
                pass
        """
        done = await asyncio.to_thread(
            python,
            source,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.base_url,
            OTEL_SERVICE_NAME="sluice-test",
        )
        assert done.returncode == 0, done.stderr
    (export,) = collector.hits("/v1/traces")
    assert export.method == "POST"
    assert export.headers["content-type"] == "application/x-protobuf"
    assert b"exported" in export.body
    assert b"sluice-test" in export.body
