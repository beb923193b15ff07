"""Driving the console like a browser: forms with their CSRF tokens, a session cookie."""

from __future__ import annotations

import re
from typing import Any, Protocol

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class _Page(Protocol):
    @property
    def text(self) -> str: ...


def csrf_of(page: _Page) -> str:
    found = _CSRF.search(page.text)
    assert found, "the page has no form with a CSRF token"
    return found[1]


def sign_in_form(key: str, page: _Page, **fields: Any) -> dict[str, Any]:
    return {"key": key, "csrf": csrf_of(page), "next": "/console/runs", **fields}
