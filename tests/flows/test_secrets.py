"""Secrets and vars in real flows: an http step sends a secret, a code step reads its own,
and the value appears nowhere that is recorded, returned or stored in the clear."""

from __future__ import annotations

from typing import Any

import httpx

from tests.flows.helpers import code, local_server, problem_at, rejected, step
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import connect

TOKEN = "tok_9f8e7d6c5b4a-very-secret"


def run_text(run: dict[str, Any]) -> str:
    return httpx.Response(200, json=run).text


async def put(stack: Stack, kind: str, name: str, value: str) -> httpx.Response:
    return await stack.client.put(f"/api/v1/{kind}/{name}", json={"value": value})


async def stored_text(stack: Stack, query: str) -> str:
    """Every row `query` selects, as one text (what a database reader would see)."""
    async with await connect(stack.settings.database_url.get_secret_value()) as conn:  # type: ignore[union-attr]
        cur = await conn.execute(query)
        return "\n".join(str(row) for row in await cur.fetchall())


async def test_a_secret_is_written_once_and_never_read_back(stack: Stack) -> None:
    created = await put(stack, "secrets", "API_TOKEN", TOKEN)
    assert created.status_code == 201, created.text
    assert TOKEN not in created.text
    assert (await put(stack, "secrets", "API_TOKEN", TOKEN + "2")).status_code == 200
    listed = await stack.client.get("/api/v1/secrets")
    assert [s["name"] for s in listed.json()["secrets"]] == ["API_TOKEN"]
    assert TOKEN not in listed.text
    assert TOKEN not in await stored_text(stack, "SELECT * FROM secrets")
    short = await put(stack, "secrets", "PIN", "123")
    assert short.status_code == 422, short.text
    bad = await stack.client.put("/api/v1/secrets/1-bad", json={"value": "abcdef"})
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("'1-bad' is not a name")
    assert (await stack.client.delete("/api/v1/secrets/API_TOKEN")).status_code == 204
    assert (await stack.client.delete("/api/v1/secrets/API_TOKEN")).status_code == 404


async def test_vars_are_readable_and_every_template_sees_them(stack: Stack) -> None:
    assert (await put(stack, "vars", "GREETING", "hello")).status_code == 201
    shown = await stack.client.get("/api/v1/vars/GREETING")
    assert shown.json()["value"] == "hello"
    flow = await stack.deploy(
        {
            "name": "greets",
            "steps": [
                {"id": "r", "type": "respond", "body": "{{ vars.GREETING }} {{ trigger.body.who }}"}
            ],
        }
    )
    reply = await stack.trigger(flow["id"], {"who": "ada"}, sync=True)
    assert reply.text == "hello ada"


async def test_deploy_refuses_secrets_where_they_would_be_recorded_and_missing_names(
    stack: Stack,
) -> None:
    problems = await rejected(
        stack,
        {"name": "leaks", "steps": [{"id": "r", "type": "respond", "body": "{{ secrets.X }}"}]},
    )
    assert "only in an http step's url, headers and body" in problem_at(problems, "steps[0].body")
    problems = await rejected(
        stack,
        {
            "name": "lists",
            "steps": [{"id": "h", "type": "http", "url": "https://x.test/{{ secrets|list }}"}],
        },
    )
    assert "name each secret" in problem_at(problems, "steps[0].url")
    missing = await stack.client.put(
        "/api/v1/flows/missing",
        json={
            "name": "missing",
            "steps": [
                {"id": "h", "type": "http", "url": "https://x.test/?t={{ secrets.NOPE }}"},
                code(
                    "c",
                    "def run(input, ctx):\n    return 1",
                    secrets=["ALSO_NOPE"],
                    input="{{ vars.NOVAR }}",
                ),
            ],
        },
    )
    assert missing.status_code == 422, missing.text
    paths = {p["path"] for p in missing.json()["problems"]}
    assert paths == {"secrets.NOPE", "secrets.ALSO_NOPE", "vars.NOVAR"}


async def test_a_secret_reaches_its_target_and_is_masked_everywhere_it_could_surface(
    stack: Stack,
) -> None:
    assert (await put(stack, "secrets", "API_TOKEN", TOKEN)).status_code == 201
    async with local_server() as server:
        flow = await stack.deploy(
            {
                "name": "calls",
                "steps": [
                    {
                        "id": "call",
                        "type": "http",
                        "method": "POST",
                        "url": server.url("/api") + "?token={{ secrets.API_TOKEN }}",
                        "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                        "body": {
                            "echoed": "{{ secrets.API_TOKEN }}",
                            "json": '{{ {"t": secrets.API_TOKEN} | tojson }}',
                        },
                    },
                    code(
                        "use",
                        """
                        import json
                        def run(input, ctx):
                            token = ctx["secrets"]["API_TOKEN"]
                            print("printing", token, json.dumps({"t": token + '"'}))
                            return {"seen": token, "echo": input}
                        """,
                        secrets=["API_TOKEN"],
                        input="{{ steps.call.output }}",
                    ),
                    code(
                        "fail",
                        """
                        def run(input, ctx):
                            raise ValueError("bad token " + ctx["secrets"]["API_TOKEN"])
                        """,
                        secrets=["API_TOKEN"],
                    ),
                ],
            }
        )
        reply = await stack.trigger(flow["id"], {}, sync=True)
        (hit,) = server.hits("/api")
    assert hit.headers["authorization"] == f"Bearer {TOKEN}"
    assert hit.json()["echoed"] == TOKEN
    assert reply.status_code == 500
    assert TOKEN not in reply.text
    run = await stack.run(reply.headers["x-sluice-run-id"])
    assert run["status"] == "FAILED"
    assert TOKEN not in run_text(run)
    assert step(run, "call")["output"]["body"]["echo"]["echoed"] == "***"
    used = step(run, "use")
    assert used["output"]["seen"] == "***"
    assert "printing ***" in used["stdout"]
    assert "bad token ***" in step(run, "fail")["error"]
    assert "bad token ***" in run["error"]
    stored = await stored_text(stack, "SELECT * FROM step_runs") + await stored_text(
        stack, "SELECT id, status, output, error, response FROM flow_runs"
    )
    assert "***" in stored
    assert TOKEN not in stored
    listed = await stack.client.get("/api/v1/secrets")
    assert listed.json()["secrets"][0]["used_by"] == ["calls"]
    shown = await stack.client.get("/api/v1/flows/calls")
    assert TOKEN not in shown.text


async def test_a_project_cannot_name_another_projects_secrets(database_url: str) -> None:
    async with running_stack(database_url, project="owner") as owner:
        assert (await put(owner, "secrets", "OWNED", TOKEN)).status_code == 201
        async with running_stack(database_url, project="other", with_worker=False) as other:
            assert (await other.client.get("/api/v1/secrets")).json() == {"secrets": []}
            assert (await other.client.delete("/api/v1/secrets/OWNED")).status_code == 404
            deploy = await other.client.put(
                "/api/v1/flows/steal",
                json={
                    "name": "steal",
                    "steps": [
                        {"id": "h", "type": "http", "url": "https://x.test/{{ secrets.OWNED }}"}
                    ],
                },
            )
            assert deploy.status_code == 422
            assert deploy.json()["problems"][0]["path"] == "secrets.OWNED"
