"""The browser client (/app/, issue 17 point 5) in real headless Chromium, against the real
stack (esdblocal, the projector, gunicorn) with API keys on.

A person's whole workflow: the key prompt on 401, an item created, renamed, checked in and
removed, its history and its state as of version 1, deactivated; a car created, edited (and
the events that PUT produced), retired; lists paged and searched; and a 412 between two
browser sessions editing the same item, resolved by reloading and reapplying. Screenshots go
to artifacts/browser-client/ (gitignored).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.conftest import ROOT, call, free_port, running, stack_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed"),
]

KEY = "browser-client-test-key-0123456789"
ARTIFACTS = ROOT / "artifacts" / "browser-client"
CREATE = "application/json; domain-model=CreateInventoryItemCommand"
OPTIONS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack as `make run` starts it, with one API key (principal ``tester``)."""
    data = tmp_path_factory.mktemp("client")
    esdb = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--port", "0", "--data", str(data / "esdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert esdb.stdout is not None
    uri = esdb.stdout.readline().strip()
    port = free_port()
    try:
        with running(stack_env(data, uri, port, API_KEYS=f"tester:{KEY}:read+write")):
            yield f"http://127.0.0.1:{port}"
    finally:
        esdb.terminate()
        assert esdb.wait(timeout=20) == 0


def start_browser(base: str, profile: Path) -> WebDriver:
    """A fresh Chromium profile on the client; the API answers 401, so it asks for the key."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for option in OPTIONS:
        options.add_argument(option)
    options.add_argument(f"--user-data-dir={profile}")  # under pytest's temporary directory
    options.add_argument("--window-size=1000,1400")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.get(f"{base}/app")  # redirects to /app/
    key = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "dialog[open] input"))
    assert "401" in driver.find_element(By.ID, "key-why").text
    key.send_keys(KEY, Keys.ENTER)
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "main[data-view='/items']"))
    assert driver.current_url == f"{base}/app/#/items"
    assert driver.execute_script("return sessionStorage.length") == 1
    return driver


@pytest.fixture(scope="module")
def browser(base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_browser(base, tmp_path_factory.mktemp("chromium-one"))
    try:
        yield driver
    finally:
        close(driver, "one")


def close(driver: WebDriver, name: str) -> None:
    """Check what the page did as a whole, keep a last screenshot, quit."""
    try:
        # No request left the origin (the Content-Security-Policy allows none either).
        urls = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        origin = driver.current_url.split("/app/")[0]
        assert urls and all(url.startswith(origin) for url in urls), urls
        # No script error: only the failed requests a person is shown (401, 412, 410).
        errors = [
            entry["message"]
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]
        assert errors == []
    finally:
        shot(driver, f"{name}-last")
        driver.quit()


def wait(driver: WebDriver, timeout: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def go(driver: WebDriver, route: str) -> None:
    """Navigate within the page (a hash route) and wait until the view has rendered."""
    driver.execute_script(
        """document.getElementById("main").removeAttribute("data-view");
        if (location.hash === arguments[0]) dispatchEvent(new HashChangeEvent("hashchange"));
        else location.hash = arguments[0];""",
        route,
    )
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "main[data-view]"))


def rendered(driver: WebDriver, action: Callable[[], object]) -> None:
    """Do something that navigates (a search, a page link) and wait for the new view."""
    driver.execute_script('document.getElementById("main").removeAttribute("data-view")')
    action()
    until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "main[data-view]"))


def text(driver: WebDriver, css: str) -> str:
    value: str = driver.find_element(By.CSS_SELECTOR, css).text
    return value


def shows(driver: WebDriver, css: str, expected: str) -> None:
    """Wait until the element's text is ``expected`` (it is re-rendered after each write)."""
    try:
        wait(driver).until(lambda d: text(d, css) == expected)
    except Exception:
        shot(driver, "failed")
        raise


def until(driver: WebDriver, condition: Callable[[WebDriver], Any]) -> Any:
    try:
        return wait(driver).until(condition)
    except Exception:
        shot(driver, "failed")
        raise


def fill(driver: WebDriver, css: str, value: str, submit: bool = False) -> None:
    field = driver.find_element(By.CSS_SELECTOR, css)
    field.clear()
    field.send_keys(value, *([Keys.ENTER] if submit else []))


def press(driver: WebDriver, css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, css).click()


def history_types(driver: WebDriver) -> list[str]:
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#history td.type")]


def exchanges(driver: WebDriver) -> str:
    content: str = driver.execute_script(
        "return document.getElementById('exchange-log').textContent"
    )
    return content


def item_id(driver: WebDriver) -> str:
    return str(driver.current_url.rsplit("/", 1)[1].split("?")[0])


def create_item(base: str, name: str) -> str:
    """An item created behind the browser's back, then read with the write's Commit-Position,
    so the projector has it before the browser asks (read-your-writes, as the page does)."""
    port = int(base.rsplit(":", 1)[1])
    bearer = f"Bearer {KEY}"
    status, headers, _ = call(
        port,
        "POST",
        "/v1/inventory-items",
        {"name": name},
        Content_Type=CREATE,
        Authorization=bearer,
    )
    assert status == 202
    path = "/v1/inventory-items/" + headers["location"].rsplit("/", 1)[1]
    status, _, _ = call(
        port, "GET", path, Authorization=bearer, Commit_Position=headers["commit-position"]
    )
    assert status == 200
    return path.rsplit("/", 1)[1]


def create_car(base: str) -> str:
    port = int(base.rsplit(":", 1)[1])
    bearer = f"Bearer {KEY}"
    car = {
        "year": 2021,
        "make": "BMW",
        "model": "M5",
        "color": "blue",
        "mileage": 10,
        "vin": "WBA3A5C51DF000777",
        "condition": "good",
        "owner": "7f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a",
    }
    status, headers, _ = call(
        port, "POST", "/v1/cars", car, Content_Type="application/json", Authorization=bearer
    )
    assert status == 202
    path = "/v1/cars/" + headers["location"].rsplit("/", 1)[1]
    status, _, _ = call(
        port, "GET", path, Authorization=bearer, Commit_Position=headers["commit-position"]
    )
    assert status == 200
    return path.rsplit("/", 1)[1]


def test_an_item_through_its_life(browser: WebDriver) -> None:
    d = browser
    go(d, "#/items")
    # Create (by keyboard: Enter submits the form).
    fill(d, "#new-item-name", "Browser widget", submit=True)
    shows(d, "#item-name", "Browser widget")
    # Rename, check in, remove: each a command named in the Content-Type, with If-Match.
    fill(d, "#rename input[name=newName]", "Browser gadget", submit=True)
    shows(d, "#item-name", "Browser gadget")
    log = exchanges(d)
    assert "PUT" in log and "domain-model=RenameInventoryItemCommand" in log
    assert "If-Match:" in log
    assert "Commit-Position sent:" in log  # the read after the write presented its position
    fill(d, "#check-in input[name=count]", "5", submit=True)
    shows(d, "#item-count", "5")
    # The view is rendered again after the write; the keyboard stays where it was.
    focused = d.switch_to.active_element
    assert focused.get_attribute("name") == "count"
    assert d.execute_script("return document.activeElement.closest('form').id") == "check-in"
    fill(d, "#remove input[name=count]", "2")
    press(d, "#remove button")
    shows(d, "#item-count", "3")
    assert "domain-model=RemoveItemsFromInventoryCommand" in exchanges(d)

    # History, read from the event store, with who made each change.
    until(d, lambda d: len(history_types(d)) == 4)
    assert history_types(d) == [
        "InventoryItemCreated",
        "InventoryItemRenamed",
        "ItemsCheckedInToInventory",
        "ItemsRemovedFromInventory",
    ]
    assert {c.text for c in d.find_elements(By.CSS_SELECTOR, "#history tbody td:nth-child(5)")} == {
        "tester"
    }
    shot(d, "item-history")

    # View as of version 1: renamed, nothing in stock yet; read-only.
    press(d, "#history tr[data-version='1'] a.as-of")
    until(d, lambda d: d.find_element(By.ID, "as-of"))
    shows(d, "#item-name", "Browser gadget")
    shows(d, "#item-count", "0")
    assert "As of version 1" in text(d, "#as-of")
    assert d.find_elements(By.ID, "rename") == []
    shot(d, "item-as-of-1")
    press(d, "#as-of a")
    shows(d, "#item-count", "3")

    # Deactivate: the item answers 410, its history stays readable.
    press(d, "#deactivate button")
    until(d, lambda d: "410" in text(d, "#item-gone"))
    until(d, lambda d: len(history_types(d)) == 5)
    assert history_types(d)[-1] == "InventoryItemDeactivated"
    assert "domain-model=DeactivateInventoryItemCommand" in exchanges(d)

    # The list finds it among the deactivated ones.
    go(d, "#/items?state=deactivated&query=gadget")
    names = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#items tbody a")]
    assert names == ["Browser gadget"]


def test_lists_page_and_search(base: str, browser: WebDriver) -> None:
    d = browser
    for n in range(12):
        create_item(base, f"Pager {n:02}")
    go(d, "#/items")
    rendered(d, lambda: fill(d, ".filters input[name=query]", "Pager", submit=True))
    assert d.current_url.endswith("#/items?query=Pager")
    assert text(d, ".pager span") == "1\u201310 of 12"
    rendered(d, lambda: press(d, ".pager a[rel=next]"))
    assert text(d, ".pager span") == "11\u201312 of 12"
    assert [a.text for a in d.find_elements(By.CSS_SELECTOR, "#items tbody a")] == [
        "Pager 10",
        "Pager 11",
    ]
    d.set_window_size(390, 844)  # a phone: nothing wider than the screen but the tables
    shot(d, "items-phone")
    width = d.execute_script("return document.documentElement.scrollWidth")
    assert width <= d.execute_script("return window.innerWidth")
    d.set_window_size(1000, 1400)


def test_a_car_edited_shows_the_events_its_put_produced(browser: WebDriver) -> None:
    d = browser
    go(d, "#/cars")
    form = "#create-car"
    fill(d, f"{form} input[name=year]", "2020")
    Select(d.find_element(By.CSS_SELECTOR, f"{form} select[name=make]")).select_by_value("Ford")
    Select(d.find_element(By.CSS_SELECTOR, f"{form} select[name=model]")).select_by_value("F150")
    fill(d, f"{form} input[name=mileage]", "100")
    fill(d, f"{form} input[name=vin]", "1FTFW1E50PFA00042")
    press(d, f"{form} button[type=submit]")
    shows(d, "#car-title", "2020 Ford F150")

    # Edit: PUT the whole car; the API appends one event per difference.
    Select(d.find_element(By.CSS_SELECTOR, "#edit-car select[name=color]")).select_by_value("red")
    fill(d, "#edit-car input[name=mileage]", "250")
    press(d, "#save-car")
    until(d, lambda d: d.find_element(By.ID, "put-events"))
    assert text(d, "#put-events h2") == "This PUT produced 2 event(s)"
    produced = [li.text.split(" ")[0] for li in d.find_elements(By.CSS_SELECTOR, "#put-events li")]
    assert produced == ["ColorChanged", "MileageChanged"]
    assert "domain-model=CarRepresentation" in exchanges(d)
    until(d, lambda d: len(history_types(d)) == 3)
    shot(d, "car-put-events")

    # The list searches by VIN.
    go(d, "#/cars?query=1FTFW1E50PFA00042")
    rows = d.find_elements(By.CSS_SELECTOR, "#cars tbody tr")
    assert len(rows) == 1 and "red" in rows[0].text
    press(d, "#cars tbody a")
    shows(d, "#car-title", "2020 Ford F150")

    # Retire: 410, history still there.
    press(d, "#retire button")
    until(d, lambda d: "410" in text(d, "#car-gone"))
    until(d, lambda d: len(history_types(d)) == 4)
    assert history_types(d)[-1] == "CarDeleted"


def test_a_conflicting_edit_from_another_window_is_a_412_to_resolve(
    base: str, browser: WebDriver, tmp_path: Path
) -> None:
    first = browser
    route = f"#/items/{create_item(base, 'Shared')}"
    go(first, route)
    shows(first, "#item-name", "Shared")
    second = start_browser(base, tmp_path / "chromium-two")
    try:
        go(second, route)
        shows(second, "#item-name", "Shared")
        stale = text(second, "#item-etag")
        assert stale == text(first, "#item-etag")

        fill(first, "#rename input[name=newName]", "Renamed in the first window", submit=True)
        shows(first, "#item-name", "Renamed in the first window")

        # The second window still holds the old ETag: its rename is refused with a 412.
        fill(second, "#rename input[name=newName]", "Renamed in the second window", submit=True)
        until(second, lambda d: d.find_element(By.ID, "conflict"))
        assert "412" in text(second, "#conflict h3")
        assert f"If-Match: {stale}" in exchanges(second)
        assert "→ 412" in exchanges(second)
        shot(second, "conflict-412")

        # Reload the current state, then reapply the change on top of it.
        press(second, "#conflict-reload")
        until(second, lambda d: "Renamed in the first window" in text(d, "#conflict-current"))
        assert "Renamed in the second window" in text(second, "#conflict-mine")
        press(second, "#conflict-reapply")
        shows(second, "#item-name", "Renamed in the second window")
        until(second, lambda d: len(history_types(d)) == 3)
        assert history_types(second)[1:] == ["InventoryItemRenamed", "InventoryItemRenamed"]
        assert text(second, "#item-etag") != stale
        shot(second, "conflict-resolved")

        # A car: the second window's reapplied PUT keeps the first window's change and adds
        # only its own, so that PUT produces one event.
        car = f"#/cars/{create_car(base)}"
        go(first, car)
        go(second, car)
        shows(second, "#car-title", "2021 BMW M5")
        shows(first, "#car-title", "2021 BMW M5")
        color = "#edit-car select[name=color]"
        Select(first.find_element(By.CSS_SELECTOR, color)).select_by_value("white")
        press(first, "#save-car")
        until(first, lambda d: "ColorChanged" in text(d, "#put-events"))
        fill(second, "#edit-car input[name=mileage]", "500", submit=True)
        until(second, lambda d: d.find_element(By.ID, "conflict"))
        press(second, "#conflict-reload")
        until(second, lambda d: '"white"' in text(d, "#conflict-mine"))
        assert '"mileage": 500' in text(second, "#conflict-mine")
        press(second, "#conflict-reapply")
        until(second, lambda d: d.find_element(By.ID, "put-events"))
        assert [
            li.text.split(" ")[0] for li in second.find_elements(By.CSS_SELECTOR, "#put-events li")
        ] == ["MileageChanged"]
        assert (
            Select(second.find_element(By.CSS_SELECTOR, color)).first_selected_option.text
            == "white"
        )
    finally:
        close(second, "two")
