"""The GitHub workflows: valid, and running only commands this repository has.

A workflow that calls `./dev something` after `something` was renamed fails only when it
runs (weekly, for the benchmark); these tests fail at once instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

DEV_CALL = re.compile(r"(?:^|[\s;&|(])(?:bash\s+)?\./dev(?:\s+([A-Za-z0-9_-]+))?")
CI_RUN_CALL = re.compile(r"(?:^|[\s;&|(])(?:bash\s+)?\.ci/run\b")

BEING_BUILT = {"smoke": "ops.smoke"}
"""`./dev` subcommands announced before they exist, and the module that will implement each.
A workflow may call one before `dev` has it only while that module does not exist either."""


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def dev_subcommands() -> set[str]:
    """The patterns of the `case "$command" in` of the `dev` script."""
    text = (ROOT / "dev").read_text()
    block = re.search(r'^case "\$command" in\n(.*?)^esac', text, re.MULTILINE | re.DOTALL)
    assert block is not None, 'dev has no `case "$command" in ... esac`'
    names: set[str] = set()
    for patterns in re.findall(r"^\s*([^\s()#]+)\)\s*$", block.group(1), re.MULTILINE):
        names.update(p for p in patterns.split("|") if p != "*")
    return names


def run_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(job id, step) for every step of every job that has a `run:`."""
    return [
        (job_id, step)
        for job_id, job in workflow["jobs"].items()
        for step in job.get("steps", [])
        if "run" in step
    ]


def dev_calls(command: str) -> list[str | None]:
    """The subcommands `./dev` is called with in a shell snippet (None: called bare)."""
    return [match.group(1) for match in DEV_CALL.finditer(command)]


def workflow_files() -> list[str]:
    return sorted(path.name for path in WORKFLOWS.glob("*.y*ml"))


def ci_run_dev_calls() -> list[str | None]:
    lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    return dev_calls("\n".join(lines))


def test_the_expected_workflows_exist() -> None:
    assert {"ci.yml", "smoke.yml", "benchmark.yml"} <= set(workflow_files())


@pytest.mark.parametrize("name", workflow_files())
@pytest.mark.parametrize(
    "schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"]
)
def test_workflow_matches_the_vendored_schema(name: str, schema: str) -> None:
    if not CHECK_JSONSCHEMA.exists():
        pytest.skip(f"{CHECK_JSONSCHEMA} is missing (pip install -e '.[test]')")
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(WORKFLOWS / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dev_subcommands_are_parsed() -> None:
    assert {"serve", "test", "bench"} <= dev_subcommands()


@pytest.mark.parametrize("name", workflow_files())
def test_every_dev_call_is_a_dev_subcommand(name: str) -> None:
    known = dev_subcommands()
    pending = []
    for job_id, step in run_steps(load(name)):
        for subcommand in dev_calls(step["run"]):
            where = f"{name}, job {job_id}, step {step.get('name', step['run'])!r}"
            assert subcommand is not None, f"{where}: `./dev` without a subcommand"
            if subcommand in known:
                continue
            missing = f"{where}: `./dev {subcommand}` is not a subcommand of dev ({sorted(known)})"
            module = BEING_BUILT.get(subcommand)
            assert module is not None, missing
            assert importlib.util.find_spec(module) is None, f"{missing}, though {module} exists"
            pending.append(subcommand)
    if pending:
        pytest.xfail(f"`./dev {', '.join(pending)}` is being built ({name} calls it already)")


def test_ci_run_calls_the_readme_test_command() -> None:
    assert ci_run_dev_calls() == ["test"]
    assert "test" in dev_subcommands()


def test_ci_runs_exactly_what_ci_run_runs() -> None:
    (job,) = load("ci.yml")["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    ci_run = [i for i, run in enumerate(runs) if CI_RUN_CALL.search(run)]
    assert ci_run, "ci.yml never runs .ci/run"
    assert not any(dev_calls(run) for run in runs), "ci.yml calls ./dev beside .ci/run"
    # .ci/run installs bubblewrap only as root, which a hosted runner is not.
    assert any("bubblewrap" in run for run in runs[: ci_run[0]])


def test_ci_matrix_is_both_postgres_versions_by_both_pythons() -> None:
    (job,) = load("ci.yml")["jobs"].values()
    matrix = job["strategy"]["matrix"]
    assert [str(v) for v in matrix["postgres"]] == ["15", "17"]
    assert [str(v) for v in matrix["python"]] == ["3.11", "3.13"]
    assert job["strategy"]["fail-fast"] is False
    assert job["services"]["postgres"]["image"] == "postgres:${{ matrix.postgres }}"
    (setup,) = [
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python")
    ]
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    # `dev` creates its virtualenv with $PYTHON: the matrix's, not whatever python3 is first.
    (test,) = [s for s in job["steps"] if CI_RUN_CALL.search(s.get("run", ""))]
    assert test["env"]["PYTHON"] == f"${{{{ steps.{setup['id']}.outputs.python-path }}}}"


def test_ci_points_the_tests_at_the_service_container() -> None:
    (job,) = load("ci.yml")["jobs"].values()
    service = job["services"]["postgres"]
    password = service["env"]["POSTGRES_PASSWORD"]
    (published,) = service["ports"]
    host_port = str(published).split(":")[0]
    url = job["env"]["SLUICE_TEST_DATABASE_URL"]
    assert url == f"postgresql://postgres:{password}@localhost:{host_port}/postgres"
    assert "pg_isready" in service["options"]


def test_smoke_runs_on_amd64_and_arm64() -> None:
    (job,) = load("smoke.yml")["jobs"].values()
    assert job["runs-on"] == "${{ matrix.runner }}"
    assert job["strategy"]["matrix"]["runner"] == ["ubuntu-latest", "ubuntu-24.04-arm"]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    smoke = [i for i, run in enumerate(runs) if "smoke" in dev_calls(run)]
    assert smoke, "smoke.yml never runs ./dev smoke"
    assert any("bubblewrap" in run for run in runs[: smoke[0]])


def test_benchmark_runs_on_demand_and_keeps_its_results() -> None:
    workflow = load("benchmark.yml")
    assert "workflow_dispatch" in workflow["on"]
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    runs = [step.get("run", "") for step in steps]
    (bench,) = [i for i, run in enumerate(runs) if "bench" in dev_calls(run)]
    assert runs[bench].strip() == "./dev bench flow --configs all --out bench-results"
    installs = " ".join(runs[:bench])
    assert "bubblewrap" in installs
    assert re.search(r"\bhey\b", installs)
    assert any(
        "bench-results/flow.md" in run and '>> "$GITHUB_STEP_SUMMARY"' in run
        for run in runs[bench + 1 :]
    )
    (upload,) = [s for s in steps if s.get("uses") == "actions/upload-artifact@v4"]
    assert upload["with"]["path"].rstrip("/") == "bench-results"


def test_the_benchmark_arguments_parse() -> None:
    """Once `python -m ops.bench flow` exists, the workflow's arguments must be its own."""
    try:
        bench = importlib.import_module("ops.bench.__main__")
    except ModuleNotFoundError as exc:
        pytest.skip(f"ops.bench needs {exc.name}, not installed here")
    if "flow" not in bench.BENCHMARKS:
        assert importlib.util.find_spec("ops.bench.flow") is None, "ops.bench has no `flow`"
        pytest.xfail("the flow benchmark (`./dev bench flow`) is being built")
    (job,) = load("benchmark.yml")["jobs"].values()
    (command,) = [s["run"] for s in job["steps"] if "bench" in dev_calls(s.get("run", ""))]
    arguments = command.split()[2:]
    try:
        parsed = bench.parser().parse_args(arguments)
    except SystemExit:
        pytest.fail(f"python -m ops.bench refuses {' '.join(arguments)!r}")
    assert parsed.command == "flow"
