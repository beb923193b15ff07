"""What an OpenAPI 3.1 document must be, as far as the tests can check it, and how a real
response is checked against the document.

openapi-spec-validator is not a dependency, so `OPENAPI_31` holds the OpenAPI 3.1 rules that
JSON Schema can express (the object shapes the document uses); the tests check the rules it
cannot (references resolve, path templates and parameters agree, operation ids are unique).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from referencing import Registry
from referencing.jsonschema import DRAFT202012

jsonschema: Any = importlib.import_module("jsonschema")  # a test dependency without stubs

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOCUMENT_URI = "urn:sluice:openapi"

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


class Answer(Protocol):
    """A response of httpx or of Starlette's TestClient."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


Reply = tuple[str, str, str, str | None]
"""An operation's documented reply: path, method, status (or ``default``), media type."""


def documented_replies(doc: dict[str, Any]) -> set[Reply]:
    return {
        (path, method, status, media)
        for path, method, operation in operations(doc)
        for status, reply in operation["responses"].items()
        for media in deref(doc, reply).get("content") or [None]
    }


def conforms(doc: dict[str, Any], path: str, method: str, response: Answer) -> Reply:
    """Assert that `response` is one the document describes for this operation; the
    documented reply it is."""
    where = f"{method.upper()} {path}"
    responses = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses or "default" in responses, (
        f"{where} answered {status}, which is not documented: {response.text}"
    )
    key = status if status in responses else "default"
    content = deref(doc, responses[key]).get("content")
    if content is None:
        assert not response.content, f"{where} {status} documents no body"
        return path, method, key, None
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type in content, f"{where} {status}: {media_type} is not among {sorted(content)}"
    if media_type == "application/json":
        schema = content[media_type]["schema"]
        errors = list(schema_validator(doc, schema).iter_errors(response.json()))
        assert not errors, f"{where} {status}: {errors[0].message} in {response.text[:300]}"
    return path, method, key, media_type
