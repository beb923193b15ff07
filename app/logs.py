"""Log lines: one handler on the root logger formats every line, ours and the libraries',
as text (for a terminal) or one JSON object per line (``SLUICE_LOG_FORMAT``).

Invariants:

* Every record reaches the root handler's formatter (structlog's `ProcessorFormatter`), so
  in JSON mode every line is one JSON object with ``timestamp``, ``level``, ``logger`` and
  ``event``, whoever logged it; in text mode a line reads
  ``TIME LEVEL logger: event key=value …``.
* A line logged while a job executes carries that job's ids: `bound` sets them in a context
  variable around one job's execution and resets them after it. Asyncio tasks copy the
  context when they are created, so a task a job starts keeps its ids and other jobs' tasks
  never see them.
* No secret this process has loaded is in a line: the `MaskSecrets` filter masks the
  message and traceback, and the rendered line (fields included) is masked again.
* No URL in a line has its credentials or query string (`redact_url`; `redact_urls` on
  every rendered line is the last guard), and the HTTP libraries' own request lines
  (httpx, httpcore: full URLs) are off.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, TextIO

import structlog

from app.secrets import masking
from app.settings import LogFormat, Settings

FIELDS_ATTR = "sluice_fields"
"""The attribute of a record holding its own fields (`logging`'s ``extra``)."""

ID_FIELDS = ("run_id", "flow", "project", "job_id", "attempt", "worker")
"""The ids a run's lines carry, first in a text line."""

_QUIET = {
    "pgserver": logging.WARNING,  # narrates every pg_ctl call at INFO
    # The pool warns on every reconnect attempt while the database is away; Sluice's own
    # components say it once when it goes and once when it is back (`app.db.Outage`).
    "psycopg.pool": logging.ERROR,
    # Their request lines hold full URLs, query strings (tokens) included.
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
}

_NONE: Mapping[str, Any] = MappingProxyType({})
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "sluice_log_fields", default=_NONE
)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Lines logged inside carry `fields` (None values left out); reset on leaving."""
    token = _bound.set({**_bound.get(), **_present(fields)})
    try:
        yield
    finally:
        _bound.reset(token)


def bind(**fields: Any) -> None:
    """Add `fields` to the ids of the enclosing `bound` (reset when it is left)."""
    _bound.set({**_bound.get(), **_present(fields)})


def current() -> Mapping[str, Any]:
    """The fields lines logged here carry."""
    return _bound.get()


def fields(**values: Any) -> dict[str, Any]:
    """A record's own fields, for ``extra=``: ``log.info("…", extra=logs.fields(k=v))``."""
    return {FIELDS_ATTR: _present(values)}


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def redact_url(url: str) -> str:
    """`url` fit for a log line or an error: scheme://host[:port]/path, without its
    credentials, query or fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def configure(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to `stream` (stderr) in the settings' format; returns the
    root handler it installed (replacing any earlier one)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(masking.MaskSecrets())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)  # warnings are lines like any other (py.warnings)
    return handler


def formatter(log_format: LogFormat) -> logging.Formatter:
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if log_format is LogFormat.JSON
        else _render_text
    )
    return _Formatter(
        foreign_pre_chain=[
            _add_fields,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _ordered,
            renderer,
        ],
    )


class _Formatter(structlog.stdlib.ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(masking.mask_remembered(super().format(record)))


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\\\"'<>]+")


def redact_urls(text: str) -> str:
    """`text` with every URL that has credentials or a query `redact_url`ed: the last
    guard, for lines whose logger did not redact (a library's)."""
    return _URL.sub(lambda m: redact_url(m[0]) if "@" in m[0] or "?" in m[0] else m[0], text)


def _add_fields(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    record = event.get("_record")
    own = getattr(record, FIELDS_ATTR, None) or {}
    return {**_bound.get(), **own, **event}


def _ordered(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    head = ("timestamp", "level", "logger", "event", *ID_FIELDS)
    return {key: event[key] for key in head if key in event} | dict(event)


def _render_text(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> str:
    event = dict(event)
    stamp = str(event.pop("timestamp", ""))
    level = str(event.pop("level", "")).upper()
    name = event.pop("logger", "")
    message = str(event.pop("event", ""))
    trace = event.pop("exception", None)
    event.pop("transition", None)  # the message says it
    ordered = [key for key in ID_FIELDS if key in event]
    ordered += [key for key in event if key not in ID_FIELDS]
    pairs = "".join(f" {key}={_text_value(event[key])}" for key in ordered)
    line = f"{stamp} {level} {name}: {message}{pairs}"
    return f"{line}\n{trace}" if trace else line


def _text_value(value: Any) -> str:
    structured = isinstance(value, dict | list | tuple | bool) or value is None
    text = json.dumps(value, default=str) if structured else str(value)
    if text and not any(c in text for c in " \"'=\n\t"):
        return text
    return json.dumps(text)
