"""The metrics registry renders Prometheus text format 0.0.4, checked by prometheus_client."""

from __future__ import annotations

import math
import sys
import threading

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.metrics import Counter, Gauge, GaugeFamily, Histogram, Registry
from worker.sandbox.step import StepStatus


def parse(text: str) -> dict[str, Metric]:
    """Families by name; the parser's lenience is closed off by refusing untyped families.

    (A sample line it cannot place in the family before it becomes an untyped family of its
    own, and a family seen twice would shadow the first.)
    """
    families = list(text_string_to_metric_families(text))
    assert [f.type for f in families if f.type == "untyped"] == [], text
    by_name = {f.name: f for f in families}
    assert len(by_name) == len(families), text
    return by_name


def values(family: Metric, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


def test_counter_gauge_and_histogram_round_trip() -> None:
    registry = Registry()
    requests = registry.register(Counter("app_requests_total", "Requests.", ("method",)))
    depth = registry.register(Gauge("app_depth", "Depth."))
    latency = registry.register(Histogram("app_latency_seconds", "Latency.", ("op",)))
    requests.inc(method="GET")
    requests.inc(2.5, method="GET")
    requests.inc(method="POST")
    depth.set(-3)
    latency.observe(0.2, op="claim")

    families = parse(registry.render())

    assert {name: f.type for name, f in families.items()} == {
        "app_requests": "counter",  # the parser drops a counter's _total suffix
        "app_depth": "gauge",
        "app_latency_seconds": "histogram",
    }
    assert families["app_requests"].documentation == "Requests."
    assert values(families["app_requests"], "app_requests_total") == {
        (("method", "GET"),): 3.5,
        (("method", "POST"),): 1.0,
    }
    assert values(families["app_depth"], "app_depth") == {(): -3.0}
    assert values(families["app_latency_seconds"], "app_latency_seconds_count") == {
        (("op", "claim"),): 1.0
    }


def test_label_values_and_help_are_escaped() -> None:
    registry = Registry()
    awkward = ['say "hi"', "C:\\temp\\", "two\nlines", 'all \\" of\n it', "", "{a=b},"]
    counter = registry.register(
        Counter("odd_total", 'Help with \\ and\nnewline and "quotes".', ["v"])
    )
    for value in awkward:
        counter.inc(v=value)

    family = parse(registry.render())["odd"]

    assert family.documentation == 'Help with \\ and\nnewline and "quotes".'
    assert sorted(s.labels["v"] for s in family.samples) == sorted(awkward)


def test_histogram_buckets_are_cumulative_and_end_at_count() -> None:
    registry = Registry()
    histogram = registry.register(Histogram("h_seconds", "H.", buckets=[0.1, 1, 10]))
    observed = [0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 11.0, 1e9, -1.0]
    for value in observed:
        histogram.observe(value)

    family = parse(registry.render())["h_seconds"]
    buckets = [(s.labels["le"], s.value) for s in family.samples if s.name == "h_seconds_bucket"]

    # Bounds are inclusive: 0.1, 1.0 and 10.0 fall in their own bucket.
    assert buckets == [("0.1", 3.0), ("1.0", 5.0), ("10.0", 7.0), ("+Inf", 9.0)]
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)
    assert values(family, "h_seconds_count") == {(): float(len(observed))}
    assert values(family, "h_seconds_sum") == {(): pytest.approx(sum(observed))}


def test_labelled_histogram_keeps_series_apart() -> None:
    registry = Registry()
    histogram = registry.register(Histogram("steps_seconds", "S.", ("type", "status"), [1.0]))
    histogram.observe(0.5, type="python", status="SUCCEEDED")
    histogram.observe(2.0, type="python", status="FAILED")
    histogram.observe(2.0, type="python", status="FAILED")

    family = parse(registry.render())["steps_seconds"]

    assert values(family, "steps_seconds_bucket") == {
        (("le", "1.0"), ("status", "FAILED"), ("type", "python")): 0.0,
        (("le", "+Inf"), ("status", "FAILED"), ("type", "python")): 2.0,
        (("le", "1.0"), ("status", "SUCCEEDED"), ("type", "python")): 1.0,
        (("le", "+Inf"), ("status", "SUCCEEDED"), ("type", "python")): 1.0,
    }
    assert values(family, "steps_seconds_sum") == {
        (("status", "FAILED"), ("type", "python")): 4.0,
        (("status", "SUCCEEDED"), ("type", "python")): 0.5,
    }


def test_exact_text_is_sorted_and_well_formed() -> None:
    registry = Registry()
    jobs = registry.register(Counter("b_total", "B.", ("k",)))
    registry.register(Histogram("a_seconds", "A.", buckets=[1.0]))
    registry.register(Gauge("c", "C.", ("k",)))
    registry.register(Counter("d_total", "D."))
    jobs.inc(k="y")
    jobs.inc(k="x")
    extra = GaugeFamily("ab", "AB\\.", ("status",))
    extra.add(4, status="queued")
    extra.add(1, status="failed")

    assert registry.render([extra]) == (
        "# HELP a_seconds A.\n"
        "# TYPE a_seconds histogram\n"
        'a_seconds_bucket{le="1.0"} 0.0\n'
        'a_seconds_bucket{le="+Inf"} 0.0\n'
        "a_seconds_sum 0.0\n"
        "a_seconds_count 0.0\n"
        "# HELP ab AB\\\\.\n"
        "# TYPE ab gauge\n"
        'ab{status="failed"} 1.0\n'
        'ab{status="queued"} 4.0\n'
        "# HELP b_total B.\n"
        "# TYPE b_total counter\n"
        'b_total{k="x"} 1.0\n'
        'b_total{k="y"} 1.0\n'
        "# HELP c C.\n"
        "# TYPE c gauge\n"
        "# HELP d_total D.\n"
        "# TYPE d_total counter\n"
        "d_total 0.0\n"
    )


def test_render_does_not_depend_on_update_order() -> None:
    def build(order: list[str]) -> str:
        registry = Registry()
        counter = registry.register(Counter("n_total", "N.", ("a", "b")))
        for value in order:
            counter.inc(a=value, b=value[::-1])
        return registry.render()

    assert build(["x1", "a2", "m3"]) == build(["m3", "x1", "a2"])


def test_special_gauge_values() -> None:
    registry = Registry()
    gauge = registry.register(Gauge("g", "G.", ("v",)))
    gauge.set(math.inf, v="up")
    gauge.set(-math.inf, v="down")
    gauge.set(math.nan, v="nan")
    gauge.set(1e-7, v="tiny")

    got = values(parse(registry.render())["g"], "g")

    assert got[(("v", "up"),)] == math.inf
    assert got[(("v", "down"),)] == -math.inf
    assert math.isnan(got[(("v", "nan"),)])
    assert got[(("v", "tiny"),)] == 1e-7


def test_gauge_families_are_collected_at_render() -> None:
    registry = Registry()
    registry.register(Counter("sluice_x_total", "X."))
    runs = GaugeFamily("sluice_runs", "Runs by status.", ["status"])
    for status, count in [("RUNNING", 2), ("QUEUED", 7), ("SUCCEEDED", 0)]:
        runs.add(count, status=status)
    depth = GaugeFamily("sluice_queue_depth", "Jobs waiting.")
    depth.add(12)

    families = parse(registry.render(extra=[runs, depth]))

    assert families["sluice_runs"].type == "gauge"
    assert values(families["sluice_runs"], "sluice_runs") == {
        (("status", "QUEUED"),): 7.0,
        (("status", "RUNNING"),): 2.0,
        (("status", "SUCCEEDED"),): 0.0,
    }
    assert values(families["sluice_queue_depth"], "sluice_queue_depth") == {(): 12.0}
    assert "sluice_runs" not in parse(registry.render()), "extra families are not kept"


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"mode": "sync"},
        {"mode": "sync", "code": "200", "extra": "x"},
        {"mode": "a", "cod": "1"},
    ],
)
def test_labels_must_be_exactly_the_declared_ones(labels: dict[str, str]) -> None:
    counter = Counter("hooks_total", "H.", ("mode", "code"))
    histogram = Histogram("hooks_seconds", "H.", ("mode", "code"))
    gauge = Gauge("hooks", "H.", ("mode", "code"))
    family = GaugeFamily("hooks_family", "H.", ("mode", "code"))

    with pytest.raises(ValueError, match="hooks_total"):
        counter.inc(**labels)
    with pytest.raises(ValueError, match="hooks_seconds"):
        histogram.observe(1.0, **labels)
    with pytest.raises(ValueError, match="hooks:"):
        gauge.set(1.0, **labels)
    with pytest.raises(ValueError, match="hooks_family"):
        family.add(1.0, **labels)


def test_unlabelled_metric_refuses_labels_and_label_values_must_be_str() -> None:
    with pytest.raises(ValueError, match="plain_total"):
        Counter("plain_total", "P.").inc(status="x")
    with pytest.raises(TypeError, match="hooks_total"):
        Counter("hooks_total", "H.", ("code",)).inc(code=200)  # type: ignore[arg-type]


def test_positional_value_does_not_collide_with_a_label_of_the_same_name() -> None:
    registry = Registry()
    counter = registry.register(Counter("c_total", "C.", ("amount",)))
    counter.inc(2, amount="big")

    assert values(parse(registry.render())["c"], "c_total") == {(("amount", "big"),): 2.0}


@pytest.mark.parametrize(
    ("name", "labelnames"),
    [
        ("1bad", ()),
        ("has-dash", ()),
        ("ok", ("bad-label",)),
        ("ok", ("__reserved",)),
        ("ok", ("a", "a")),
    ],
)
def test_invalid_names_are_refused(name: str, labelnames: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="name"):
        Gauge(name, "G.", labelnames)


def test_invalid_updates_and_buckets_are_refused() -> None:
    counter = Counter("c_total", "C.")
    for amount in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="c_total"):
            counter.inc(amount)
    with pytest.raises(ValueError, match="h_seconds"):
        Histogram("h_seconds", "H.").observe(math.nan)
    with pytest.raises(ValueError, match="le"):
        Histogram("h_seconds", "H.", ("le",))
    for buckets in ([1.0, 1.0], [2.0, 1.0], [math.nan], [1.0, math.inf, 2.0]):
        with pytest.raises(ValueError, match="buckets"):
            Histogram("h_seconds", "H.", buckets=buckets)
    family = GaugeFamily("g", "G.", ("k",))
    family.add(1, k="a")
    with pytest.raises(ValueError, match="twice"):
        family.add(2, k="a")


def test_an_explicit_inf_bucket_is_not_doubled() -> None:
    registry = Registry()
    registry.register(Histogram("h", "H.", buckets=[1.0, math.inf]))

    family = parse(registry.render())["h"]

    assert [s.labels["le"] for s in family.samples if s.name == "h_bucket"] == ["1.0", "+Inf"]


def test_duplicate_names_are_refused() -> None:
    registry = Registry()
    registry.register(Counter("dup_total", "D."))
    registry.register(Histogram("lat", "L."))

    with pytest.raises(ValueError, match="dup_total"):
        registry.register(Gauge("dup_total", "Again."))
    with pytest.raises(ValueError, match="lat_count"):
        registry.register(Counter("lat_count", "Clashes with the histogram's samples."))
    with pytest.raises(ValueError, match="lat"):
        registry.render(extra=[GaugeFamily("lat", "Clashes with a registered metric.")])
    with pytest.raises(ValueError, match="twin"):
        registry.render(extra=[GaugeFamily("twin", "T."), GaugeFamily("twin", "T.")])
    parse(registry.render())


def test_concurrent_updates_from_threads_are_not_lost() -> None:
    registry = Registry()
    counter = registry.register(Counter("t_total", "T.", ("k",)))
    histogram = registry.register(Histogram("t_seconds", "T.", buckets=[1.0]))
    per_thread = 5_000
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            counter.inc(k="x")
            histogram.observe(0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so an unlocked update loses counts
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    families = parse(registry.render())
    assert values(families["t"], "t_total") == {(("k", "x"),): 8.0 * per_thread}
    assert values(families["t_seconds"], "t_seconds_count") == {(): 8.0 * per_thread}


def test_sluice_metrics_are_registered_with_their_types() -> None:
    families = parse(metrics.REGISTRY.render())

    assert {name: f.type for name, f in families.items()} == {
        "sluice_claim_latency_seconds": "histogram",
        "sluice_step_duration_seconds": "histogram",
        "sluice_sandbox_outcomes": "counter",
        "sluice_jobs_claimed": "counter",
        "sluice_webhooks": "counter",
        "sluice_runs_finished": "counter",
    }
    assert metrics.STEP_DURATION.labelnames == ("type", "status")
    assert metrics.WEBHOOKS.labelnames == ("mode", "code")
    assert metrics.SANDBOX_OUTCOMES.labelnames == ("status",)
    assert metrics.CLAIM_LATENCY.labelnames == metrics.JOBS_CLAIMED.labelnames == ()


def test_every_sandbox_status_is_exposed_from_the_start() -> None:
    assert set(metrics.SANDBOX_STATUSES) == {status.value for status in StepStatus}
    family = parse(metrics.REGISTRY.render())["sluice_sandbox_outcomes"]
    assert {s.labels["status"] for s in family.samples} == set(metrics.SANDBOX_STATUSES)
