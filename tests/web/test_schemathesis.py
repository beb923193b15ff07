"""Schemathesis over ``GET /openapi.json``: cases generated from the document, valid and
invalid, sent to the app on a test database, each answered without a 5xx and every error in
JSON. Bounded (a few examples per operation, no deadline per example) to stay under a minute.

Every operation is exercised: the database is the test's own, so creating projects,
deploying and deleting flows harm nothing; ids in paths are random, so webhooks, resumes,
cancels and retries reach no run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from starlette.applications import Starlette

from app.web import create_app
from app.web.api import document
from tests.web.apps import ADMIN, app_client, app_settings

EXAMPLES = 25
SCHEMA = schemathesis.openapi.from_dict(document())


@pytest.fixture
def app_and_keys(database_url: str) -> Iterator[tuple[Starlette, dict[str, str]]]:
    with app_client(database_url) as client:
        created = client.post(
            "/api/v1/projects", json={"name": "fuzz"}, headers={"authorization": f"Bearer {ADMIN}"}
        )
    keys = {"adminKey": ADMIN, "projectKey": created.json()["api_key"]}
    app = create_app(app_settings(database_url, sync_timeout_seconds=0.2))
    try:
        yield app, keys
    finally:
        asgi.shutdown_lifespans()  # closes the app's pool before the database is dropped


def _operations() -> list[Any]:
    results: list[Any] = list(SCHEMA.get_all_operations())
    return [result.ok() for result in results]


def test_no_operation_answers_a_5xx_or_an_error_that_is_not_json(
    app_and_keys: tuple[Starlette, dict[str, str]],
) -> None:
    app, keys = app_and_keys
    seen: dict[str, set[int]] = {}
    for operation in _operations():
        security = operation.definition.raw.get("security") or []
        scheme = next(iter(security[0]), None) if security else None
        headers = {"authorization": f"Bearer {keys[scheme]}"} if scheme else {}
        statuses = seen.setdefault(operation.label, set())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, app, headers, statuses)
            except hypothesis.errors.Unsatisfiable:
                # Nothing in the operation can be made invalid (GET /health, say).
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert all(seen.values()), seen


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    app: Starlette,
    headers: dict[str, str],
    statuses: set[int],
) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(app=app, headers=headers)
        statuses.add(response.status_code)
        described = f"{case.method} {case.formatted_path}: {response.text[:300]}"
        assert response.status_code < 500 or _run_ended(response), described
        if response.status_code >= 400 and not _run_ended(response):
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type == "application/json", described
            assert isinstance(response.json().get("error"), str), described

    check()


def _run_ended(response: Any) -> bool:
    """A `/sync` webhook's run that ended without success: its documented 500."""
    return response.status_code == 500 and "run_id" in response.json()
