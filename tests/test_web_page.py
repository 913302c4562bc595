"""The dashboard page in a real browser: Debian's Chromium driven by Selenium, headless.

It logs in with the token link, shows the locations, shows a new file's activity without a
reload and works at phone width. The screenshot goes to docs/screenshots/ with
``FILESYNC_SCREENSHOTS=1`` (as the GUI tests' do).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.helpers import tree, wait_until, write_file
from tests.web_fixtures import Dashboard

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium (its own profile, nothing downloaded or synced)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    log = tmp_path / "chromedriver.log"
    driver = webdriver.Chrome(
        options=options, service=Service(str(CHROMEDRIVER), log_output=str(log))
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = DOCS_SCREENSHOTS if os.environ.get("FILESYNC_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def login(driver: WebDriver, dashboard: Dashboard) -> None:
    driver.get(f"{dashboard.server.url}?token={dashboard.token}")
    wait_until(
        lambda: driver.execute_script("return document.body.dataset.ready") == "1",
        message="the page to load",
    )
    assert "token" not in driver.current_url


def test_the_page_logs_in_shows_locations_and_live_activity(
    dashboard: Dashboard, browser: WebDriver, screenshots: Path
) -> None:
    browser.get(dashboard.server.url)
    assert "filesync dashboard" in browser.page_source  # not logged in: only how to log in
    login(browser, dashboard)
    wait_until(lambda: len(texts(browser, "#locations .location")) == 4, message="4 locations")
    names = " ".join(texts(browser, "#locations .spec"))
    assert str(dashboard.a) in names
    assert ":***@" in names
    assert set(texts(browser, "#locations .badge")) == {"synced"}
    assert "hello.txt" in " ".join(texts(browser, "#activity li"))

    write_file(dashboard.a / "brand-new.txt", "new")
    wait_until(
        lambda: "brand-new.txt" in " ".join(texts(browser, "#activity .path")),
        message="the new file's activity, without a reload",
    )
    wait_until(lambda: "brand-new.txt" in tree(dashboard.b), message="the sync")
    wait_until(
        lambda: browser.find_element(By.ID, "summary").text.startswith("Up to date"),
        message="the summary to say up to date",
    )
    browser.save_screenshot(str(screenshots / "dashboard.png"))

    browser.find_element(By.ID, "pause").click()
    wait_until(lambda: dashboard.engine.status().paused, message="paused from the page")
    wait_until(lambda: set(texts(browser, "#locations .badge")) == {"paused"}, message="badges")
    browser.find_element(By.ID, "pause").click()
    wait_until(lambda: not dashboard.engine.status().paused, message="resumed from the page")


def test_the_page_fits_a_phone(dashboard: Dashboard, browser: WebDriver, screenshots: Path) -> None:
    browser.set_window_size(390, 844)
    login(browser, dashboard)
    wait_until(lambda: len(texts(browser, "#locations .location")) == 4, message="4 locations")
    overflow = "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert browser.execute_script(overflow) <= 0
    browser.save_screenshot(str(screenshots / "dashboard-phone.png"))
    for view in ("trash", "conflicts"):
        browser.find_element(By.CSS_SELECTOR, f'nav button[data-view="{view}"]').click()
        wait_until(lambda v=view: browser.find_element(By.ID, v).is_displayed(), message=view)
        assert browser.execute_script(overflow) <= 0, view


def test_a_location_is_added_and_removed_from_the_page(
    dashboard: Dashboard, browser: WebDriver, tmp_path: Path
) -> None:
    login(browser, dashboard)
    browser.find_element(By.CSS_SELECTOR, "#add summary").click()
    path = browser.find_element(By.NAME, "path")
    path.send_keys(str(tmp_path / "missing"))
    browser.find_element(By.CSS_SELECTOR, "#add-form button[type=submit]").click()
    wait_until(
        lambda: "does not exist" in " ".join(texts(browser, ".field-error")),
        message="the field's error",
    )
    c = tmp_path / "c"
    c.mkdir()
    path.clear()
    path.send_keys(str(c))
    browser.find_element(By.CSS_SELECTOR, "#add-form button[type=submit]").click()
    wait_until(lambda: tree(c).get("hello.txt") == b"hello", message="the new location synced")
    wait_until(lambda: len(texts(browser, "#locations .location")) == 5, message="5 locations")


def test_a_deleted_file_is_restored_from_the_trash_view(
    dashboard: Dashboard, browser: WebDriver, screenshots: Path
) -> None:
    login(browser, dashboard)
    wait_until(lambda: tree(dashboard.b).get("hello.txt") == b"hello", message="synced")
    (dashboard.b / "hello.txt").unlink()  # a's own version goes to a's trash
    wait_until(lambda: "hello.txt" not in tree(dashboard.a), message="the delete synced")

    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="trash"]').click()
    row = '#trash-list tr[data-path="hello.txt"]'
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, row), message="the trash row")
    assert "deleted" in browser.find_element(By.CSS_SELECTOR, row).text
    browser.save_screenshot(str(screenshots / "dashboard-trash.png"))
    browser.find_element(By.CSS_SELECTOR, f"{row} button.restore").click()
    wait_until(
        lambda: (
            tree(dashboard.a).get("hello.txt") == b"hello"
            and tree(dashboard.b).get("hello.txt") == b"hello"
            and tree(dashboard.ftp.root).get("hello.txt") == b"hello"
        ),
        message="hello.txt restored in every location",
    )
    wait_until(
        lambda: "Restored hello.txt" in browser.find_element(By.ID, "message").text,
        message="the page to say so",
    )


def test_a_conflict_is_resolved_from_the_conflicts_view(
    dashboard: Dashboard, browser: WebDriver, screenshots: Path
) -> None:
    import time

    login(browser, dashboard)
    wait_until(lambda: tree(dashboard.b).get("hello.txt") == b"hello", message="synced")
    dashboard.engine.pause()
    now = time.time()
    write_file(dashboard.b / "hello.txt", "b's edit", mtime=now - 60)
    write_file(dashboard.a / "hello.txt", "a's edit", mtime=now)
    dashboard.engine.resume()
    wait_until(lambda: any("conflict" in p for p in tree(dashboard.b)), message="the conflict copy")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="conflicts"]').click()
    card = "#conflict-list .conflict"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, card), message="the conflict card")
    text = browser.find_element(By.CSS_SELECTOR, card).text
    assert "Current version" in text and "Conflict copy" in text
    assert "8 bytes" in text
    browser.save_screenshot(str(screenshots / "dashboard-conflicts.png"))
    browser.find_element(By.CSS_SELECTOR, f"{card} button.keep-copy").click()
    wait_until(
        lambda: tree(dashboard.a) == tree(dashboard.b) == {"hello.txt": b"b's edit"},
        message=lambda: f"the copy kept: {tree(dashboard.a)} {tree(dashboard.b)}",
    )
    wait_until(
        lambda: "No conflicts" in browser.find_element(By.ID, "conflict-list").text,
        message="the list to empty",
    )
