"""`sluice project create`, `sluice api-key create` (the admin key) and `sluice workers`."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from tests.cli.helpers import Sluice


def test_project_create_prints_its_key_once_with_a_note(app_url: str, sluice: Sluice) -> None:
    ran = sluice("project", "create", "acme", "--concurrency-limit", "3")
    assert ran.code == 0, ran.err
    pattern = r"project {12}acme\nid {17}\d+\nconcurrency limit  3\nnetwork {12}allowed\n"
    pattern += r"failure handler    none\n"
    pattern += r"api key {12}sk_[\w-]+\n"
    assert re.fullmatch(pattern, ran.out), ran.out
    assert ran.err == "Store the API key now: it is shown only this once.\n"
    again = sluice("project", "create", "acme")
    assert (again.code, again.err) == (1, "sluice: a project named 'acme' exists\n")


def test_project_update_forbids_and_allows_network(app_url: str, sluice: Sluice) -> None:
    project = json.loads(sluice("project", "create", "acme", "--json").out)["project"]
    ran = sluice("project", "update", str(project["id"]), "--no-network")
    assert ran.code == 0, ran.err
    assert "network            forbidden\n" in ran.out
    assert "concurrency limit  none\n" in ran.out
    ran = sluice("project", "update", str(project["id"]), "--network", "--json")
    assert json.loads(ran.out)["allow_network"] is True
    nothing = sluice("project", "update", str(project["id"]))
    assert nothing.code == 2
    assert "nothing to change" in nothing.err
    missing = sluice("project", "update", "999", "--no-network")
    assert (missing.code, missing.err) == (1, "sluice: no project '999'\n")
    by_name = sluice("project", "update", "acme", "--concurrency-limit", "4", "--json")
    assert by_name.code == 0, by_name.err
    assert json.loads(by_name.out)["concurrency_limit"] == 4


def test_api_key_create_adds_a_working_key(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = json.loads(sluice("project", "create", "acme", "--json").out)["project"]
    ran = sluice("api-key", "create", str(project["id"]), "--name", "ci", "--json")
    assert ran.code == 0, ran.err
    created = json.loads(ran.out)
    assert (created["project_id"], created["name"]) == (project["id"], "ci")
    monkeypatch.setenv("SLUICE_API_KEY", created["api_key"])
    assert sluice("flow", "list").code == 0
    missing = sluice("api-key", "create", "999")
    assert (missing.code, missing.err) == (1, "sluice: no project '999'\n")
    by_name = sluice("api-key", "create", "acme", "--json")
    assert json.loads(by_name.out)["project_id"] == project["id"]


def test_project_list_shows_every_project(app_url: str, sluice: Sluice) -> None:
    for name in ("acme", "globex", "7"):
        assert sluice("project", "create", name).code == 0
    ran = sluice("project", "list")
    assert ran.code == 0, ran.err
    header, *rows = ran.out.splitlines()
    assert header.split() == ["ID", "PROJECT", "LIMIT", "NETWORK", "CREATED"]
    assert [row.split()[1:4] for row in rows] == [
        ["acme", "none", "allowed"],
        ["globex", "none", "allowed"],
        ["7", "none", "allowed"],
    ]
    listed = json.loads(sluice("project", "list", "--json").out)["projects"]
    assert [each["name"] for each in listed] == ["acme", "globex", "7"]
    # A name of digits is named by its id.
    seven = listed[2]["id"]
    assert (
        json.loads(sluice("project", "update", str(seven), "--no-network", "--json").out)["name"]
        == "7"
    )


def test_a_revoked_key_is_refused_at_once(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = json.loads(sluice("project", "create", "acme", "--json").out)["api_key"]
    second = json.loads(sluice("api-key", "create", "acme", "--name", "ci", "--json").out)
    monkeypatch.setenv("SLUICE_API_KEY", first)
    assert sluice("flow", "list").code == 0

    listed = sluice("api-key", "list", "acme")
    assert listed.code == 0, listed.err
    header, *rows = listed.out.splitlines()
    assert header.split() == ["KEY", "NAME", "CREATED", "LAST", "USED", "REVOKED"]
    prefix = first.split("_")[1]
    assert [row.split()[:2] for row in rows] == [
        [f"sk_{second['prefix']}", "ci"],
        [f"sk_{prefix}", "first"],
    ]
    assert first.split("_", 2)[2] not in listed.out
    assert rows[0].split()[-2:] == ["never", "-"]

    revoked = sluice("api-key", "revoke", first)  # the whole key: only its prefix is sent
    assert (revoked.code, revoked.out) == (0, f"revoked sk_{prefix} (project {_id(sluice)})\n")
    refused = sluice("flow", "list")
    assert (refused.code, refused.err) == (
        1,
        "sluice: invalid API key (check SLUICE_API_KEY or --api-key)\n",
    )
    monkeypatch.setenv("SLUICE_API_KEY", second["api_key"])
    assert sluice("flow", "list").code == 0
    keys = json.loads(sluice("api-key", "list", str(_id(sluice)), "--json").out)["api_keys"]
    assert [key["revoked_at"] is not None for key in keys] == [False, True]
    again = sluice("api-key", "revoke", f"sk_{prefix}", "--json")
    assert json.loads(again.out)["revoked_at"] == keys[1]["revoked_at"]
    unknown = sluice("api-key", "revoke", "0123456789")
    assert (unknown.code, unknown.err) == (1, "sluice: no API key with prefix '0123456789'\n")
    malformed = sluice("api-key", "revoke", "sk_NOT-A-KEY_secret")
    assert malformed.code == 2
    assert "secret" not in malformed.err


def _id(sluice: Sluice) -> int:
    [project] = json.loads(sluice("project", "list", "--json").out)["projects"]
    return int(project["id"])


def test_administration_needs_the_admin_key(
    app_url: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_ADMIN_API_KEY")
    ran = sluice("project", "create", "acme")
    assert (ran.code, ran.err) == (
        2,
        "sluice: no admin API key: set SLUICE_ADMIN_API_KEY or pass --admin-key\n",
    )
    wrong = sluice("project", "create", "acme", "--admin-key", "wrong")
    assert wrong.code == 1
    assert wrong.err == (
        "sluice: invalid admin API key (check SLUICE_ADMIN_API_KEY or --admin-key)\n"
    )


def test_workers_show_when_each_was_last_seen(
    project_key: str, sluice: Sluice, database_url: str
) -> None:
    empty = sluice("workers")
    assert (empty.code, empty.out, empty.err) == (0, "", "no workers\n")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workers (id, host, pid, container_type, slots, version, last_seen)"
            " VALUES ('w-1', 'box', 42, 'WORKER', 8, '0.1.0', now() - interval '2 hours')"
        )
    ran = sluice("workers")
    assert ran.code == 0, ran.err
    header, row = ran.out.splitlines()
    assert header.split() == [
        "WORKER", "HOST", "PID", "TYPE", "SLOTS", "VERSION", "STARTED", "LAST", "SEEN", "STOPPED"
    ]  # fmt: skip
    assert row.startswith("w-1     box   42   WORKER  8      0.1.0")
    assert row.endswith("2h ago     -")
    assert json.loads(sluice("workers", "--json").out)["workers"][0]["id"] == "w-1"


def test_workers_need_the_admin_key(
    project_key: str, sluice: Sluice, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_project = sluice("workers", "--admin-key", project_key)
    assert (as_project.code, as_project.err) == (
        1,
        "sluice: this view covers every project: it needs the admin key\n",
    )
    monkeypatch.delenv("SLUICE_ADMIN_API_KEY")
    missing = sluice("workers")
    assert (missing.code, missing.err) == (
        2,
        "sluice: no admin API key: set SLUICE_ADMIN_API_KEY or pass --admin-key\n",
    )
