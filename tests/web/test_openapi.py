"""`GET /openapi.json`: an OpenAPI 3.1 document that covers every route and tells the truth.

The document is checked against the rules of OpenAPI 3.1 (`tests.web.openapi_rules`); that
every reply it documents is a real one is `tests.web.test_openapi_replies`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app.flows import flow_json_schema
from app.settings import Settings
from app.web import create_app
from app.web.api import document
from tests.web.apps import app_client
from tests.web.openapi_rules import (
    OPENAPI_31,
    deref,
    jsonschema,
    operations,
    refs,
    resolve,
    schema_validator,
)

HELLO: dict[str, Any] = {
    "name": "hello",
    "steps": [
        {
            "id": "compute",
            "type": "code",
            "code": "def run(input, ctx):\n    return {'hello': 'world'}",
        },
        {"id": "reply", "type": "respond", "body": "{{ steps.compute.output }}"},
    ],
}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url) as client:
        yield client


_CONSOLE = {("/", "GET"), ("/console", "GET")}
"""The console's entries beside its ``/console`` mount: HTML, not API operations."""


def routes_of_the_app() -> set[tuple[str, str]]:
    """The app's API routes: every route but the console's (``GET /``, ``GET /console``
    and the ``/console`` mount)."""
    app = create_app(Settings(database_url=SecretStr("postgresql://unused@/unused")))
    found = set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/console":
            continue
        assert isinstance(route, Route), f"{route!r} is not a plain Route; document it here"
        if (route.path, *(route.methods or set()) - {"HEAD"}) in _CONSOLE:
            continue
        # Starlette adds HEAD to every GET route by itself.
        for method in (route.methods or set()) - {"HEAD"}:
            found.add((re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower()))
    return found


def test_the_document_is_served_as_openapi_3_1(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = json.loads(response.text)
    assert served["openapi"] == "3.1.0"
    assert served == document()


def test_every_route_of_the_app_is_documented_with_its_methods() -> None:
    doc = document()
    documented = {(path, method) for path, method, _operation in operations(doc)}
    routes = routes_of_the_app()

    assert routes - documented == set(), "routes missing from app/web/api.py"
    assert documented - routes == set(), "documented operations the app does not serve"


def test_every_reference_resolves() -> None:
    doc = document()
    found = list(refs(doc))

    assert len(found) > 50
    for ref in found:
        resolve(doc, ref)


def test_the_document_has_the_shape_openapi_3_1_requires() -> None:
    doc = document()
    jsonschema.Draft202012Validator.check_schema(OPENAPI_31)
    errors = sorted(
        jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(doc),
        key=lambda error: list(error.absolute_path),
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])

    for name, schema in doc["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            pytest.fail(f"components/schemas/{name} is not JSON Schema 2020-12: {exc.message}")

    schemes = set(doc["components"]["securitySchemes"])
    tags = {tag["name"] for tag in doc["tags"]}
    ids = [operation["operationId"] for _path, _method, operation in operations(doc)]
    assert len(ids) == len(set(ids)), "operationId values must be unique"
    for path, method, operation in operations(doc):
        where = f"{method.upper()} {path}"
        templated = set(re.findall(r"\{(\w+)\}", path))
        parameters = [deref(doc, p) for p in operation.get("parameters", [])]
        in_path = {p["name"] for p in parameters if p["in"] == "path"}
        assert in_path == templated, f"{where}: path parameters {in_path} != {templated}"
        assert set(operation["tags"]) <= tags, f"{where}: undeclared tag"
        for requirement in operation["security"]:
            assert set(requirement) <= schemes, f"{where}: undeclared security scheme"


def test_security_schemes_are_the_project_key_and_the_admin_key() -> None:
    doc = document()
    schemes = doc["components"]["securitySchemes"]

    assert schemes == {
        "projectKey": {**schemes["projectKey"], "type": "http", "scheme": "bearer"},
        "adminKey": {**schemes["adminKey"], "type": "http", "scheme": "bearer"},
    }
    security = {
        (path, method): operation["security"] for path, method, operation in operations(doc)
    }
    assert security[("/api/v1/projects", "post")] == [{"adminKey": []}]
    assert security[("/api/v1/flows/{name}", "put")] == [{"projectKey": []}]
    assert security[("/webhooks/{flow_id}", "post")] == []
    signature = deref(doc, doc["paths"]["/webhooks/{flow_id}"]["post"]["parameters"][1])
    assert (signature["name"], signature["in"]) == ("x-sluice-signature", "header")


def test_the_flow_definition_is_the_published_schema_with_its_definitions_as_components() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    published = json.loads(
        json.dumps(flow_json_schema()).replace('"#/$defs/', '"#/components/schemas/')
    )

    for name, definition in published.pop("$defs").items():
        assert schemas[name] == definition
    del published["$schema"]
    assert schemas["FlowDefinition"] == published

    flow = schema_validator(doc, {"$ref": "#/components/schemas/FlowDefinition"})
    deployment = schema_validator(doc, {"$ref": "#/components/schemas/FlowDeployment"})
    nameless = {k: v for k, v in HELLO.items() if k != "name"}
    assert flow.is_valid(HELLO)
    assert not flow.is_valid(nameless)
    assert deployment.is_valid(nameless)
    assert not flow.is_valid({**HELLO, "steps": [{"id": "x", "type": "teleport"}]})


def test_the_error_body_is_an_error_with_problems() -> None:
    error = document()["components"]["schemas"]["Error"]

    assert error["required"] == ["error"]
    assert error["properties"]["error"] == {"type": "string"}
    assert error["properties"]["problems"]["items"] == {"$ref": "#/components/schemas/Problem"}
