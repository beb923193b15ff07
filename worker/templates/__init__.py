"""Render processes: templates that are not inline (`app.flows.inline`) are rendered here,
each under a CPU-time, memory and output budget, off the worker's event loop."""

from worker.templates.pool import RenderBudget, Rendered, TemplateRenderer

__all__ = ["RenderBudget", "Rendered", "TemplateRenderer"]
