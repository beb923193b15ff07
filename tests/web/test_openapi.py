"""`GET /openapi.json`: an OpenAPI 3.1 document that covers every route and tells the truth.

openapi-spec-validator is not a dependency, so the document is checked here against the
OpenAPI 3.1 rules that JSON Schema can express (the object shapes the document uses), plus
the rules it cannot: every `$ref` resolves, path templates and path parameters agree,
operation ids are unique, security requirements name declared schemes, and every schema is
valid JSON Schema 2020-12. Real responses of the app are validated against what the
document says they are.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route
from starlette.testclient import TestClient

from app.flows import flow_json_schema
from app.settings import Settings
from app.web import create_app
from app.web.api import document
from tests.web.apps import ADMIN, app_client

jsonschema: Any = importlib.import_module("jsonschema")  # a test dependency without stubs

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOCUMENT_URI = "urn:sluice:openapi"

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

_REF = {
    "type": "object",
    "required": ["$ref"],
    "properties": {
        "$ref": {"type": "string", "format": "uri-reference"},
        "summary": {"type": "string"},
        "description": {"type": "string"},
    },
    "additionalProperties": False,
}
_SCHEMA = {"type": ["object", "boolean"]}
_MEDIA_TYPES = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {"schema": _SCHEMA, "example": True, "examples": {"type": "object"}},
        "additionalProperties": False,
    },
}
OPENAPI_31 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "properties": {
                "title": {"type": "string"},
                "version": {"type": "string"},
                "summary": {"type": "string"},
                "description": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {"$ref": "#/$defs/path_item"},
        },
        "components": {
            "type": "object",
            "properties": {
                "schemas": {"type": "object", "additionalProperties": _SCHEMA},
                "responses": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/response"},
                },
                "parameters": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/parameter"},
                },
                "headers": {"type": "object", "additionalProperties": {"$ref": "#/$defs/header"}},
                "securitySchemes": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {
                                "enum": ["apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"]
                            },
                            "scheme": {"type": "string"},
                            "description": {"type": "string"},
                        },
                        "if": {"properties": {"type": {"const": "http"}}},
                        "then": {"required": ["scheme"]},
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
    "$defs": {
        "path_item": {
            "type": "object",
            "properties": {method: {"$ref": "#/$defs/operation"} for method in METHODS},
            "additionalProperties": False,
        },
        "operation": {
            "type": "object",
            "required": ["responses"],
            "properties": {
                "operationId": {"type": "string"},
                "summary": {"type": "string"},
                "description": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "security": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "parameters": {
                    "type": "array",
                    "items": {"oneOf": [_REF, {"$ref": "#/$defs/parameter"}]},
                },
                "requestBody": {
                    "type": "object",
                    "required": ["content"],
                    "properties": {
                        "content": _MEDIA_TYPES,
                        "required": {"type": "boolean"},
                        "description": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "responses": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"pattern": "^([1-5][0-9X]{2}|default)$"},
                    "additionalProperties": {"oneOf": [_REF, {"$ref": "#/$defs/response"}]},
                },
            },
            "additionalProperties": False,
        },
        "response": {
            "type": "object",
            "required": ["description"],
            "properties": {
                "description": {"type": "string"},
                "headers": {
                    "type": "object",
                    "additionalProperties": {"oneOf": [_REF, {"$ref": "#/$defs/header"}]},
                },
                "content": _MEDIA_TYPES,
            },
            "additionalProperties": False,
        },
        "parameter": {
            "type": "object",
            "required": ["name", "in", "schema"],
            "properties": {
                "name": {"type": "string"},
                "in": {"enum": ["query", "header", "path", "cookie"]},
                "required": {"type": "boolean"},
                "description": {"type": "string"},
                "schema": _SCHEMA,
            },
            "additionalProperties": False,
            "if": {"properties": {"in": {"const": "path"}}},
            "then": {"required": ["required"], "properties": {"required": {"const": True}}},
        },
        "header": {
            "type": "object",
            "required": ["schema"],
            "properties": {"description": {"type": "string"}, "schema": _SCHEMA},
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with app_client(database_url, sync_timeout_seconds=0.2) as client:
        yield client


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref!r} is not a reference within the document"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref!r}: {part!r} is inside a non-object"
        assert part in node, f"{ref!r} does not resolve: no {part!r}"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key == "discriminator" and isinstance(value, dict):
                yield from value.get("mapping", {}).values()
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def routes_of_the_app() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url=SecretStr("postgresql://unused@/unused")))
    found = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r} is not a plain Route; document it here"
        # Starlette adds HEAD to every GET route by itself.
        for method in (route.methods or set()) - {"HEAD"}:
            found.add((re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower()))
    return found


def schema_validator(doc: dict[str, Any], schema: Any) -> Any:
    """A validator of `schema`, whose `#/components/...` references point into `doc`."""
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, DRAFT202012.create_resource(doc)
    )
    return jsonschema.Draft202012Validator(
        _anchored(schema),
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _anchored(node: Any) -> Any:
    """`schema` with its document-relative references made absolute."""
    if isinstance(node, dict):
        return {
            key: DOCUMENT_URI + value
            if key == "$ref" and isinstance(value, str) and value.startswith("#/")
            else _anchored(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_anchored(item) for item in node]
    return node


def conforms(doc: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """Assert that `response` is one the document describes for this operation."""
    responses = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses or "default" in responses, (
        f"{method.upper()} {path} answered {status}, which is not documented: {response.text}"
    )
    described = deref(doc, responses.get(status, responses.get("default")))
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    content = described.get("content")
    if content is None:
        assert not response.content, f"{method.upper()} {path} {status} documents no body"
        return
    assert media_type in content or "*/*" in content, (
        f"{method.upper()} {path} {status}: {media_type} is not among {sorted(content)}"
    )
    if media_type == "application/json":
        schema = content[media_type]["schema"]
        errors = list(schema_validator(doc, schema).iter_errors(response.json()))
        assert not errors, f"{method.upper()} {path} {status}: {errors[0].message}"


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

    assert routes - documented == set(), "routes missing from app/web/openapi.py"
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


def test_responses_of_the_app_are_the_documented_ones(client: TestClient) -> None:
    doc = document()

    def send(method: str, path: str, at: dict[str, Any] | None, **kw: Any) -> httpx.Response:
        """Call `path` (a documented template, filled from `at`); check the response."""
        response = client.request(method.upper(), path.format(**(at or {})), **kw)
        conforms(doc, path, method, response)
        return response

    def call(method: str, path: str, at: dict[str, Any] | None = None, **kw: Any) -> int:
        return send(method, path, at, **kw).status_code

    def body(method: str, path: str, at: dict[str, Any] | None = None, **kw: Any) -> Any:
        return send(method, path, at, **kw).json()

    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert call("get", "/health") == 200
    assert call("get", "/ready") == 200
    assert call("get", "/openapi.json") == 200
    assert call("get", "/api/v1/flow-schema") == 200
    assert call("get", "/metrics") == 200

    created = body("post", "/api/v1/projects", json={"name": "acme"}, headers=admin)
    project = {"project_id": created["project"]["id"]}
    key = {"Authorization": f"Bearer {created['api_key']}"}
    assert call("post", "/api/v1/projects", json={"name": "acme"}, headers=admin) == 409
    assert call("post", "/api/v1/projects", json={"name": "x"}, headers=key) == 401
    assert call("post", "/api/v1/projects", json={"nom": "x"}, headers=admin) == 422
    assert call("post", "/api/v1/projects", content=b"{", headers=admin) == 400
    keys = "/api/v1/projects/{project_id}/api-keys"
    assert call("post", keys, project, json={"name": "ci"}, headers=admin) == 201
    limit = {"concurrency_limit": 3}
    assert call("patch", "/api/v1/projects/{project_id}", project, json=limit, headers=admin) == 200
    assert call("get", "/api/v1/project", headers=key) == 200
    assert call("get", "/api/v1/workers", headers=key) == 200

    flow = "/api/v1/flows/{name}"
    hello = {"name": "hello"}
    assert call("put", flow, hello, json=HELLO, headers=key) == 201
    assert call("put", flow, hello, json=HELLO, headers=key) == 200
    assert call("put", flow, {"name": "bad"}, json={"steps": []}, headers=key) == 422
    assert call("get", "/api/v1/flows", headers=key) == 200
    assert call("get", flow, {"name": "nothing"}, headers=key) == 404
    assert call("post", flow + "/disable", hello, headers=key) == 200
    assert call("post", flow + "/enable", hello, headers=key) == 200
    flow_id = {"flow_id": body("get", flow, hello, headers=key)["id"]}

    # No worker runs here: a run stays queued, and a sync caller gets 202 after its timeout.
    run = {"run_id": body("post", "/webhooks/{flow_id}", flow_id, json={})["run_id"]}
    assert call("post", "/webhooks/{flow_id}/sync", flow_id, content=b"hi") == 202
    nowhere = {"flow_id": "00000000-0000-4000-8000-000000000000"}
    assert call("post", "/webhooks/{flow_id}", nowhere, json={}) == 404
    json_type = {"content-type": "application/json"}
    assert call("post", "/webhooks/{flow_id}", flow_id, content=b"{", headers=json_type) == 400

    page = {"flow": "hello", "limit": 1}
    assert body("get", "/api/v1/runs", params=page, headers=key)["next_cursor"] is not None
    assert call("get", "/api/v1/runs", params={"status": "nope"}, headers=key) == 422
    assert call("get", "/api/v1/runs/{run_id}", run, headers=key) == 200
    assert call("post", "/api/v1/runs/{run_id}/cancel", run, headers=key) == 200
    assert call("post", "/api/v1/runs/{run_id}/cancel", run, headers=key) == 409
    assert call("post", "/api/v1/runs/{run_id}/retry", run, headers=key) == 202
    assert call("post", "/api/v1/runs/{run_id}/retry", run, headers=key) == 409
    token = {**run, "token": "not-a-token"}
    assert call("post", "/resume/{run_id}/{token}", token, json={}) == 404
    assert call("post", "/resume/{run_id}/{token}/sync", token) == 404
    assert call("delete", flow, hello, headers=key) == 204
