"""A scenario's record as a table (the benchmarks' format) and as Markdown."""

from __future__ import annotations

from typing import Any

from ops.bench import _report
from ops.bench._report import Row, verdict
from ops.chaos.measure import FIGURES
from ops.chaos.scenarios import SCENARIOS

WINDOW_TIMES = ("started_s", "ended_s", "seconds")


def progress(message: str) -> None:
    _report.progress(message, tool="chaos")


def title(result: dict[str, Any]) -> str:
    parameters = result["parameters"]
    return (
        f"Chaos {result['scenario']}: {result['fault']} "
        f"({result['figures']['sent']['value']} webhooks at {parameters['rate']:g}/s, "
        f"fault {result['window']['seconds']:.1f} s)"
    )


def _latency(phase: str, figures: dict[str, Any]) -> Row:
    if figures["p50_ms"] is None:
        return Row(f"accept latency {phase}: p50 / p99", f"none of {figures['events']}")
    return Row(
        f"accept latency {phase}: p50 / p99",
        f"{figures['p50_ms']:.0f} / {figures['p99_ms']:.0f} ms",
        f"({figures['accepted']} of {figures['events']})",
    )


def rows(result: dict[str, Any]) -> list[Row]:
    table = [
        Row(
            figure["label"],
            figure["shown"],
            figure["target"],
            "" if figure["held"] is None else verdict(figure["held"]),
        )
        for figure in result["figures"].values()
    ]
    table.extend(_latency(phase, each) for phase, each in result["latency"].items())
    table.extend(
        Row(f"fault: {name.replace('_', ' ')}", str(value))
        for name, value in result["window"].items()
        if name not in WINDOW_TIMES
    )
    return table


def markdown(results: dict[str, Any]) -> str:
    """One column per scenario, one row per figure, in the tables' order (JSON sorts keys)."""
    names = [name for name in SCENARIOS if name in results]
    lines = [
        "| figure | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in FIGURES:
        figures = [results[name]["figures"][key] for name in names]
        cells = [
            figure["shown"] + (" **MISS**" if figure["held"] is False else "") for figure in figures
        ]
        lines.append(f"| {figures[0]['label']} | " + " | ".join(cells) + " |")
    for phase in ("before", "during", "after"):
        cells = []
        for name in names:
            each = results[name]["latency"][phase]
            cells.append(
                "-" if each["p50_ms"] is None else f"{each['p50_ms']:.0f} / {each['p99_ms']:.0f}"
            )
        lines.append(f"| accept latency {phase}, p50 / p99 ms | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
