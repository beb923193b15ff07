"""The OpenAPI 3.1 document, written from the table of operations (`app.web.api`).

Invariant: a body, reply or parameter names its type, and pydantic writes the schema, all
types in one pass (a model several operations use is one component); only what has no
type (a header's pattern, "any JSON object") is a schema in the table. The flow definition
is the schema `flow_json_schema()` publishes, its ``$defs`` moved into
``components/schemas``. Every ``$ref`` resolves within the document (tests/web/
test_openapi.py fails otherwise).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from starlette.requests import Request
from starlette.responses import Response

from app.flows import flow_json_schema
from app.web.replies import RUN_ID_HEADER
from app.web.schemas import COMPONENT, Error

Json = dict[str, Any]
Shape = Any
"""What a body or parameter is: a type pydantic describes, or a JSON Schema (a dict)."""

VERSION = "3.1.0"
PROJECT_KEY = "projectKey"
ADMIN_KEY = "adminKey"
JSON = "application/json"
_TAGS = {
    "probes": "Liveness, readiness and metrics; no key needed.",
    "projects": "Project administration (admin key) and the caller's project.",
    "flows": "Flow definitions, deployed as numbered immutable versions.",
    "secrets": "Secrets (write-only, encrypted at rest) and vars of the caller's project.",
    "runs": "Runs of the caller's project; another project's answer 404.",
    "webhooks": "Start runs, and resume the ones waiting for a webhook.",
}


@dataclass(frozen=True)
class Reply:
    """One documented answer: its body's shape by media type (none: no body)."""

    description: str
    content: Mapping[str, Shape] = field(default_factory=dict)
    run_header: bool = False
    shared: str | None = None
    """Its name in ``components/responses``, for a reply that operations share."""


@dataclass(frozen=True)
class Body:
    """A request body: its shape by media type."""

    content: Mapping[str, Shape]
    description: str | None = None
    required: bool = True


@dataclass(frozen=True)
class Parameter:
    name: str
    where: Literal["path", "query", "header"]
    shape: Shape
    description: str
    component: str | None = None
    """Its name in ``components/parameters``, for a parameter that operations share."""


@dataclass(frozen=True)
class Operation:
    """A route (``"GET /health"``), its handler and what it answers. Unless given, its
    operationId is the handler's name in camelCase and its summary the handler's
    docstring; the path's own parameters come from the path template."""

    route: str
    endpoint: Callable[[Request], Awaitable[Response]]
    replies: Mapping[str, Reply]
    body: Body | None = None
    parameters: tuple[Parameter, ...] = ()
    id: str | None = None
    summary: str | None = None

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]

    def operation_id(self) -> str:
        first, *others = self.endpoint.__name__.split("_")
        return self.id or first + "".join(word.capitalize() for word in others)

    def summary_text(self) -> str:
        if self.summary is not None:
            return self.summary
        docstring = inspect.getdoc(self.endpoint)
        if docstring is None:
            raise ValueError(f"{self.route}: no summary, and its handler has no docstring")
        return " ".join(docstring.split("\n\n")[0].split())


@dataclass(frozen=True)
class Section:
    """Operations under one tag that need the same key: a security scheme (None: none)."""

    tag: str
    key: str | None
    operations: tuple[Operation, ...]


def json_reply(description: str, shape: Shape, *, run_header: bool = False) -> Reply:
    return Reply(description, {JSON: shape}, run_header=run_header)


def error_reply(description: str, shared: str | None = None) -> Reply:
    return Reply(description, {JSON: Error}, shared=shared)


def json_body(shape: Shape) -> Body:
    return Body({JSON: shape})


UNAUTHORIZED = error_reply("The key is missing or not valid.", "Unauthorized")


def build(sections: Iterable[Section], path_parameters: Mapping[str, Parameter]) -> Json:
    """The document of `sections`; `path_parameters` describes each path template name."""
    sections = tuple(sections)

    def parameters(operation: Operation) -> list[Parameter]:
        named = re.findall(r"\{(\w+)\}", operation.path)
        return [path_parameters[name] for name in named] + list(operation.parameters)

    schemas = _Schemas(_shapes(sections, parameters))
    writer = _Writer(schemas)
    paths: Json = {}
    for section in sections:
        for operation in section.operations:
            written = writer.operation(section, operation, parameters(operation))
            paths.setdefault(operation.path, {})[operation.method.lower()] = written
    return {
        "openapi": VERSION,
        "info": {
            "title": "Sluice",
            "version": metadata.version("sluice"),
            "summary": "Automation flows with PostgreSQL as the only moving part.",
        },
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": _merged(_flow_schemas(), schemas.components),
            "responses": writer.responses,
            "parameters": writer.parameters,
            "headers": {
                "RunId": {
                    "description": "The run's id.",
                    "schema": {"type": "string", "format": "uuid"},
                },
            },
            "securitySchemes": {
                PROJECT_KEY: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A project API key, `sk_<prefix>_<secret>`.",
                },
                ADMIN_KEY: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin key, `SLUICE_ADMIN_API_KEY`.",
                },
            },
        },
    }


def _shapes(
    sections: Iterable[Section], parameters: Callable[[Operation], list[Parameter]]
) -> Iterator[tuple[Shape, JsonSchemaMode]]:
    for operation in (operation for section in sections for operation in section.operations):
        for reply in [*operation.replies.values(), UNAUTHORIZED]:
            yield from ((shape, "serialization") for shape in reply.content.values())
        if operation.body is not None:
            yield from ((shape, "validation") for shape in operation.body.content.values())
        yield from ((parameter.shape, "validation") for parameter in parameters(operation))


class _Untitled(GenerateJsonSchema):
    """Without the titles pydantic gives properties (their names, capitalised); a
    component keeps its title."""

    def field_title_should_be_set(self, schema: object) -> bool:
        return False


class _Schemas:
    """The JSON Schema of each shape, all from one pydantic pass."""

    def __init__(self, wanted: Iterable[tuple[Shape, JsonSchemaMode]]) -> None:
        adapters: dict[tuple[int, JsonSchemaMode], TypeAdapter[Any]] = {}
        for shape, mode in wanted:
            if not isinstance(shape, dict):
                adapters.setdefault((id(shape), mode), TypeAdapter(shape))
        found, definitions = TypeAdapter.json_schemas(
            [(key, mode, adapter) for (key, mode), adapter in adapters.items()],
            ref_template=COMPONENT,
            schema_generator=_Untitled,
        )
        self._found = found
        self.components: Json = definitions.get("$defs", {})

    def __call__(self, shape: Shape, mode: JsonSchemaMode) -> Json:
        return shape if isinstance(shape, dict) else self._found[(id(shape), mode)]


class _Writer:
    """Writes operations, collecting the replies and parameters they share."""

    def __init__(self, schemas: _Schemas) -> None:
        self.schemas = schemas
        self.responses: Json = {}
        self.parameters: Json = {}

    def operation(
        self, section: Section, operation: Operation, parameters: list[Parameter]
    ) -> Json:
        written: Json = {
            "operationId": operation.operation_id(),
            "summary": operation.summary_text(),
            "tags": [section.tag],
            "security": [{section.key: []}] if section.key else [],
        }
        if parameters:
            written["parameters"] = [self.parameter(parameter) for parameter in parameters]
        if operation.body is not None:
            written["requestBody"] = self.body(operation.body)
        replies = {**operation.replies, "401": UNAUTHORIZED} if section.key else operation.replies
        written["responses"] = {status: self.reply(replies[status]) for status in sorted(replies)}
        return written

    def reply(self, reply: Reply) -> Json:
        written: Json = {"description": reply.description}
        if reply.run_header:
            written["headers"] = {RUN_ID_HEADER: {"$ref": "#/components/headers/RunId"}}
        if reply.content:
            written["content"] = self.content(reply.content, "serialization")
        return _shared(self.responses, "responses", reply.shared, written)

    def body(self, body: Body) -> Json:
        written: Json = {"required": body.required}
        if body.description is not None:
            written["description"] = body.description
        written["content"] = self.content(body.content, "validation")
        return written

    def parameter(self, parameter: Parameter) -> Json:
        written = {
            "name": parameter.name,
            "in": parameter.where,
            "required": parameter.where == "path",
            "schema": self.schemas(parameter.shape, "validation"),
            "description": parameter.description,
        }
        return _shared(self.parameters, "parameters", parameter.component, written)

    def content(self, content: Mapping[str, Shape], mode: JsonSchemaMode) -> Json:
        return {media: {"schema": self.schemas(shape, mode)} for media, shape in content.items()}


def _shared(components: Json, kind: str, name: str | None, written: Json) -> Json:
    """`written`, or a reference to it as component `name` of `kind`."""
    if name is None:
        return written
    if components.setdefault(name, written) != written:
        raise RuntimeError(f"two different {kind} are named {name!r}")
    return {"$ref": f"#/components/{kind}/{name}"}


def _merged(flow: Json, api: Json) -> Json:
    clash = sorted(flow.keys() & api.keys())
    if clash:
        raise RuntimeError(f"flow definition schemas shadow API schemas: {clash}")
    return {**flow, **api}


def _flow_schemas() -> Json:
    """`FlowDefinition` (as published) with its definitions, and `FlowDeployment` (the body of
    a deploy, whose name may be left to the URL)."""
    schema = _rewrite_refs(flow_json_schema())
    definitions: Json = schema.pop("$defs", {})
    schema.pop("$schema", None)  # 2020-12 is OpenAPI 3.1's own dialect
    deployment = copy.deepcopy(schema)
    deployment["required"] = [name for name in schema.get("required", []) if name != "name"]
    deployment["title"] = "Sluice flow deployment"
    deployment["description"] = (
        "A flow definition whose `name` may be left out; if given it must match the URL's."
    )
    return {**definitions, "FlowDefinition": schema, "FlowDeployment": deployment}


def _rewrite_refs(node: Any) -> Any:
    """`node` with its ``#/$defs/`` references (and discriminator mappings) made
    ``#/components/schemas/`` ones."""
    if isinstance(node, dict):
        rewritten = {key: _rewrite_refs(value) for key, value in node.items()}
        if isinstance(node.get("$ref"), str):
            rewritten["$ref"] = _moved(node["$ref"])
        mapping = node.get("mapping")
        if isinstance(mapping, dict):
            rewritten["mapping"] = {key: _moved(value) for key, value in mapping.items()}
        return rewritten
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _moved(ref: str) -> str:
    prefix = "#/$defs/"
    return COMPONENT.format(model=ref.removeprefix(prefix)) if ref.startswith(prefix) else ref
