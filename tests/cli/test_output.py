"""The CLI's text: tables, times, truncation, documents in and out, errors, progress."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.cli.output import (
    Console,
    Progress,
    UsageError,
    ago,
    cell,
    duration,
    error_lines,
    error_summary,
    fields,
    parse_document,
    read_document,
    table,
    timestamp,
    truncate,
    yaml_text,
)


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_table_aligns_columns_without_trailing_spaces() -> None:
    text = table(["FLOW", "VERSION", "WEBHOOK"], [["hello", "12", "http://x"], ["a", "3", ""]])
    assert text.split("\n") == [
        "FLOW   VERSION  WEBHOOK",
        "hello  12       http://x",
        "a      3",
    ]


def test_fields_align_values_and_indent_their_later_lines() -> None:
    text = fields([("run", "r1"), ("error", "Traceback:\n  boom")])
    assert text.split("\n") == ["run    r1", "error  Traceback:", "         boom"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        ("short", "short"),
        ("first line\nsecond", "first line…"),
        ("x" * 70, "x" * 59 + "…"),
    ],
)
def test_cell_keeps_one_short_line(value: str | None, shown: str) -> None:
    assert cell(value) == shown


def test_an_error_summary_is_the_exception_of_a_traceback() -> None:
    traceback = (
        "step 'each[1].inner' failed: Traceback (most recent call last):\n"
        '  File "<step>", line 2, in run\n'
        "    return 10 / 0\n"
        "ZeroDivisionError: division by zero\n"
    )
    assert error_summary(traceback) == (
        "step 'each[1].inner' failed: ZeroDivisionError: division by zero"
    )
    assert error_summary("run timed out") == "run timed out"
    assert error_summary(None) == ""


def test_truncate_keeps_short_text_and_says_how_much_it_cut() -> None:
    assert truncate("a\nb\n", max_lines=2) == "a\nb\n"
    lines = "\n".join(f"line {n}" for n in range(30))
    cut = truncate(lines, max_lines=3)
    assert cut.split("\n")[:3] == ["line 0", "line 1", "line 2"]
    assert cut.split("\n")[3] == f"… {len(lines) - 20} more characters (--json shows everything)"
    assert truncate("y" * 50, max_chars=10).startswith("y" * 10 + "\n… 40 more characters")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.0042, "4ms"),
        (0.9996, "1.0s"),
        (2.25, "2.2s"),
        (59.97, "1m 00s"),
        (125, "2m 05s"),
        (3 * 3600 + 7 * 60, "3h 07m"),
        (2 * 86400 + 3600, "2d 01h"),
    ],
)
def test_durations_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_ago_counts_in_the_largest_whole_unit() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert ago(now - timedelta(seconds=7.9), now) == "7s ago"
    assert ago(now - timedelta(minutes=5, seconds=59), now) == "5m ago"
    assert ago(now - timedelta(hours=2), now) == "2h ago"
    assert ago(now - timedelta(days=3), now) == "3d ago"
    assert ago(now + timedelta(seconds=2), now) == "0s ago", "a clock ahead of ours"


def test_timestamps_are_shown_in_a_zone_without_fractions() -> None:
    assert timestamp("2030-01-01T10:00:00.123456+00:00", UTC) == "2030-01-01 10:00:00"
    assert timestamp("2030-01-01T10:00:00+02:00", UTC) == "2030-01-01 08:00:00"
    assert timestamp(None) == "-"


def test_error_lines_name_each_problem_by_path() -> None:
    problems = [{"path": "steps[0].status", "message": "Input should be a valid integer"}]
    assert error_lines("invalid flow definition", problems) == [
        "sluice: invalid flow definition",
        "  steps[0].status: Input should be a valid integer",
    ]
    assert error_lines("bad", [{"path": "", "message": "empty"}])[1] == "  body: empty"


FLOW: dict[str, Any] = {
    "name": "hello",
    "steps": [
        {"id": "compute", "type": "code", "code": "def run(input, ctx):\n    return 1\n"},
        {"id": "reply", "type": "respond", "status": 200, "body": "{{ steps.compute.output }}"},
    ],
}


def test_yaml_shows_code_as_a_literal_block_and_reads_back_the_same() -> None:
    text = yaml_text(FLOW)
    assert "  code: |\n    def run(input, ctx):\n        return 1\n" in text
    assert parse_document(text, "yaml", "flow.yaml") == FLOW


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".txt"])
def test_documents_are_read_by_extension(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"flow{suffix}"
    path.write_text(yaml_text(FLOW) if suffix != ".json" else '{"name": "hello", "steps": []}')
    document = read_document(str(path), io.StringIO())
    assert document["name"] == "hello"


@pytest.mark.parametrize("text", ['{"name": "hello"}', "name: hello\n"])
def test_stdin_may_be_json_or_yaml(text: str) -> None:
    assert read_document("-", io.StringIO(text)) == {"name": "hello"}


def test_yaml_reads_dates_and_yes_as_json_would() -> None:
    document = parse_document("when: 2030-01-01\nanswer: yes\nsure: true\n", "yaml", "f.yaml")
    assert document == {"when": "2030-01-01", "answer": "yes", "sure": True}


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ('{"name": "x",}', "json", "f: invalid JSON: Expecting property name enclosed in double"),
        ("name: [unclosed\n", "yaml", "f: invalid YAML: expected ',' or ']'"),
        ("steps:\n  - id: a\n bad: 1\n", "yaml", "(line 3, column 2)"),
        ("  \n", "yaml", "f: empty document"),
        ("value: .nan\n", "yaml", "f: not representable as JSON"),
        ("value: !!binary eA==\n", "yaml", "f: not representable as JSON"),
    ],
)
def test_unreadable_documents_are_usage_errors(text: str, kind: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_document(text, kind, "f")
    assert message in str(raised.value)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.yaml: no such file or directory"):
        read_document(str(tmp_path / "nope.yaml"), io.StringIO())


def test_progress_is_drawn_and_cleared_only_on_a_terminal() -> None:
    pipe = io.StringIO()
    Progress(pipe).show("deploying 1/2")
    assert pipe.getvalue() == ""
    terminal = Terminal()
    progress = Progress(terminal)
    progress.show("deploying 1/2 a.yaml")
    progress.show("deploying 2/2 b")
    progress.clear()
    assert terminal.getvalue() == (
        "\rdeploying 1/2 a.yaml" + "\rdeploying 2/2 b     " + "\r" + " " * 15 + "\r"
    )


def test_waiting_shows_the_seconds_spent_until_the_block_ends() -> None:
    terminal = Terminal()
    progress = Progress(terminal)
    drawn = threading.Event()
    original = progress.show

    def show(text: str) -> None:
        original(text)
        drawn.set()

    progress.show = show  # type: ignore[method-assign]
    with progress.waiting("waiting for hello's reply…", every=60):
        assert drawn.wait(5)
    assert terminal.getvalue().startswith("\rwaiting for hello's reply… 0s")
    assert terminal.getvalue().endswith("\r")


def test_console_keeps_data_on_stdout_and_clears_progress_first() -> None:
    out, err = io.StringIO(), Terminal()
    console = Console(out, err)
    console.progress.show("working")
    console.print("data")
    console.error("broken", [{"path": "name", "message": "missing"}])
    assert out.getvalue() == "data\n"
    assert err.getvalue().endswith("sluice: broken\n  name: missing\n")
    assert "\r       \r" in err.getvalue()
