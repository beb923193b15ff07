"""The sandbox benchmark: warm step round trip, cold start per mode, and the parent's RSS over
many steps.

Every figure is measured through `SandboxPool.run` with real children: a warm round trip is a
trivial ``return input`` step on a child that has already served one; a cold start is a step on
a pool with no spare and ``max_uses=1``, so each one spawns a child (spawn → first reply); the
RSS run uses the pool's default settings (children recycled every 100 steps, two spares).
Sandboxes need no database: the server URL the harness passes is not used.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import subprocess
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any

from ops.bench import _args
from ops.bench._report import Row, progress, verdict
from worker.sandbox import Limits, SandboxMode, SandboxPool, StepRequest, StepStatus, bwrap

TARGET_WARM_P50_MS = 1.0
TARGET_COLD_BWRAP_MS = 100.0
TARGET_RSS_GROWTH_PCT = 10.0
ECHO = "def run(input, ctx):\n    return input"
WARMUP_STEPS = 200
RSS_BASELINE_STEPS = 1000
"""Steps run before the RSS baseline is taken, so that caches and allocator pools are filled."""
RSS_SAMPLES = 10


@dataclass(frozen=True)
class Options:
    sandbox_warm_steps: int = 5000
    sandbox_cold_starts: int = 50
    sandbox_rss_steps: int = 20_000
    sandbox_mode: str | None = None
    """The mode of the RSS run (default: the resolved default mode)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    _args.add_counts(
        parser,
        [
            ("--sandbox-warm-steps", defaults.sandbox_warm_steps, "timed steps on a warm child"),
            ("--sandbox-cold-starts", defaults.sandbox_cold_starts, "cold starts per mode"),
            ("--sandbox-rss-steps", defaults.sandbox_rss_steps, "steps of the parent RSS run"),
        ],
    )
    parser.add_argument(
        "--sandbox-mode",
        choices=[SandboxMode.BWRAP, SandboxMode.PROCESS],
        help="mode of the RSS run (default: bwrap if it works here, else process)",
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        sandbox_warm_steps=args.sandbox_warm_steps,
        sandbox_cold_starts=args.sandbox_cold_starts,
        sandbox_rss_steps=args.sandbox_rss_steps,
        sandbox_mode=args.sandbox_mode,
    )


async def run(server_url: str, options: Options) -> dict[str, Any]:
    del server_url
    problem = bwrap.problem()
    modes = [SandboxMode.PROCESS] if problem else [SandboxMode.BWRAP, SandboxMode.PROCESS]
    if problem:
        progress(f"bwrap is not usable here ({problem}): measuring mode 'process' only")
    figures: dict[str, Any] = {"modes": {}}
    for mode in modes:
        progress(f"{mode}: {options.sandbox_warm_steps:,} warm steps")
        warm = await _warm(mode, options.sandbox_warm_steps)
        progress(f"{mode}: {options.sandbox_cold_starts} cold starts")
        cold = await _cold(mode, options.sandbox_cold_starts)
        figures["modes"][mode] = {"warm_ms": warm, "cold_start_ms": cold}
    rss_mode = SandboxMode(options.sandbox_mode or modes[0])
    progress(f"{rss_mode}: parent RSS over {options.sandbox_rss_steps:,} steps")
    figures["rss"] = await _rss(rss_mode, options.sandbox_rss_steps) | {"mode": rss_mode}
    return {
        "parameters": asdict(options),
        "figures": figures,
        "sandbox": {
            "modes": modes,
            "bwrap_problem": problem,
            "bwrap_version": _bwrap_version(),
            "worker_is_root": os.geteuid() == 0,
        },
    }


async def _warm(mode: SandboxMode, steps: int) -> dict[str, float]:
    request = StepRequest(ECHO, {"n": 1}, {}, Limits())
    async with SandboxPool(mode, warm=0, max_uses=steps + WARMUP_STEPS + 1) as pool:
        for _ in range(WARMUP_STEPS):
            _check(await pool.run("bench", request))
        samples = []
        for _ in range(steps):
            started = perf_counter()
            result = await pool.run("bench", request)
            samples.append(perf_counter() - started)
            _check(result)
    return _summary_ms(samples)


async def _cold(mode: SandboxMode, starts: int) -> dict[str, float]:
    request = StepRequest(ECHO, None, {}, Limits())
    samples = []
    async with SandboxPool(mode, warm=0, max_uses=1) as pool:
        for n in range(starts):
            started = perf_counter()
            result = await pool.run(f"cold-{n}", request)
            samples.append(perf_counter() - started)
            _check(result)
    return _summary_ms(samples)


async def _rss(mode: SandboxMode, steps: int) -> dict[str, Any]:
    """Parent RSS after a warm-up and then every `steps / RSS_SAMPLES` steps of a realistic mix
    (four projects, inputs that vary, children recycled as usual)."""
    samples: list[tuple[int, int]] = []
    every = max(1, steps // RSS_SAMPLES)
    started = perf_counter()
    async with SandboxPool(mode) as pool:
        before_first_step = _rss_bytes()
        for n in range(RSS_BASELINE_STEPS + steps):
            request = StepRequest(ECHO, {"n": n, "text": "x" * (n % 512)}, {"step": "s"}, Limits())
            _check(await pool.run(f"project-{n % 4}", request))
            done = n + 1 - RSS_BASELINE_STEPS
            if done >= 0 and done % every == 0:
                samples.append((done, _rss_bytes()))
    seconds = perf_counter() - started
    baseline, final = samples[0][1], samples[-1][1]
    return {
        "steps": steps,
        "baseline_bytes": baseline,
        "final_bytes": final,
        "growth_pct": (final - baseline) / baseline * 100,
        "before_first_step_bytes": before_first_step,
        "growth_from_first_step_pct": (final - before_first_step) / before_first_step * 100,
        "samples": samples,
        "steps_per_s": (RSS_BASELINE_STEPS + steps) / seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _check(result: Any) -> None:
    if result.status is not StepStatus.SUCCEEDED:
        raise RuntimeError(f"a benchmark step failed: {result.status}: {result.error}")


def _rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _summary_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000

    return {
        "p50": percentile(50),
        "p99": percentile(99),
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(samples) * 1000,
        "samples": len(samples),
    }


def _bwrap_version() -> str | None:
    executable = shutil.which("bwrap")
    if executable is None:
        return None
    done = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def rows(result: dict[str, Any]) -> list[Row]:
    figures = result["figures"]
    out: list[Row] = []
    for mode, each in figures["modes"].items():
        warm, cold = each["warm_ms"], each["cold_start_ms"]
        cold_target = TARGET_COLD_BWRAP_MS if mode == SandboxMode.BWRAP else None
        out += [
            _ms_row(f"warm round trip p50 [{mode}]", warm["p50"], TARGET_WARM_P50_MS),
            _ms_row(f"warm round trip p99 [{mode}]", warm["p99"]),
            _ms_row(f"cold start p50 [{mode}]", cold["p50"], cold_target),
            _ms_row(f"cold start p99 [{mode}]", cold["p99"], cold_target),
        ]
    rss = figures["rss"]
    mib = 1024 * 1024
    out += [
        Row(
            f"parent RSS growth, {rss['steps']:,} steps [{rss['mode']}]",
            f"{rss['growth_pct']:+.1f} %",
            f"< {TARGET_RSS_GROWTH_PCT:g} %",
            verdict(rss["growth_pct"] < TARGET_RSS_GROWTH_PCT),
        ),
        Row(
            f"  RSS after {RSS_BASELINE_STEPS:,} warm-up steps → final",
            f"{rss['baseline_bytes'] / mib:.1f} → {rss['final_bytes'] / mib:.1f} MiB",
        ),
        Row(
            "  growth since before the first step",
            f"{rss['growth_from_first_step_pct']:+.1f} %",
        ),
        Row("  steps/s (one at a time, with recycling)", f"{rss['steps_per_s']:,.0f}"),
    ]
    return out


def _ms_row(label: str, ms: float, target: float | None = None) -> Row:
    if target is None:
        return Row(label, f"{ms:.3f} ms")
    return Row(label, f"{ms:.3f} ms", f"<= {target:g} ms", verdict(ms <= target))


def title(parameters: dict[str, Any]) -> str:
    return (
        f"Sluice sandbox: {parameters['sandbox_warm_steps']:,} warm steps and "
        f"{parameters['sandbox_cold_starts']} cold starts per mode, parent RSS over "
        f"{parameters['sandbox_rss_steps']:,} steps"
    )
