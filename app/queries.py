"""Named SQL blocks loaded from ``app/sql/*.sql``.

Each block starts with ``-- name: <name>`` followed by a one-line ``--`` purpose, then the
statement. Blocks are parsed once per process; parameters use psycopg's ``%(name)s`` style.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import LiteralString

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class QueryFileError(Exception):
    """A ``.sql`` file does not follow the named-block format."""


def parse(text: str, source: str) -> dict[str, LiteralString]:
    blocks: dict[str, LiteralString] = {}
    matches = list(_NAME.finditer(text))
    if not matches:
        raise QueryFileError(f"{source}: no '-- name:' blocks")
    if text[: matches[0].start()].strip():
        raise QueryFileError(f"{source}: text before the first '-- name:' block")
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        name = match["name"]
        end = following.start() if following else len(text)
        body = text[match.end() : end].strip()
        lines = body.splitlines()
        if not lines or not lines[0].startswith("--"):
            raise QueryFileError(f"{source}: block {name!r} lacks its one-line purpose")
        statement = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
        if not statement.strip():
            raise QueryFileError(f"{source}: block {name!r} has no statement")
        if name in blocks:
            raise QueryFileError(f"{source}: block {name!r} defined twice")
        # The text comes from files shipped with the package, never from input.
        blocks[name] = statement.strip().rstrip(";")
    return blocks


@functools.cache
def load(file: str) -> dict[str, LiteralString]:
    """The named blocks of ``app/sql/<file>.sql``."""
    text = resources.files("app").joinpath("sql", f"{file}.sql").read_text(encoding="utf-8")
    return parse(text, f"app/sql/{file}.sql")


def sql_files() -> list[Path]:
    """Every ``app/sql/*.sql`` file shipped with the package."""
    folder = Path(str(resources.files("app").joinpath("sql")))
    return sorted(folder.glob("*.sql"))
