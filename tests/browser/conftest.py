"""A headless Chromium for the browser tests, through Selenium and Debian's chromium-driver;
the tests are skipped, with the reason, where either is missing."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chrome WebDriver (1280x900; `browser.set_window_size` changes it)."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (the test extra has it)"
    )
    binary = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no chromium or chromedriver (Debian: apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_window_size(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()


PHONE, WIDE = (390, 844), (1280, 900)
"""The window sizes pages are looked at in: a phone's and a desktop's."""


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: SLUICE_SCREENSHOTS (to keep them), else the test's folder."""
    folder = Path(os.environ.get("SLUICE_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def act(*calls: Callable[..., Any]) -> Any:
    """`calls` in order in a thread (Selenium blocks, while the app serves in this loop);
    the last one's result."""
    return await asyncio.to_thread(lambda: [call() for call in calls][-1])
