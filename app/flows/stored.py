"""Values as PostgreSQL can store them: it refuses NUL characters in text and jsonb, so
they are replaced by U+FFFD (an escaped NUL in JSON text is one preceded by an even number
of backslashes)."""

from __future__ import annotations

import json
import re
from typing import Any

from psycopg.types.json import Jsonb

_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def jsonb(value: Any) -> Jsonb:
    """`value` as a jsonb parameter that PostgreSQL accepts (NUL characters replaced)."""
    return Jsonb(value, dumps=_dumps)


def text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value
