"""Flows: definitions users deploy and the templates their steps are rendered with."""

from __future__ import annotations

from app.flows.definition import FlowDefinition, Step, content_hash, flow_json_schema, parse_flow
from app.flows.problems import FlowDefinitionError
from app.flows.templating import TemplateError, evaluate_condition, render

__all__ = [
    "FlowDefinition",
    "FlowDefinitionError",
    "Step",
    "TemplateError",
    "content_hash",
    "evaluate_condition",
    "flow_json_schema",
    "parse_flow",
    "render",
]
