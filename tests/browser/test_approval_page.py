"""An approval page in a real headless Chromium: a paused run's resume URL opened, its form
filled, Approve clicked; the run then succeeds with the decision as the step's output.

Set SLUICE_SCREENSHOTS=DIR to keep screenshots of the page on a phone and a wide window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import PHONE, WIDE, act
from tests.flows.helpers import started_run, step
from tests.flows.stack import running_stack

FLOW: dict[str, Any] = {
    "name": "expense",
    "steps": [
        {
            "id": "approve",
            "type": "wait_for_webhook",
            "title": "Approve Ada's travel expenses?",
            "description": "Train to Lyon and two nights at the hotel, for the customer visit.",
            "form": [
                {"name": "amount", "type": "number", "label": "Amount (EUR)", "required": True},
                {"name": "cost_centre", "type": "select", "options": ["sales", "support"]},
                {"name": "receipts_checked", "type": "boolean", "label": "Receipts checked"},
            ],
        },
    ],
}


async def test_a_person_approves_a_paused_run_from_its_page(
    database_url: str, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    async with running_stack(database_url) as stack:
        deployed = await stack.deploy(FLOW)
        run_id = await started_run(stack, deployed["id"])
        paused = await stack.wait_for_status(run_id, {"PAUSED"})
        url = paused["waits"][0]["resume_url"]
        for name, size in (("phone", PHONE), ("wide", WIDE)):
            await act(
                lambda size=size: browser.set_window_size(*size),
                lambda: browser.get(url),
                lambda name=name: browser.save_screenshot(str(shots / f"approval-{name}.png")),
                lambda: browser.execute_script("window.scrollTo(0, document.body.scrollHeight)"),
                lambda name=name: browser.save_screenshot(str(shots / f"approval-{name}-end.png")),
            )
        assert "Approve Ada's travel expenses?" in await act(lambda: browser.title)
        # The browser refuses an empty required field: nothing is sent.
        await act(lambda: browser.find_element(By.CSS_SELECTOR, "button[value=approve]").click())
        assert (await stack.run(run_id))["status"] == "PAUSED"

        await act(
            lambda: browser.find_element(By.NAME, "field.amount").send_keys("412.50"),
            lambda: Select(browser.find_element(By.NAME, "field.cost_centre")).select_by_value(
                "sales"
            ),
            lambda: browser.find_element(By.NAME, "field.receipts_checked").click(),
            lambda: browser.find_element(By.NAME, "comment").send_keys("Thanks for the receipts."),
            lambda: browser.find_element(By.NAME, "by").send_keys("Grace"),
            lambda: browser.find_element(By.CSS_SELECTOR, "button[value=approve]").click(),
        )
        # The click navigates: wait for the answer's page rather than read the one leaving.
        await act(
            lambda: WebDriverWait(browser, 20).until(
                ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "the run continues")
            )
        )
        heading = await act(lambda: browser.find_element(By.TAG_NAME, "h1").text)
        assert heading == "Approve — the run continues"
        await act(lambda: browser.save_screenshot(str(shots / "approval-done.png")))

        run = await stack.wait_for_status(run_id)
        assert run["status"] == "SUCCEEDED", run["error"]
        output = step(run, "approve")["output"]
        assert (output["choice"], output["by"], output["comment"]) == (
            "approve",
            "Grace",
            "Thanks for the receipts.",
        )
        assert output["fields"] == {
            "amount": 412.5,
            "cost_centre": "sales",
            "receipts_checked": True,
        }
        await act(
            lambda: browser.set_window_size(*PHONE),
            lambda: browser.get(url),
            lambda: browser.save_screenshot(str(shots / "approval-decided.png")),
        )
        assert "Already decided" in await act(lambda: browser.page_source)
