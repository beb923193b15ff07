"""The named-block SQL loader."""

from __future__ import annotations

import pytest

from app import queries


def test_parses_named_blocks_without_comments() -> None:
    blocks = queries.parse(
        "-- name: first\n-- Purpose.\nSELECT 1;\n\n-- name: second\n-- Purpose two.\n"
        "SELECT %(x)s -- trailing is kept\nFROM t;\n",
        "f.sql",
    )
    assert blocks == {"first": "SELECT 1", "second": "SELECT %(x)s -- trailing is kept\nFROM t"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SELECT 1;", "no '-- name:' blocks"),
        ("SELECT 0;\n-- name: a\n-- p\nSELECT 1;", "text before the first"),
        ("-- name: a\nSELECT 1;", "lacks its one-line purpose"),
        ("-- name: a\n-- purpose only\n", "has no statement"),
        ("-- name: a\n-- p\nSELECT 1;\n-- name: a\n-- p\nSELECT 2;", "defined twice"),
    ],
)
def test_rejects_malformed_files(text: str, problem: str) -> None:
    with pytest.raises(queries.QueryFileError, match=problem):
        queries.parse(text, "bad.sql")


@pytest.mark.parametrize("file", ["jobs", "locks", "schema", "signals"])
def test_shipped_files_load(file: str) -> None:
    assert queries.load(file)
