"""A newcomer's first session, as the README tells it, with real processes and a real
headless Chromium: `sluice serve` on an empty database prints an API key and the console's
URL; the browser signs in with that key; runs triggered from the CLI (one succeeding, one
failing, one waiting for approval) appear on the runs page without a reload; the failed
run's page shows its error; the waiting run is approved from its approval page (whose URL
`sluice runs show` prints) and its row turns SUCCEEDED.

Set SLUICE_SCREENSHOTS=DIR to keep screenshots (newcomer-*.png) on a wide window.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml

from ops.ports import free_port
from tests.e2e.processes import sluice_env
from tests.e2e.test_cli_e2e import sluice
from tests.e2e.test_serve import serving, wait_for

FLOWS: dict[str, dict[str, Any]] = {
    "hello": {
        "name": "hello",
        "steps": [{"id": "greet", "type": "code", "code": "def run(input, ctx):\n    return 'hi'"}],
    },
    "broken": {
        "name": "broken",
        "steps": [
            {"id": "divide", "type": "code", "code": "def run(input, ctx):\n    return 1 / 0"}
        ],
    },
    "expense": {
        "name": "expense",
        "steps": [
            {
                "id": "approve",
                "type": "wait_for_webhook",
                "title": "Approve the team lunch?",
                "form": [{"name": "amount", "type": "number", "label": "Amount", "required": True}],
            },
            {"id": "respond", "type": "respond", "body": "{{ steps.approve.output.choice }}"},
        ],
    },
}


class Lines:
    """The lines a process prints, read in a thread; `wait` returns the first wanted one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        stdout = process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                self._lines.put(line)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def wait(self, wanted: re.Pattern[str], within: float = 60) -> re.Match[str]:
        for line in self.seen:
            if found := wanted.search(line):
                return found
        while True:
            try:
                line = self._lines.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"no line matched {wanted.pattern}: {self.seen}") from None
            self.seen.append(line)
            if found := wanted.search(line):
                return found


def test_a_newcomer_watches_runs_reads_an_error_and_approves_a_step(
    scratch_database_url: str, tmp_path: Path, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition: Any) -> Any:
        return WebDriverWait(browser, 30).until(condition)

    def shot(name: str) -> None:
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(max(int(height), 900), 3000))
        browser.save_screenshot(str(shots / f"newcomer-{name}.png"))
        browser.set_window_size(1280, 900)

    def row(run_id: str) -> tuple[str, str]:
        return (By.CSS_SELECTOR, f'tr[data-run="{run_id}"]')

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for name, flow in FLOWS.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(flow))
    server_env = sluice_env(
        SLUICE_DATABASE_URL=scratch_database_url,
        SLUICE_PORT=str(port),
        SLUICE_DATA_DIR=str(tmp_path / "data"),
    )
    with serving(server_env) as server:
        printed = Lines(server)
        key = printed.wait(re.compile(r"^\s+(sk_\S+)\s*$"))[1]
        console = printed.wait(re.compile(r"console at (\S+)"))[1]
        assert console == f"{url}/console"
        wait_for(f"{url}/ready", 200, server)
        cli = sluice_env(SLUICE_URL=url, SLUICE_API_KEY=key)
        deployed = sluice(cli, "flow", "deploy", *(str(p) for p in sorted(tmp_path.glob("*.yaml"))))
        assert deployed.returncode == 0, deployed.stderr

        browser.get(console)
        wait(ec.presence_of_element_located((By.NAME, "key"))).send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(ec.presence_of_element_located((By.ID, "run-rows")))

        started = {}
        for name in ("hello", "broken", "expense"):
            triggered = sluice(cli, "trigger", name)
            assert triggered.returncode == 0, triggered.stderr
            started[name] = triggered.stdout.strip()
        for name, status in (("hello", "SUCCEEDED"), ("broken", "FAILED"), ("expense", "PAUSED")):
            wait(ec.text_to_be_present_in_element(row(started[name]), status))
        shot("runs")

        browser.find_element(*row(started["broken"])).find_element(By.TAG_NAME, "a").click()
        wait(ec.presence_of_element_located((By.CLASS_NAME, "waterfall")))
        page = browser.find_element(By.TAG_NAME, "main").text
        assert "FAILED" in page
        assert "ZeroDivisionError: division by zero" in page
        shot("failed-run")

        shown = sluice(cli, "runs", "show", started["expense"])
        assert shown.returncode == 0, shown.stderr
        found = re.search(r"(http://\S+/resume/\S+)", shown.stdout)
        assert found is not None, shown.stdout
        browser.get(found[1])
        wait(ec.presence_of_element_located((By.NAME, "field.amount"))).send_keys("42")
        assert "Approve the team lunch?" in browser.find_element(By.TAG_NAME, "body").text
        shot("approval")
        browser.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
        wait(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "the run continues"))

        browser.get(f"{console}/runs")
        wait(ec.text_to_be_present_in_element(row(started["expense"]), "SUCCEEDED"))
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, "".join(printed.seen)
