"""The deployment files in ops/deploy agree with the code they deploy.

Every `SLUICE_*` name is a real setting, the example environment is a valid configuration,
every `sluice` command line parses, and the worker's stop timeouts outlast its grace period
(or the service manager kills it before it has handed its jobs back).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli.parser import build_parser
from app.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "ops" / "deploy"
UNITS = sorted(path.name for path in DEPLOY.glob("*.service"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
SLUICE = "/opt/sluice/venv/bin/sluice"

TEST_ONLY_SETTINGS = {"SLUICE_TEST_DATABASE_URL"}
"""Read by the test suite (tests/conftest.py, README "Tests"), not by Sluice."""

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """A systemd unit file: section -> key -> values (keys may repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    logical = re.sub(r"\\\n", " ", text)
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, equals, value = line.partition("=")
        assert section is not None, f"line {number}: before any [Section]"
        assert equals, f"line {number}: not Key=value"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def unit(name: str) -> Unit:
    return parse_unit((DEPLOY / name).read_text())


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}= given {len(values)} times"
    return values[0]


_SPAN_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def seconds(span: str) -> float:
    """A systemd or Compose time span ("60", "90s", "1min 30s", "1m30s") in seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", span.strip()):
        return float(span)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", span)
    assert "".join(n + u for n, u in parts) == re.sub(r"\s", "", span), f"not a time span: {span}"
    return sum(float(number) * _SPAN_UNITS[name] for number, name in parts)


def env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines, as systemd's EnvironmentFile= and `docker --env-file` read them."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, equals, value = line.partition("=")
            assert equals, f"not NAME=value: {line}"
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line}"
            assert " " not in value, f"a space in a value (no quoting here): {line}"
            values[name] = value
    return values


def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def grace_seconds() -> float:
    """The longest grace period the worker is deployed with: the default, or the example's."""
    default = Settings.model_fields["worker_grace_seconds"].default
    assert isinstance(default, float)
    deployed = env_file(DEPLOY / "sluice.env.example").get("SLUICE_WORKER_GRACE_SECONDS")
    return max(default, float(deployed)) if deployed is not None else default


def sluice_arguments(command: str) -> list[str]:
    """The arguments of a unit's `ExecStart=` that runs the installed `sluice`."""
    words = shlex.split(command.lstrip("-@:+!"))
    assert words[0] == SLUICE, f"{command!r} does not run {SLUICE}"
    return words[1:]


def parses(arguments: list[str]) -> None:
    """Fail (rather than exit) when `sluice` would refuse `arguments`."""
    try:
        build_parser().parse_args(arguments)
    except (SystemExit, argparse.ArgumentError):
        pytest.fail(f"sluice refuses {shlex.join(arguments)!r}")


def clear_sluice_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("SLUICE_"):
            monkeypatch.delenv(variable)


def test_the_files_are_there() -> None:
    names = {path.name for path in DEPLOY.iterdir()}
    assert {
        "sluice-worker.service",
        "sluice-app.service",
        "sluice-migrate.service",
        "sluice.env.example",
        "Dockerfile",
        "compose.yaml",
        "README.md",
    } <= names


@pytest.mark.parametrize("name", UNITS)
def test_unit_parses_and_runs_sluice_as_its_own_user(name: str) -> None:
    parsed = unit(name)
    assert {"Unit", "Service"} <= parsed.keys()
    assert one(parsed, "Unit", "Description")
    assert one(parsed, "Service", "User") == "sluice"
    assert one(parsed, "Service", "EnvironmentFile") == "/etc/sluice/sluice.env"
    for key in ("ExecStartPre", "ExecStart"):
        for command in parsed["Service"].get(key, []):
            parses(sluice_arguments(command))


def test_the_worker_unit_stops_gracefully() -> None:
    worker = unit("sluice-worker.service")
    assert sluice_arguments(one(worker, "Service", "ExecStart")) == ["serve", "--role", "worker"]
    assert one(worker, "Service", "KillSignal") == "SIGTERM"
    # SIGTERM to the worker alone (its sandboxes finish their steps); SIGKILL for what is left.
    assert one(worker, "Service", "KillMode") == "mixed"
    assert seconds(one(worker, "Service", "TimeoutStopSec")) > grace_seconds()
    assert one(worker, "Service", "Restart") == "on-failure"


def test_the_worker_unit_lets_bubblewrap_work() -> None:
    service = unit("sluice-worker.service")["Service"]
    for key in ("RestrictNamespaces", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc"):
        assert key not in service, f"{key}= stops bubblewrap (user namespaces, a fresh /proc)"
    for value in service.get("SystemCallFilter", []):
        assert not value.startswith("~"), "a deny-list may deny what bubblewrap needs"
        assert "@mount" in value, "bubblewrap needs @mount"


def test_the_app_unit_serves_http_and_the_migrate_unit_is_the_release_step() -> None:
    app = unit("sluice-app.service")
    assert sluice_arguments(one(app, "Service", "ExecStart")) == ["serve", "--role", "app"]
    assert one(app, "Service", "KillSignal") == "SIGTERM"
    migrate = unit("sluice-migrate.service")
    assert one(migrate, "Service", "Type") == "oneshot"
    assert sluice_arguments(one(migrate, "Service", "ExecStart")) == ["migrate"]
    assert "Install" not in migrate, "the release step runs on demand, not at every boot"
    for name in ("sluice-app.service", "sluice-worker.service"):
        parsed = unit(name)
        assert "sluice-migrate.service" in " ".join(parsed["Unit"]["After"])
        (check,) = parsed["Service"]["ExecStartPre"]
        assert sluice_arguments(check) == ["migrate", "--check"]


def sluice_names(text: str) -> set[str]:
    return set(re.findall(r"\bSLUICE_[A-Z0-9_]+\b", text))


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in DEPLOY.iterdir() if p.is_file()),
)
def test_every_sluice_name_is_a_setting(name: str) -> None:
    settings = {f"SLUICE_{field.upper()}" for field in Settings.model_fields}
    unknown = sluice_names((DEPLOY / name).read_text()) - settings - TEST_ONLY_SETTINGS
    assert not unknown, f"{name} names settings that do not exist: {sorted(unknown)}"


def test_the_example_environment_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_sluice_environment(monkeypatch)
    example = env_file(DEPLOY / "sluice.env.example")
    for variable, value in example.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert settings.database_url is not None
    # Only the release step migrates.
    assert settings.migrate_on_start is False


def test_compose_has_the_four_services_in_order() -> None:
    services = compose()["services"]
    assert {"postgres", "migrate", "app", "worker"} <= services.keys()
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:17"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("app", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_compose_runs_real_sluice_commands_without_migrating_on_start() -> None:
    services = compose()["services"]
    expected = {
        "migrate": ["migrate"],
        "app": ["serve", "--role", "app"],
        "worker": ["serve", "--role", "worker"],
    }
    for name, command in expected.items():
        service = services[name]
        assert service["command"] == command
        parses(service["command"])
        assert service["environment"]["SLUICE_MIGRATE_ON_START"] == "false"
        assert service["environment"]["SLUICE_DATABASE_URL"].startswith("postgresql://")
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert context == ROOT
        assert (context / service["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", ["migrate", "app", "worker"])
def test_compose_environment_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    clear_sluice_environment(monkeypatch)
    for variable, value in compose()["services"][name]["environment"].items():
        if value is not None:  # passed through from the caller's environment
            monkeypatch.setenv(variable, str(value))
    load_settings()


def test_compose_gives_the_worker_time_to_hand_its_jobs_back() -> None:
    worker = compose()["services"]["worker"]
    # Docker's default is 10 s, shorter than the default grace period.
    assert seconds(worker["stop_grace_period"]) > grace_seconds()
    assert worker["init"] is True


def test_compose_matches_the_compose_specification() -> None:
    if not CHECK_JSONSCHEMA.exists():
        pytest.skip(f"{CHECK_JSONSCHEMA} is missing (pip install -e '.[test]')")
    done = subprocess.run(
        [
            str(CHECK_JSONSCHEMA),
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_sluice_as_a_user_with_bubblewrap() -> None:
    lines = [
        line.strip()
        for line in re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text()).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.12-slim"
    assert any(
        line.startswith("RUN") and "install" in line and "bubblewrap" in line for line in lines
    )
    assert any(
        line.startswith("RUN") and re.search(r"pip install .*/tmp/sluice", line) for line in lines
    )
    (user,) = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user not in ("root", "0")
    assert lines[-2:] == ['ENTRYPOINT ["sluice"]', 'CMD ["serve"]']
    # Every directory the image copies is a package of the distribution, so `pip install` works.
    copied = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


@pytest.mark.parametrize(
    ("span", "expected"),
    [("60", 60), ("60s", 60), ("1min 30s", 90), ("1m30s", 90), ("500ms", 0.5)],
)
def test_time_spans(span: str, expected: float) -> None:
    assert seconds(span) == expected


def test_the_readme_configuration_table_has_every_setting() -> None:
    """A setting that exists has its row in README's Configuration table."""
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `(SLUICE_[A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    settings = {f"SLUICE_{name.upper()}" for name in Settings.model_fields}
    assert settings - rows == set()
