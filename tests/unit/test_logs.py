"""The log formatter: JSON objects or readable text, both with the bound ids, secrets masked
and URLs without credentials or query strings; the access log middleware."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app import logs, run_log
from app.flows.model import RunStatus
from app.secrets import masking
from app.settings import LogFormat, Settings
from app.web.access import AccessLog
from app.web.replies import RUN_ID_HEADER


@contextmanager
def captured(log_format: LogFormat) -> Iterator[io.StringIO]:
    """The root logger's lines, as `configure` formats them, while inside."""
    root = logging.getLogger()
    kept, level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure(Settings(log_format=log_format), stream)
    try:
        yield stream
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in kept:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def test_json_lines_are_one_object_each_with_the_bound_ids_and_tracebacks() -> None:
    with captured(LogFormat.JSON) as out:
        with logs.bound(run_id="r-1", job_id=7, flow=None):
            logging.getLogger("some.library").info("hello %s", "there")
            try:
                raise ValueError("boom")
            except ValueError:
                logging.getLogger("app.x").exception("it broke")
        logging.getLogger("app.x").warning("outside")
    first, broke, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "hello there"
    assert first["logger"] == "some.library"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert (first["run_id"], first["job_id"]) == ("r-1", 7)
    assert "flow" not in first  # None is left out
    assert broke["exception"].endswith("ValueError: boom")
    assert "run_id" not in outside


def test_text_lines_read_as_a_sentence_with_the_ids_after_it() -> None:
    with captured(LogFormat.TEXT) as out, logs.bound(run_id="r-2", worker="w 1"):
        run_log.transition(run_log.Transition.PAUSED, "r-2", waits_for="webhook", step="ok")
    [line] = out.getvalue().splitlines()
    assert line.endswith(
        ' INFO sluice.runs: run paused run_id=r-2 worker="w 1" waits_for=webhook step=ok'
    )


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_remembered_secrets_are_masked_in_messages_fields_and_tracebacks(
    log_format: LogFormat,
) -> None:
    secret = "sk-remembered-4b1e0c"
    masking.remember([secret])
    with captured(log_format) as out:
        run_log.ended("r-3", RunStatus.FAILED, f"step 'x' failed: bad {secret}")
        try:
            raise RuntimeError(secret)
        except RuntimeError:
            logging.getLogger("app.x").exception("said %s", secret)
    written = out.getvalue()
    assert secret not in written
    assert written.count(masking.MASK) == 3


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_urls_lose_credentials_and_query_strings_in_every_line(log_format: LogFormat) -> None:
    with captured(log_format) as out:
        logging.getLogger("some.client").warning(
            "GET https://user:pw@api.example.com:8443/v1/items?token=abc123 failed"
        )
        logging.getLogger("httpx").info("HTTP Request: GET http://example.com/?token=abc123")
    written = out.getvalue()
    assert "https://api.example.com:8443/v1/items failed" in written
    assert "abc123" not in written
    assert "pw@" not in written
    assert "httpx" not in written  # its request lines are off
    if log_format is LogFormat.JSON:
        json.loads(written)


def test_redact_url_keeps_scheme_host_port_and_path_only() -> None:
    assert logs.redact_url("https://u:p@Example.com:8443/a/b?token=x#f") == (
        "https://example.com:8443/a/b"
    )
    assert logs.redact_url("http://[::1]/x?y=1") == "http://[::1]/x"
    assert logs.redact_url("http://h:99999/") == "<invalid URL>"


def test_a_failed_runs_error_is_one_line_naming_the_exception() -> None:
    error = (
        "step 'x' failed: Traceback (most recent call last):\n"
        '  File "<step>", line 2, in run\n'
        "    raise ValueError('boom')\n"
        "ValueError: boom\n"
    )
    assert run_log.one_line(error) == "step 'x' failed: ValueError: boom"
    assert run_log.one_line("two\nlines") == "two lines"
    assert len(run_log.one_line("x" * 10_000)) == run_log.MAX_ERROR_CHARS


async def _answer(request: Request) -> JSONResponse:
    if request.path_params["what"] == "raise":
        raise RuntimeError("the handler broke")
    return JSONResponse({}, status_code=202, headers={RUN_ID_HEADER: "run-42"})


def test_the_access_log_is_one_line_per_request_without_the_query() -> None:
    app = AccessLog(Starlette(routes=[Route("/w/{what}", _answer, methods=["POST"])]))
    with captured(LogFormat.JSON) as out, TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/w/ok?token=abc123").status_code == 202
        assert client.post("/w/raise").status_code == 500
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "sluice.access"]
    ok, broke = access
    assert ok["method"] == "POST"
    assert ok["path"] == "/w/ok"
    assert ok["status"] == 202
    assert ok["run_id"] == "run-42"
    assert ok["duration_ms"] >= 0
    assert (broke["path"], broke["status"]) == ("/w/raise", 500)
    assert "run_id" not in broke
    assert "abc123" not in out.getvalue()
