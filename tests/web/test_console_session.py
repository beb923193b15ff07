"""The console over the test client: signing in and out, session cookies, CSRF, who sees
which project, the runs page's filters and paging, errors as pages."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.flows import store
from app.web import create_app
from tests.integration.helpers import connect
from tests.web.apps import ADMIN, app_client, app_settings
from tests.web.console_client import csrf_of, sign_in_form

FLOW = {"name": "hello", "steps": [{"id": "noop", "type": "respond", "body": {"ok": True}}]}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url) as client:
        yield client


def new_project(client: TestClient, name: str) -> str:
    created = client.post(
        "/api/v1/projects", json={"name": name}, headers={"authorization": f"Bearer {ADMIN}"}
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["api_key"]
    return key


def deploy_and_trigger(client: TestClient, key: str, flow: dict[str, Any], times: int) -> list[str]:
    auth = {"authorization": f"Bearer {key}"}
    deployed = client.put(f"/api/v1/flows/{flow['name']}", json=flow, headers=auth)
    assert deployed.status_code == 201, deployed.text
    runs = []
    for _ in range(times):
        accepted = client.post(f"/webhooks/{deployed.json()['id']}", json={})
        assert accepted.status_code == 202, accepted.text
        runs.append(accepted.json()["run_id"])
    return runs


def sign_in(client: TestClient, key: str) -> None:
    form = client.get("/console/sign-in")
    done = client.post("/console/sign-in", data=sign_in_form(key, form), follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/console/runs"


def test_the_root_leads_to_the_console_and_its_sign_in(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307
    assert root.headers["location"] == "/console/runs"
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert page.url.path == "/console/sign-in"
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="key"' in page.text


def test_a_good_key_signs_in_with_a_strict_cookie_and_a_bad_one_does_not(
    client: TestClient,
) -> None:
    key = new_project(client, "alpha")
    form = client.get("/console/sign-in")

    bad = client.post("/console/sign-in", data=sign_in_form(key[:-2] + "xx", form))
    assert bad.status_code == 401
    assert "not a live project key" in bad.text

    good = client.post("/console/sign-in", data=sign_in_form(key, form), follow_redirects=False)
    assert good.status_code == 303
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/console" in cookie
    assert "Max-Age=43200" in cookie
    assert key not in cookie
    assert key.split("_", 2)[2] not in cookie  # the secret may itself hold "_"
    runs = client.get("/console/runs")
    assert runs.status_code == 200
    assert f"sk_{key.split('_')[1]}" in runs.text


def test_a_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    key = new_project(client, "alpha")
    client.get("/console/sign-in")
    refused = client.post("/console/sign-in", data={"key": key, "csrf": "forged"})
    assert refused.status_code == 403
    assert "security token" in refused.text

    sign_in(client, key)
    (run_id,) = deploy_and_trigger(client, key, FLOW, 1)
    no_token = client.post(f"/console/runs/{run_id}/cancel", data={})
    assert no_token.status_code == 403
    wrong = client.post("/console/flows/hello/enabled", data={"csrf": "x", "enabled": "false"})
    assert wrong.status_code == 403
    page = client.get(f"/console/runs/{run_id}")
    assert "QUEUED" in page.text


def test_signing_out_ends_the_session(client: TestClient) -> None:
    sign_in(client, new_project(client, "alpha"))
    page = client.get("/console/runs")
    out = client.post("/console/sign-out", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/console/runs", follow_redirects=False).status_code == 303


def test_a_revoked_key_and_a_forged_cookie_end_the_session_at_once(
    client: TestClient, database_url: str
) -> None:
    key = new_project(client, "alpha")
    sign_in(client, key)
    assert client.get("/console/runs").status_code == 200

    async def revoke() -> None:
        async with await connect(database_url) as conn:
            await conn.execute("UPDATE api_keys SET revoked_at = now()")

    asyncio.run(revoke())
    gone = client.get("/console/runs", follow_redirects=False)
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/console/sign-in")

    client.cookies.set("sluice_console", "eyJjIjoieCJ9.forged.sig", path="/console")
    assert client.get("/console/flows", follow_redirects=False).status_code == 303


def test_a_session_outlives_its_app_process_with_the_same_secret(database_url: str) -> None:
    with app_client(database_url, console_secret="shared") as first:
        key = new_project(first, "alpha")
        sign_in(first, key)
        cookie = first.cookies.get("sluice_console")
    with app_client(database_url, console_secret="shared") as second:
        second.cookies.set("sluice_console", str(cookie), path="/console")
        assert second.get("/console/runs", follow_redirects=False).status_code == 200
    with app_client(database_url, console_secret="another") as third:
        third.cookies.set("sluice_console", str(cookie), path="/console")
        assert third.get("/console/runs", follow_redirects=False).status_code == 303


def test_a_project_key_sees_its_own_runs_and_the_admin_picks_any_project(
    client: TestClient,
) -> None:
    alpha, beta = new_project(client, "alpha"), new_project(client, "beta")
    (alpha_run,) = deploy_and_trigger(client, alpha, FLOW, 1)
    (beta_run,) = deploy_and_trigger(client, beta, {**FLOW, "name": "other"}, 1)

    sign_in(client, alpha)
    page = client.get("/console/runs")
    assert alpha_run in page.text
    assert beta_run not in page.text
    assert client.get(f"/console/runs/{beta_run}").status_code == 404
    assert client.get("/console/health").status_code == 403

    client.cookies.clear()
    sign_in(client, ADMIN)
    page = client.get("/console/runs")
    assert ">alpha<" in page.text
    assert ">beta<" in page.text
    assert alpha_run in page.text
    found = re.search(r'<option value="(\d+)"\s*>beta</option>', page.text)
    assert found, page.text
    picked = client.post(
        "/console/project",
        data={"csrf": csrf_of(page), "project": found[1], "next": "/console/runs"},
    )
    assert picked.status_code == 200
    assert beta_run in picked.text
    assert alpha_run not in picked.text
    assert "Workers and queue" in client.get("/console/health").text


def test_runs_filter_by_flow_status_and_time_and_page_by_cursor(client: TestClient) -> None:
    key = new_project(client, "alpha")
    many = deploy_and_trigger(client, key, FLOW, 53)
    (other,) = deploy_and_trigger(client, key, {**FLOW, "name": "other"}, 1)
    sign_in(client, key)

    first = client.get("/console/runs")
    assert first.text.index(other) < first.text.index(many[-1])
    assert first.text.count('<tr data-run="') == 50
    older = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = client.get(older.replace("&amp;", "&"))
    assert second.text.count('<tr data-run="') == 4
    assert many[0] in second.text

    by_flow = client.get("/console/runs", params={"flow": "other"})
    assert by_flow.text.count('<tr data-run="') == 1
    assert client.get("/console/runs", params={"status": "succeeded"}).text.count("data-run=") == 0
    assert client.get("/console/runs", params={"status": "queued"}).text.count("data-run=") == 50
    future = client.get("/console/runs", params={"since": "2999-01-01T00:00"})
    assert future.text.count('<tr data-run="') == 0
    past = client.get("/console/runs", params={"until": "2000-01-01T00:00"})
    assert past.text.count('<tr data-run="') == 0
    bad = client.get("/console/runs", params={"status": "nope", "since": "x", "cursor": "zz"})
    assert bad.status_code == 200
    assert "unknown status" in bad.text
    assert "not a date and time" in bad.text
    rows = client.get("/console/runs/rows", params={"flow": "other"})
    assert rows.text.count('<tr data-run="') == 1
    assert "<html" not in rows.text


def test_missing_things_are_console_pages(client: TestClient) -> None:
    key = new_project(client, "alpha")
    sign_in(client, key)
    for path in (
        "/console/nowhere",
        "/console/runs/not-a-uuid",
        "/console/runs/00000000-0000-0000-0000-000000000000",
        "/console/flows/missing",
    ):
        page = client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert "404" in page.text
    assert client.get("/console/static/console.css").status_code == 200


def test_the_enabled_switch_turns_a_flow_off_and_on(client: TestClient) -> None:
    key = new_project(client, "alpha")
    deploy_and_trigger(client, key, FLOW, 2)
    sign_in(client, key)
    listed = client.get("/console/flows")
    assert "/webhooks/alpha/hello" in listed.text
    page = client.get("/console/flows/hello")
    assert "Runs (24 h)</dt><dd>2, 0 failed" in page.text
    assert "Disable" in page.text
    off = client.post(
        "/console/flows/hello/enabled", data={"csrf": csrf_of(page), "enabled": "false"}
    )
    assert off.status_code == 200
    assert "Enable" in off.text
    shown = client.get("/api/v1/flows/hello", headers={"authorization": f"Bearer {key}"})
    assert shown.json()["enabled"] is False


def test_the_database_away_is_a_503_page(tmp_path: Path) -> None:
    away = f"postgresql://postgres@/sluice?host={tmp_path}"  # no server listens there
    with app_client(away, database_timeout_seconds=0.5) as client:
        form = client.get("/console/sign-in")
        page = client.post("/console/sign-in", data=sign_in_form("sk_abc_def", form))
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "1"
    assert "database is unavailable" in page.text


def test_an_unexpected_error_is_a_500_page_without_a_traceback(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("a bug with a secret in its message")

    monkeypatch.setattr(store, "list_flows", broken)
    with TestClient(create_app(app_settings(database_url)), raise_server_exceptions=False) as c:
        sign_in(c, new_project(c, "alpha"))
        page = c.get("/console/flows")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "secret" not in page.text
    assert "Traceback" not in page.text
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert logged.getMessage().split()[1].rstrip(":") in page.text
