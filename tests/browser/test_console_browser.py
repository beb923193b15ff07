"""The console in a real headless Chromium: sign in with the project key, watch a run
appear on the runs page without a reload, open it and read its steps and error.

Set SLUICE_SCREENSHOTS=DIR to keep screenshots (console-*.png) on a phone and a wide window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import PHONE, WIDE, act
from tests.flows.helpers import code
from tests.flows.stack import ADMIN, running_stack

FLOW: dict[str, Any] = {
    "name": "orders",
    "steps": [
        code("price", "def run(input, ctx):\n    return {'total': 3 * 7}"),
        {
            "id": "each",
            "type": "loop",
            "items": "{{ [1, 2, 3] }}",
            "steps": [code("line", "def run(input, ctx):\n    return input", input="{{ item }}")],
        },
        code("charge", "def run(input, ctx):\n    raise RuntimeError('card declined')"),
    ],
}
APPROVAL: dict[str, Any] = {
    "name": "expense",
    "steps": [{"id": "approve", "type": "wait_for_webhook"}],
}


async def test_a_run_appears_live_and_its_page_shows_the_steps(
    database_url: str, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition: Any) -> Any:
        return WebDriverWait(browser, 20).until(condition)

    def shot(name: str, size: tuple[int, int]) -> None:
        browser.set_window_size(*size)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(size[0], min(max(int(height), size[1]), 4000))
        browser.save_screenshot(str(shots / f"console-{name}.png"))
        browser.set_window_size(*WIDE)

    async with running_stack(database_url) as stack:
        deployed = await stack.deploy(FLOW)
        waiting = await stack.deploy(APPROVAL)

        def sign_in() -> None:
            browser.get(f"{stack.base_url}/")
            wait(ec.presence_of_element_located((By.NAME, "key")))
            shot("sign-in-phone", PHONE)
            browser.find_element(By.NAME, "key").send_keys(stack.api_key)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait(ec.presence_of_element_located((By.ID, "run-rows")))

        await act(sign_in)
        assert "No runs." in await act(lambda: browser.find_element(By.ID, "run-rows").text)

        run_id = (await stack.trigger(deployed["id"], {"order": 42})).json()["run_id"]
        row = (By.CSS_SELECTOR, f'tr[data-run="{run_id}"]')
        await act(lambda: wait(ec.presence_of_element_located(row)))
        await stack.wait_for_status(run_id)
        paused = (await stack.trigger(waiting["id"])).json()["run_id"]
        await stack.wait_for_status(paused, {"PAUSED"})
        await act(
            lambda: wait(
                ec.text_to_be_present_in_element(
                    (By.CSS_SELECTOR, f'tr[data-run="{run_id}"]'), "FAILED"
                )
            ),
            lambda: wait(
                ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-run="{paused}"]'))
            ),
            lambda: shot("runs-wide", WIDE),
            lambda: shot("runs-phone", PHONE),
        )

        def open_run() -> str:
            browser.find_element(By.CSS_SELECTOR, f'tr[data-run="{run_id}"] a').click()
            wait(ec.presence_of_element_located((By.CLASS_NAME, "waterfall")))
            shot("run-wide", WIDE)
            shot("run-phone", PHONE)
            text: str = browser.find_element(By.TAG_NAME, "main").text
            return text

        page = await act(open_run)
        assert "FAILED" in page
        assert "card declined" in page
        for key in ("price", "each", "each[0].line", "each[2].line", "charge"):
            assert key in page

        def other_pages() -> None:
            for path, name in (("/console/flows/orders", "flow"), ("/console/waiting", "waiting")):
                browser.get(f"{stack.base_url}{path}")
                wait(ec.presence_of_element_located((By.TAG_NAME, "h1")))
                shot(f"{name}-wide", WIDE)
                shot(f"{name}-phone", PHONE)

        await act(other_pages)
        assert "approve" in await act(lambda: browser.find_element(By.TAG_NAME, "main").text)

        def as_admin() -> str:
            browser.find_element(By.CSS_SELECTOR, "form[action='/console/sign-out'] button").click()
            wait(ec.presence_of_element_located((By.NAME, "key")))
            browser.find_element(By.NAME, "key").send_keys(ADMIN)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait(ec.presence_of_element_located((By.ID, "run-rows")))
            browser.get(f"{stack.base_url}/console/health")
            wait(ec.presence_of_element_located((By.CLASS_NAME, "tiles")))
            shot("health-wide", WIDE)
            shot("health-phone", PHONE)
            text: str = browser.find_element(By.TAG_NAME, "main").text
            return text

        health = await act(as_admin)
        assert "Workers" in health
        assert "WORKER_AND_APP" in health or "WORKER" in health
