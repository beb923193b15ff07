"""Prometheus metrics with no dependencies: counters, gauges, histograms and a registry.

What ``Registry.render`` guarantees:

- The output is the Prometheus text exposition format, version 0.0.4 (served as
  ``CONTENT_TYPE``): every family has a ``# HELP`` and a ``# TYPE`` line, help text and
  label values are escaped as the format requires, and histograms expose cumulative
  ``_bucket`` series ending at ``le="+Inf"`` (equal to ``_count``) plus ``_sum``.
- The output is deterministic: families sorted by name, series by label values, buckets by
  bound; the same state always renders to the same bytes.
- No name is exposed twice: a family whose name or sample names (a histogram's ``_bucket``,
  ``_sum``, ``_count``) collide with another is refused, at ``register`` or at ``render``.
- Every series carries exactly its family's declared label names; any other call is refused
  (a ValueError naming the metric) rather than producing a malformed scrape.

Each metric holds its own lock, so updates are safe from threads as well as tasks.

The metrics Sluice records in-process live here on the process-wide ``REGISTRY``, so the web
app and the worker update the same objects. Figures that live in the database (runs by
status, queue depth) are read at scrape time and passed to ``render`` as ``GaugeFamily``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar, TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

_LabelValues = tuple[str, ...]


class _Family:
    type: ClassVar[str]
    _suffixes: ClassVar[tuple[str, ...]] = ("",)
    _reserved_labels: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        labelnames = tuple(labelnames)
        for label in labelnames:
            if (
                not _LABEL_NAME.match(label)
                or label.startswith("__")
                or label in self._reserved_labels
            ):
                raise ValueError(f"{name}: invalid label name {label!r}")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError(f"{name}: duplicate label names {labelnames}")
        self.name = name
        self.help = help
        self.labelnames = labelnames
        self._labelset = frozenset(labelnames)

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The names this family's samples are exposed under."""
        return tuple(self.name + suffix for suffix in self._suffixes)

    def _key(self, labels: dict[str, str]) -> _LabelValues:
        if labels.keys() != self._labelset:
            raise ValueError(
                f"{self.name}: expected labels {sorted(self._labelset)}, got {sorted(labels)}"
            )
        key = tuple(labels[name] for name in self.labelnames)
        if not all(isinstance(value, str) for value in key):
            raise TypeError(f"{self.name}: label values must be str, got {labels!r}")
        return key

    def _lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.type}"
        yield from self._samples()

    def _samples(self) -> Iterator[str]:
        raise NotImplementedError


class _Metric(_Family):
    """A family whose values this process keeps, updated under the metric's own lock."""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._lock = threading.Lock()


class _Scalar(_Metric):
    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        # An unlabelled series exists from the start, so rate() sees its first increment.
        self._values: dict[_LabelValues, float] = {} if labelnames else {(): 0.0}

    def _samples(self) -> Iterator[str]:
        with self._lock:
            values = sorted(self._values.items())
        for key, value in values:
            yield _sample(self.name, self.labelnames, key, value)


class Counter(_Scalar):
    """A total that only goes up."""

    type = "counter"

    def inc(self, amount: float = 1.0, /, **labels: str) -> None:
        if not (math.isfinite(amount) and amount >= 0):
            raise ValueError(f"{self.name}: a counter increases by a finite amount >= 0")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_Scalar):
    """A value that is set, up or down."""

    type = "gauge"

    def set(self, value: float, /, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    """Observations counted into buckets by upper bound (inclusive), with their sum.

    ``buckets`` are the finite upper bounds; the ``+Inf`` bucket is always added.
    """

    type = "histogram"
    _suffixes = ("_bucket", "_sum", "_count")
    _reserved_labels = frozenset({"le"})

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help, labelnames)
        bounds = [float(b) for b in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not all(map(math.isfinite, bounds)) or any(
            low >= high for low, high in itertools.pairwise(bounds)
        ):
            raise ValueError(f"{name}: buckets must be finite and strictly increasing")
        self.buckets = tuple(bounds)
        # Per series: the count in each bucket alone (the last one is +Inf), then the sum.
        self._values: dict[_LabelValues, list[float]] = {}
        if not labelnames:
            self._values[()] = self._empty()

    def _empty(self) -> list[float]:
        return [0.0] * (len(self.buckets) + 2)

    def observe(self, value: float, /, **labels: str) -> None:
        if math.isnan(value):
            raise ValueError(f"{self.name}: cannot observe NaN")
        key = self._key(labels)
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._values.get(key)
            if series is None:
                series = self._values[key] = self._empty()
            series[index] += 1
            series[-1] += value

    def _samples(self) -> Iterator[str]:
        with self._lock:
            values = sorted((key, list(series)) for key, series in self._values.items())
        bucket_labels = (*self.labelnames, "le")
        bounds = (*self.buckets, math.inf)
        for key, series in values:
            count = 0.0
            for bound, in_bucket in zip(bounds, series[:-1], strict=True):
                count += in_bucket
                le = (*key, _number(bound))
                yield _sample(f"{self.name}_bucket", bucket_labels, le, count)
            yield _sample(f"{self.name}_sum", self.labelnames, key, series[-1])
            yield _sample(f"{self.name}_count", self.labelnames, key, count)


class GaugeFamily(_Family):
    """Gauge values collected at scrape time (for example from the database).

    Built fresh for each scrape and passed to ``Registry.render(extra=...)``; not registered.
    """

    type = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[_LabelValues, float] = {}

    def add(self, value: float, /, **labels: str) -> None:
        key = self._key(labels)
        if key in self._values:
            raise ValueError(f"{self.name}: labels {labels!r} added twice")
        self._values[key] = float(value)

    def _samples(self) -> Iterator[str]:
        for key, value in sorted(self._values.items()):
            yield _sample(self.name, self.labelnames, key, value)


_M = TypeVar("_M", bound=_Metric)


class Registry:
    """The metrics one process exposes, rendered together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: list[_Metric] = []
        self._names: set[str] = set()

    def register(self, metric: _M) -> _M:
        """Add `metric` and return it; refuse a name another family already exposes."""
        names = {metric.name, *metric.sample_names}
        with self._lock:
            _claim(self._names, names, metric.name)
            self._metrics.append(metric)
        return metric

    def render(self, extra: Iterable[GaugeFamily] = ()) -> str:
        """The exposition text of every registered metric and of the `extra` families."""
        with self._lock:
            families: list[_Family] = list(self._metrics)
            names = set(self._names)
        for family in extra:
            _claim(names, {family.name, *family.sample_names}, family.name)
            families.append(family)
        families.sort(key=lambda family: family.name)
        return "".join(f"{line}\n" for family in families for line in family._lines())


def _claim(taken: set[str], names: set[str], owner: str) -> None:
    if clash := names & taken:
        raise ValueError(f"{owner}: already exposed by another metric: {sorted(clash)}")
    taken |= names


def _sample(name: str, labelnames: tuple[str, ...], values: _LabelValues, value: float) -> str:
    if not labelnames:
        return f"{name} {_number(value)}"
    pairs = ",".join(
        f'{label}="{_escape_label(v)}"' for label, v in zip(labelnames, values, strict=True)
    )
    return f"{name}{{{pairs}}} {_number(value)}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


REGISTRY = Registry()
"""The process-wide registry that Sluice's own metrics are registered on."""

SANDBOX_STATUSES = (
    "SUCCEEDED",
    "FAILED",
    "TIMEOUT",
    "MEMORY_LIMIT_EXCEEDED",
    "LOG_SIZE_EXCEEDED",
    "INTERNAL_ERROR",
)
"""The values of ``SANDBOX_OUTCOMES``'s ``status`` label (the sandbox's step statuses)."""

# Waits and steps may last minutes; the default buckets stop at 10 s.
_LONG_BUCKETS = (*DEFAULT_BUCKETS, 30.0, 60.0, 120.0, 300.0)

CLAIM_LATENCY = REGISTRY.register(
    Histogram(
        "sluice_claim_latency_seconds",
        "Seconds from a job's run_at to its claim by a worker.",
        buckets=_LONG_BUCKETS,
    )
)
STEP_DURATION = REGISTRY.register(
    Histogram(
        "sluice_step_duration_seconds",
        "Seconds a step took to run, by step type and final status.",
        ("type", "status"),
        buckets=_LONG_BUCKETS,
    )
)
SANDBOX_OUTCOMES = REGISTRY.register(
    Counter(
        "sluice_sandbox_outcomes_total",
        "Sandboxed step executions, by outcome status.",
        ("status",),
    )
)
JOBS_CLAIMED = REGISTRY.register(
    Counter("sluice_jobs_claimed_total", "Jobs claimed by this process's workers.")
)
WEBHOOKS = REGISTRY.register(
    Counter(
        "sluice_webhooks_total",
        "Webhook requests answered, by mode (async|sync) and HTTP status code.",
        ("mode", "code"),
    )
)
RUNS_FINISHED = REGISTRY.register(
    Counter(
        "sluice_runs_finished_total",
        "Runs this process's workers brought to an end, by final status.",
        ("status",),
    )
)

# Every outcome is exposed from the start, so increase() counts the first of each.
for _status in SANDBOX_STATUSES:
    SANDBOX_OUTCOMES.inc(0, status=_status)
del _status
