"""The command line's text: what it prints (tables, times, documents, errors, progress) and
the documents it reads (JSON or YAML).

Output rules: data goes to stdout, and progress, notes and errors to stderr, so a pipe only
ever sees data. Progress is drawn only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

import yaml


class UsageError(Exception):
    """The command was given something it cannot use (exit status 2)."""


# Text


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, under upper-case headers."""
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Iterable[tuple[str, str]]) -> str:
    """`label  value` lines with aligned values; later lines of a value are indented to match."""
    pairs = list(pairs)
    width = max((len(label) for label, _ in pairs), default=0) + 2
    return "\n".join(
        label.ljust(width) + value.replace("\n", "\n" + " " * width) for label, value in pairs
    )


def cell(value: object, width: int = 60) -> str:
    """A value for a table cell: its first line, cut to `width` characters."""
    text = "" if value is None else str(value)
    lines = text.strip().splitlines() or [""]
    first = lines[0]
    if len(first) > width or len(lines) > 1:
        return first[: width - 1].rstrip() + "…"
    return first


def error_summary(text: str | None) -> str:
    """An error in one line: a Python traceback is cut to its last line, the exception."""
    if not text:
        return ""
    before, traceback, after = text.partition("Traceback (most recent call last):")
    lines = [line.strip() for line in after.splitlines() if line.strip()]
    if not traceback or not lines:
        return text
    return f"{before.strip()} {lines[-1]}".strip()


def truncate(text: str, *, max_lines: int = 20, max_chars: int = 2000) -> str:
    """The start of `text`, with a note saying how much was left out."""
    cut = min(len(text), max_chars)
    newline = -1
    for _ in range(max_lines):
        newline = text.find("\n", newline + 1)
        if newline == -1:
            break
    else:
        cut = min(cut, newline)
    if cut >= len(text.rstrip("\n")):
        return text
    return f"{text[:cut]}\n… {len(text) - cut} more characters (--json shows everything)"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)}ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def timestamp(value: str | None, tz: tzinfo | None = None) -> str:
    """An ISO 8601 time from the server, in `tz` (default: this machine's zone)."""
    if not value:
        return "-"
    return parse_time(value).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def json_text(value: Any, *, compact: bool = False) -> str:
    return json.dumps(value, indent=None if compact else 2, ensure_ascii=False)


class _YamlDumper(yaml.SafeDumper):
    """Multi-line strings (step code) as literal blocks, the way a person writes them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_YamlDumper.add_representer(str, _represent_str)


def yaml_text(value: Any) -> str:
    return yaml.dump(
        value, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, width=100
    ).rstrip("\n")


def error_lines(message: str, problems: Iterable[dict[str, str]] = ()) -> list[str]:
    """`sluice: message`, then one `  path: message` line per problem."""
    return [
        f"sluice: {message}",
        *(f"  {p.get('path') or 'body'}: {p.get('message', '')}" for p in problems),
    ]


def candidate_lines(body: Any) -> list[str]:
    """The runs an ambiguous short id could name (an error's `candidates`), a line each."""
    found = body.get("candidates") if isinstance(body, dict) else None
    if not isinstance(found, list):
        return []
    return [
        f"  {each.get('id')}  {each.get('flow')}  {each.get('status')}  {each.get('created_at')}"
        for each in found
        if isinstance(each, dict)
    ]


# Documents


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML read as JSON would be: dates stay strings, only true/false are booleans."""


_BOOL = "tag:yaml.org,2002:bool"
_YamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in (_BOOL, "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def read_document(source: str, stdin: TextIO) -> Any:
    """The document in file `source`, read as JSON or YAML by its extension.

    `-` reads stdin; it, and a file with another extension, may be either.
    """
    if source == "-":
        return parse_document(stdin.read(), None, "<stdin>")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{source}: {(exc.strerror or str(exc)).lower()}") from None
    return parse_document(text, _FORMATS.get(path.suffix.lower()), source)


def parse_document(text: str, kind: str | None, where: str) -> Any:
    """`text` as `kind` ("json", "yaml", or None: JSON if it parses, else YAML)."""
    if not text.strip():
        raise UsageError(f"{where}: empty document")
    value: Any
    if kind == "yaml":
        value = _load_yaml(text, where)
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if kind == "json":
                raise UsageError(
                    f"{where}: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
                ) from None
            value = _load_yaml(text, where)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: not representable as JSON: {exc}") from None
    return value


def _load_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: invalid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc)


# The terminal


class Progress:
    """One transient status line on a terminal's stderr; nothing when it is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = stream.isatty()
        self._stream = stream
        self._shown = 0
        self._lock = threading.Lock()

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        text = text[: shutil.get_terminal_size().columns - 1]
        with self._lock:
            self._stream.write("\r" + text.ljust(self._shown))
            self._stream.flush()
            self._shown = len(text)

    def clear(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._shown:
                self._stream.write("\r" + " " * self._shown + "\r")
                self._stream.flush()
                self._shown = 0

    @contextlib.contextmanager
    def waiting(self, text: str, *, every: float = 1.0) -> Iterator[None]:
        """`text` and the seconds spent in the block, refreshed every `every` seconds."""
        if not self.enabled:
            yield
            return
        done = threading.Event()
        start = time.monotonic()

        def tick() -> None:
            while True:
                self.show(f"{text} {time.monotonic() - start:.0f}s")
                if done.wait(every):
                    return

        ticker = threading.Thread(target=tick, name="sluice-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            self.clear()


@dataclass
class Console:
    """Where a command writes: data on `out`, notes and errors on `err`."""

    out: TextIO
    err: TextIO
    json: bool = False
    progress: Progress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress(self.err)

    @property
    def terminal(self) -> bool:
        return self.out.isatty()

    def print(self, text: str = "") -> None:
        self.progress.clear()
        print(text, file=self.out, flush=True)

    def print_json(self, value: Any, *, compact: bool = False) -> None:
        self.print(json_text(value, compact=compact))

    def note(self, text: str) -> None:
        self.progress.clear()
        print(text, file=self.err, flush=True)

    def error(self, message: str, problems: Iterable[dict[str, str]] = ()) -> None:
        for line in error_lines(message, problems):
            self.note(line)
