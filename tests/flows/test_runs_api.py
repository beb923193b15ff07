"""The runs API (list, show, cancel, retry) and `/metrics`, through a real app and worker."""

from __future__ import annotations

from typing import Any

from prometheus_client.samples import Sample

from tests.flows.helpers import (
    busy_descendants,
    code,
    local_server,
    metric_samples,
    second_project_client,
    started_run,
    step,
)
from tests.flows.stack import Stack, running_stack
from tests.integration.helpers import eventually

ALPHA: dict[str, Any] = {
    "name": "alpha",
    "steps": [{"id": "reply", "type": "respond", "body": "ok"}],
}
BETA: dict[str, Any] = {
    "name": "beta",
    "steps": [code("fail", "def run(input, ctx):\n    raise ValueError('no')")],
}
WAITS: dict[str, Any] = {
    "name": "waits",
    "steps": [
        {"id": "ask", "type": "respond", "body": "{{ resume_urls.gate }}"},
        {"id": "gate", "type": "wait_for_webhook"},
    ],
}


async def list_ids(stack: Stack, **query: Any) -> list[str]:
    response = await stack.client.get("/api/v1/runs", params=query)
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["runs"]]


async def query_problem(stack: Stack, **query: Any) -> str:
    response = await stack.client.get("/api/v1/runs", params=query)
    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    path: str = problem["path"]
    return path


async def test_runs_are_listed_newest_first_filtered_and_paged(stack: Stack) -> None:
    alpha = await stack.deploy(ALPHA)
    beta = await stack.deploy(BETA)
    created = []
    for flow_id in (alpha["id"], beta["id"], alpha["id"], beta["id"], alpha["id"]):
        reply = await stack.trigger(flow_id, sync=True)
        created.append(reply.headers["x-sluice-run-id"])
    newest_first = created[::-1]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await stack.client.get("/api/v1/runs", params=params)
        assert response.status_code == 200, response.text
        pages.append([run["id"] for run in response.json()["runs"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert await list_ids(stack, flow="alpha") == [created[4], created[2], created[0]]
    assert await list_ids(stack, flow="nothing") == []
    assert await list_ids(stack, status="FAILED") == [created[3], created[1]]
    assert await list_ids(stack, status="failed", flow="beta", limit=1) == [created[3]]
    assert await list_ids(stack, status="SUCCEEDED", flow="beta") == []
    [summary] = (await stack.client.get("/api/v1/runs", params={"limit": 1})).json()["runs"]
    assert summary["flow"] == "alpha"
    assert summary["status"] == "SUCCEEDED"
    assert summary["flow_id"] == alpha["id"]

    assert await query_problem(stack, status="DONE") == "status"
    for limit in ("0", "201", "-1", "two"):
        assert await query_problem(stack, limit=limit) == "limit"
    assert await query_problem(stack, cursor="not-a-cursor") == "cursor"


async def test_runs_belong_to_their_project_and_need_a_key(stack: Stack, database_url: str) -> None:
    flow = await stack.deploy(BETA)
    run_id = await started_run(stack, flow["id"])
    await stack.wait_for_status(run_id)

    async with await second_project_client(stack, database_url) as other:
        assert (await other.get(f"/api/v1/runs/{run_id}")).status_code == 404
        assert (await other.get("/api/v1/runs")).json()["runs"] == []
        assert (await other.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 404
        assert (await other.post(f"/api/v1/runs/{run_id}/retry")).status_code == 404

    for headers in ({"authorization": ""}, {"authorization": "Bearer wrong"}):
        for path in ("/api/v1/runs", f"/api/v1/runs/{run_id}"):
            refused = await stack.client.get(path, headers=headers)
            assert refused.status_code == 401, (path, headers)
            assert "API key" in refused.json()["error"]
    assert (await stack.client.get("/api/v1/runs/not-a-uuid")).status_code == 404
    assert (await stack.run(run_id))["status"] == "FAILED"


async def test_a_paused_run_can_be_canceled_once(stack: Stack) -> None:
    flow = await stack.deploy(WAITS)
    asked = await stack.trigger(flow["id"], sync=True)
    run_id = asked.headers["x-sluice-run-id"]
    await stack.wait_for_status(run_id, {"PAUSED"})

    canceled = await stack.client.post(f"/api/v1/runs/{run_id}/cancel")
    again = await stack.client.post(f"/api/v1/runs/{run_id}/cancel")
    resumed = await stack.client.post(asked.text, json={})

    assert canceled.status_code == 200, canceled.text
    summary = canceled.json()
    assert (summary["id"], summary["status"]) == (run_id, "CANCELED")
    assert summary["error"] == "canceled by request"
    assert "steps" not in summary
    assert again.status_code == 409
    assert "already ended (CANCELED)" in again.json()["error"]
    assert resumed.status_code == 409
    assert (await stack.run(run_id))["status"] == "CANCELED"


async def test_canceling_a_running_code_step_stops_its_sandbox(database_url: str) -> None:
    async with running_stack(database_url, worker_concurrency=1, sync_timeout_seconds=10) as stack:
        spin = await stack.deploy(
            {
                "name": "spin",
                "steps": [
                    code(
                        "forever",
                        "def run(input, ctx):\n    while True:\n        pass",
                        timeout_seconds=120,
                    )
                ],
            }
        )
        quick = await stack.deploy(ALPHA)
        run_id = await started_run(stack, spin["id"])

        async def spinning() -> bool:
            return bool(busy_descendants(min_cpu_seconds=0.2))

        async def stopped() -> bool:
            return not busy_descendants()

        await eventually(spinning)
        canceled = await stack.client.post(f"/api/v1/runs/{run_id}/cancel")
        assert canceled.status_code == 200, canceled.text
        await eventually(stopped, within=5)
        following = await stack.trigger(quick["id"], sync=True)

        assert following.status_code == 200, following.text
        assert following.text == "ok"
        run = await stack.run(run_id)
        assert run["status"] == "CANCELED"
        # The stopped step is recorded: the worker freed its one slot only after that.
        assert [(s["key"], s["status"]) for s in run["steps"]] == [("forever", "CANCELED")]


async def test_a_failed_run_is_retried_from_its_failed_step(stack: Stack) -> None:
    async with local_server() as server:
        server.script("/second", (500, {"down": True}))
        flow = await stack.deploy(
            {
                "name": "twostep",
                "steps": [
                    {"id": "first", "type": "http", "url": server.url("/first")},
                    {"id": "second", "type": "http", "url": server.url("/second")},
                ],
            }
        )
        run_id = await started_run(stack, flow["id"])
        failed = await stack.wait_for_status(run_id)
        assert failed["status"] == "FAILED"

        server.script("/second", (200, {"up": True}))
        retried = await stack.client.post(f"/api/v1/runs/{run_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "QUEUED"
        assert retried.json()["error"] is None
        run = await stack.wait_for_status(run_id)

    assert run["status"] == "SUCCEEDED", run["error"]
    assert step(run, "first") == step(failed, "first")
    assert step(run, "second")["status"] == "SUCCEEDED"
    assert step(run, "second")["output"]["body"] == {"up": True}
    assert len(server.hits("/first")) == 1
    assert len(server.hits("/second")) == 2
    again = await stack.client.post(f"/api/v1/runs/{run_id}/retry")
    assert again.status_code == 409
    assert "SUCCEEDED" in again.json()["error"]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and s.labels == labels)


async def test_metrics_expose_runs_queue_and_step_durations(stack: Stack) -> None:
    waits = await stack.deploy(WAITS)
    beta = await stack.deploy(BETA)
    project = str(stack.project_id)
    failed_step = {"type": "code", "status": "FAILED", "project": project, "flow": "beta"}
    failed_run = {"status": "FAILED", "project": project, "flow": "beta"}

    before = await metric_samples(stack)
    run_id = (await stack.trigger(waits["id"], sync=True)).headers["x-sluice-run-id"]
    await stack.wait_for_status(run_id, {"PAUSED"})
    await stack.wait_for_status(await started_run(stack, beta["id"]))
    # The worker counts a run's end just after committing it.
    ended = value(before, "sluice_runs_finished_total", **failed_run) + 1
    await eventually(lambda: runs_finished(stack, failed_run, ended))

    response = await stack.client.get("/metrics")
    samples = await metric_samples(stack)

    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    runs = {s.labels["status"]: s.value for s in samples if s.name == "sluice_runs"}
    assert runs == {"QUEUED": 0, "RUNNING": 0, "PAUSED": 1}
    jobs = {s.labels["state"] for s in samples if s.name == "sluice_queue_jobs"}
    assert {"ready", "scheduled", "running", "dead"} <= jobs
    count = "sluice_step_duration_seconds_count"
    assert value(samples, count, **failed_step) == value(before, count, **failed_step) + 1
    buckets = [
        s
        for s in samples
        if s.name == "sluice_step_duration_seconds_bucket"
        and s.labels.items() >= {"type": "respond", "status": "SUCCEEDED", "flow": "waits"}.items()
        and s.labels["project"] == project
    ]
    assert buckets
    assert buckets[-1].labels["le"] == "+Inf"


async def runs_finished(stack: Stack, labels: dict[str, str], expected: float) -> bool:
    samples = await metric_samples(stack)
    return value(samples, "sluice_runs_finished_total", **labels) == expected


async def test_metrics_label_the_first_flows_a_worker_sees_and_count_later_ones_as_other(
    database_url: str,
) -> None:
    async with running_stack(database_url, metrics_max_flows=1) as stack:
        alpha = await stack.deploy(ALPHA)
        beta = await stack.deploy(BETA)
        project = str(stack.project_id)
        own = {"status": "SUCCEEDED", "project": project, "flow": "alpha"}
        other = {"status": "FAILED", "project": "_other", "flow": "_other"}
        before = await metric_samples(stack)
        for flow in (alpha, beta, alpha):
            await stack.wait_for_status(await started_run(stack, flow["id"]))
        alphas = value(before, "sluice_runs_finished_total", **own) + 2
        await eventually(lambda: runs_finished(stack, own, alphas))
        others = value(before, "sluice_runs_finished_total", **other) + 1
        await eventually(lambda: runs_finished(stack, other, others))
        samples = await metric_samples(stack)

    count = "sluice_step_duration_seconds_count"
    beta_step = {"type": "code", "status": "FAILED", "project": "_other", "flow": "_other"}
    assert value(samples, count, **beta_step) == value(before, count, **beta_step) + 1
    alpha_step = {"type": "respond", "status": "SUCCEEDED", "project": project, "flow": "alpha"}
    assert value(samples, count, **alpha_step) == value(before, count, **alpha_step) + 2


async def test_a_retry_does_not_rerun_a_tolerated_failure_before_the_failed_step(
    stack: Stack,
) -> None:
    async with local_server() as server:
        server.script("/optional", (500, {}))
        server.script("/required", (500, {}), (200, {}))
        flow = await stack.deploy(
            {
                "name": "partly",
                "steps": [
                    {
                        "id": "optional",
                        "type": "http",
                        "method": "POST",
                        "url": server.url("/optional"),
                        "continue_on_error": True,
                    },
                    {"id": "required", "type": "http", "url": server.url("/required")},
                ],
            }
        )
        run_id = await started_run(stack, flow["id"])
        failed = await stack.wait_for_status(run_id)
        assert failed["status"] == "FAILED"

        assert (await stack.client.post(f"/api/v1/runs/{run_id}/retry")).status_code == 202
        run = await stack.wait_for_status(run_id)

    assert run["status"] == "SUCCEEDED"
    assert len(server.hits("/optional")) == 1
    assert step(run, "optional") == step(failed, "optional")


async def test_a_flow_filter_with_a_nul_is_a_422_not_a_500(stack: Stack) -> None:
    # Found by schemathesis: PostgreSQL text cannot hold a NUL, and the query failed.
    answer = await stack.client.get("/api/v1/runs", params={"flow": "a\x00b"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["problems"][0]["path"] == "flow"
