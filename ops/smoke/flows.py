"""The flows the smoke test deploys, named with a per-run tag so runs never mix."""

from __future__ import annotations

from typing import Any

DELAY_SECONDS = 5.0


def hello(name: str) -> dict[str, Any]:
    """Sandboxed code, then a reply: ``{"hello": <body.who, or "world">}``."""
    return {
        "name": name,
        "steps": [
            {
                "id": "compute",
                "type": "code",
                "code": "def run(input, ctx):\n"
                "    return {'hello': input['trigger']['body'].get('who', 'world')}",
            },
            {"id": "reply", "type": "respond", "status": 200, "body": "{{ steps.compute.output }}"},
        ],
    }


def delay(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"id": "pause", "type": "delay", "seconds": DELAY_SECONDS},
            {"id": "done", "type": "respond", "body": "done"},
        ],
    }


def approval(name: str) -> dict[str, Any]:
    """Replies with its resume URL, then waits for it to be called."""
    return {
        "name": name,
        "steps": [
            {"id": "ask", "type": "respond", "body": {"approve": "{{ resume_urls.approve }}"}},
            {"id": "approve", "type": "wait_for_webhook", "timeout_seconds": 300},
        ],
    }
