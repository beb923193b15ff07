"""Template bombs in real flows: each ends its step FAILED with the field and the limit, is
not retried, and while one renders the same process keeps answering (`/health`)."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.flows.helpers import step
from tests.flows.stack import Stack

NESTED_LOOPS = "{% for i in range(20000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}x"


def replying(name: str, body: object, **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "steps": [{"id": "reply", "type": "respond", "body": body, **fields}],
    }


async def test_a_cpu_bomb_fails_its_step_while_the_process_keeps_answering(stack: Stack) -> None:
    flow = await stack.deploy(replying("loops", {"text": NESTED_LOOPS}))
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
            while not done.is_set():
                started = time.monotonic()
                response = await client.get("/health")
                gaps.append(time.monotonic() - started)
                assert response.status_code == 200

    probing = asyncio.create_task(probe())
    try:
        reply = await stack.trigger(flow["id"], {}, sync=True)
    finally:
        done.set()
        await probing
    assert reply.status_code == 500, reply.text
    run = await stack.run(reply.headers["x-sluice-run-id"])
    assert run["status"] == "FAILED"
    error = step(run, "reply")["error"]
    assert error.startswith("body.text: template ")
    assert "used more than 100 ms of CPU time" in error
    assert "SLUICE_TEMPLATE_CPU_MS" in error
    # Rendered in the worker's loop, this template held /health for seconds.
    assert len(gaps) >= 3
    assert max(gaps) < 1.0, gaps


async def test_memory_and_power_bombs_fail_once_naming_their_limit(stack: Stack) -> None:
    flows = {
        "center": ("{{ 'a'|center(300000000)|length }}", "needed more than 64 MiB of memory"),
        "powers": ("{{ (((2**1024)**1024)**8) > 0 }}", "a power with more than 65536 bits"),
        "output": (
            "{% for i in range(100000) %}0123456789abcdef{% endfor %}",
            "renders more than 1,048,576 characters",
        ),
    }
    for name, (template, message) in flows.items():
        flow = await stack.deploy(
            {
                "name": name,
                "steps": [
                    {
                        "id": "compute",
                        "type": "code",
                        "code": "def run(input, ctx):\n    return input",
                        "input": {"value": template},
                        "retry": {"max_attempts": 3, "backoff_seconds": 0},
                    }
                ],
            }
        )
        started = await stack.trigger(flow["id"], {})
        run = await stack.wait_for_status(started.json()["run_id"])
        assert run["status"] == "FAILED", (name, run)
        compute = step(run, "compute")
        assert compute["attempts"] == 1, (name, compute)
        assert compute["error"].startswith("input.value: template "), compute["error"]
        assert message in compute["error"], (name, compute["error"])


async def test_an_inline_template_and_a_rendered_one_give_the_same_reply(stack: Stack) -> None:
    inline = await stack.deploy(replying("inline", "{{ trigger.body.who | upper }}"))
    process = await stack.deploy(replying("process", "{{ (trigger.body.who ~ '') | upper }}"))
    for flow in (inline, process):
        reply = await stack.trigger(flow["id"], {"who": "ada"}, sync=True)
        assert reply.status_code == 200, reply.text
        assert reply.text == "ADA"
