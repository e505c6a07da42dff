"""The browser client (/app/, issues 17 and 27) in real headless Chromium, against the real
stack (esdblocal, the projector, gunicorn) with API keys on, at a desktop size (1366x900) and
a phone's (390x844).

A person's whole workflow: the key prompt on 401, an item created, renamed, checked in and
removed, its history and its state as of version 1, deactivated (after saying yes); a car
created with a lower-case VIN, edited (and the events that PUT produced), retired; lists
paged, searched and empty; the exchange log opened to a request and response in full, and
its curl run in a real shell; a 412 between two browser sessions, shown field by field and
resolved by reloading and reapplying; a read-only key offered no write at all. Screenshots go
to artifacts/browser-client/ (gitignored).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
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
READER = "browser-client-reader-key-0123456789"
DESKTOP = (1366, 900)
PHONE = (390, 844)
# The failed requests a person is shown (and the scope probe's 403/415); any other console
# message at level SEVERE is an error of the page.
SHOWN = {"401", "403", "404", "409", "410", "412", "415"}
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
        keys = f"tester:{KEY}:read+write,reader:{READER}:read"
        with running(stack_env(data, uri, port, API_KEYS=keys)):
            yield f"http://127.0.0.1:{port}"
    finally:
        esdb.terminate()
        assert esdb.wait(timeout=20) == 0


def start_browser(base: str, profile: Path, key: str = KEY) -> WebDriver:
    """A fresh Chromium profile on the client; the API answers 401, so it asks for the key."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for option in OPTIONS:
        options.add_argument(option)
    options.add_argument(f"--user-data-dir={profile}")  # under pytest's temporary directory
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.add_argument("--hide-scrollbars")  # innerWidth is the layout width, as on a phone
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.get(f"{base}/app")  # redirects to /app/
    field = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "dialog[open] input"))
    assert "401" in driver.find_element(By.ID, "key-why").text
    field.send_keys(key, Keys.ENTER)
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
        assert console_errors(driver) == []
    finally:
        shot(driver, f"{name}-last")
        driver.quit()


def console_errors(driver: WebDriver) -> list[str]:
    """SEVERE console messages other than a failed request the page shows the person."""
    errors = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        failed = re.search(r"Failed to load resource: .* status of (\d+)", entry["message"])
        if failed is None or failed.group(1) not in SHOWN:
            errors.append(entry["message"])
    return errors


def fits(driver: WebDriver) -> None:
    """Nothing is wider than the window: no sideways scrolling."""
    width, inner = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert width <= inner, (width, inner)


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


def last_exchange(driver: WebDriver, method: str) -> dict[str, str]:
    """The newest exchange of ``method`` in the log, as the person reads it when opened."""
    found: dict[str, str] = driver.execute_script(
        """const li = document.querySelector(`#exchange-log li[data-method="${arguments[0]}"]`);
        const part = (css) => li.querySelector(css).textContent;
        return {summary: part("summary"), request: part("pre.request"),
                response: part("pre.response"), curl: part("pre.curl"),
                status: li.dataset.status};""",
        method,
    )
    return found


def confirm(driver: WebDriver, answer: str) -> None:
    """Answer the page's confirmation dialog ("yes" or "no")."""
    until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#confirm-dialog[open]"))
    press(driver, f"#confirm-{answer}")
    until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#confirm-dialog[open]"))


def shell(command: str, key: str = KEY) -> str:
    """Run a copied curl command in a real shell, with the key in $API_KEY as it expects."""
    done = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "API_KEY": key},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        status: int = response.status
        return status


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


def test_an_item_through_its_life(base: str, browser: WebDriver) -> None:
    d = browser
    go(d, "#/items")
    # Create (by keyboard: Enter submits the form).
    fill(d, "#new-item-name", "Browser widget", submit=True)
    shows(d, "#item-name", "Browser widget")
    # Rename, check in, remove: each a command named in the Content-Type, with If-Match.
    fill(d, "#rename input[name=newName]", "Browser gadget", submit=True)
    shows(d, "#item-name", "Browser gadget")
    # The 202 names the new version's ETag (as a header, or in its body where a PUT's 202
    # leaves the header out): the version the page then reads and will send as If-Match.
    # The page reads a gzip-coded representation (Chromium accepts gzip), whose strong tag
    # is the version's followed by ".gz" (RFC 9110 8.8.3): the part before the "." agrees.
    until(d, lambda d: "the ETag is now" in text(d, "#status"))
    announced = text(d, "#status").rsplit("the ETag is now ", 1)[1].rstrip(".").strip('"')
    assert announced.split(".")[0] == text(d, "#item-etag").strip('"').split(".")[0]
    put = last_exchange(d, "PUT")
    assert put["summary"].startswith("PUT /v1/inventory-items/")
    assert "→ 202 RenameInventoryItemCommand" in put["summary"]
    assert (
        "Content-Type: application/json; domain-model=RenameInventoryItemCommand" in put["request"]
    )
    assert re.search(r'If-Match: "[^"]+"', put["request"])
    assert '"newName": "Browser gadget"' in put["request"]
    assert KEY not in put["request"] and "Authorization: Bearer •" in put["request"]
    assert put["response"].startswith("HTTP/1.1 202 Accepted")
    assert "Commit-Position: " in put["response"] and '"eventsAppended": 1' in put["response"]
    # The read after the write presented its position (read-your-writes).
    position = re.search(r"Commit-Position: (\S+)", put["response"])
    assert (
        position and f"Commit-Position: {position.group(1)}" in last_exchange(d, "GET")["request"]
    )
    # Copy as curl: the same request in a shell, the key left out. Run again, its If-Match is
    # stale now, so the API refuses it: 412, nothing appended twice.
    assert KEY not in put["curl"] and '"Authorization: Bearer $API_KEY"' in put["curl"]
    assert '--data-raw \'{"newName":"Browser gadget"}\'' in put["curl"]
    replayed = shell(put["curl"])
    assert replayed.startswith("HTTP/1.1 412") and '"errorCode":1004' in replayed
    d.execute_script("document.getElementById('exchanges').open = true")
    d.execute_script(
        "document.querySelector('#exchange-log li[data-method=PUT] details').open = true"
    )
    press(d, "#exchange-log li[data-method=PUT] button.copy")
    shows(d, "#exchange-log li[data-method=PUT] .copied", "Copied.")
    shot(d, "exchange-open")
    d.execute_script("document.getElementById('exchanges').open = false")

    fill(d, "#check-in input[name=count]", "5", submit=True)
    shows(d, "#item-count", "5")
    assert text(d, "#status").startswith("Check in 5: 1 event(s) appended")
    # The view is rendered again after the write; the keyboard stays where it was.
    focused = d.switch_to.active_element
    assert focused.get_attribute("name") == "count"
    assert d.execute_script("return document.activeElement.closest('form').id") == "check-in"
    fill(d, "#remove input[name=count]", "2")
    press(d, "#remove button")
    shows(d, "#item-count", "3")
    assert "RemoveItemsFromInventoryCommand" in last_exchange(d, "POST")["summary"]

    # History, read from the event store, with who made each change.
    until(d, lambda d: len(history_types(d)) == 4)
    assert history_types(d) == [
        "InventoryItemCreated",
        "InventoryItemRenamed",
        "ItemsCheckedInToInventory",
        "ItemsRemovedFromInventory",
    ]
    assert {c.text for c in d.find_elements(By.CSS_SELECTOR, "#history td.by")} == {"tester"}
    shot(d, "item-history")

    # View as of version 1: renamed, nothing in stock yet; read-only.
    press(d, "#history tr[data-version='1'] a.as-of")
    until(d, lambda d: d.find_element(By.ID, "as-of"))
    shows(d, "#item-name", "Browser gadget")
    shows(d, "#item-count", "0")
    assert "As of version 1" in text(d, "#as-of")
    assert d.find_elements(By.ID, "rename") == []
    assert text(d, "#status") == ""  # the last write's status belonged to its own page
    shot(d, "item-as-of-1")
    press(d, "#as-of a")
    shows(d, "#item-count", "3")

    # Deactivate cannot be undone: the page asks first. "Cancel" sends nothing.
    deletes = len(d.find_elements(By.CSS_SELECTOR, "#exchange-log li[data-method=DELETE]"))
    press(d, "#deactivate button")
    assert "cannot be undone" in text(d, "#confirm-text")
    shot(d, "confirm-deactivate")
    confirm(d, "no")
    shows(d, "#deactivate .outcome", "Deactivate: not sent.")
    assert len(d.find_elements(By.CSS_SELECTOR, "#exchange-log li[data-method=DELETE]")) == deletes
    # "Deactivate": the item answers 410, its history stays readable.
    press(d, "#deactivate button")
    confirm(d, "yes")
    until(d, lambda d: "410" in text(d, "#item-gone"))
    until(d, lambda d: len(history_types(d)) == 5)
    assert history_types(d)[-1] == "InventoryItemDeactivated"
    assert "DeactivateInventoryItemCommand" in last_exchange(d, "DELETE")["summary"]
    assert (
        answers(d.find_element(By.CSS_SELECTOR, "#item-gone a.error-code").get_attribute("href"))
        == 200
    )

    # The list finds it among the deactivated ones, and says so.
    go(d, "#/items?state=deactivated&query=gadget")
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#items tbody tr")]
    assert rows == ["Browser gadget\ndeactivated"] or rows == ["Browser gadget deactivated"]

    # An unknown item: its 404 is said once, with a way back, and its code links to its page.
    go(d, "#/items/00000000-0000-0000-0000-000000000000")
    assert text(d, "h1") == "No such item"
    assert text(d, "main").count("404") == 1
    assert d.find_elements(By.ID, "history") == []
    link = d.find_element(By.CSS_SELECTOR, "#item-gone a.error-code")
    assert link.text == "error 1002" and link.get_attribute("href").endswith("/v1/errors/1002")
    assert answers(link.get_attribute("href")) == 200


def test_lists_page_search_and_say_what_to_do_when_empty(base: str, browser: WebDriver) -> None:
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
    # Nothing found: the page says why and how to get back, instead of an empty table.
    go(d, "#/items?query=nothing-is-called-this")
    assert d.find_elements(By.ID, "items") == []
    assert "No items match these filters" in text(d, "#items-empty")
    rendered(d, lambda: press(d, "#items-empty a"))
    assert d.current_url.endswith("#/items")
    go(d, "#/cars?query=nothing-is-called-this")
    assert "No cars match these filters" in text(d, "#cars-empty")
    d.set_window_size(*PHONE)  # a phone: nothing wider than the screen
    try:
        go(d, "#/items?query=Pager")
        shot(d, "items-phone")
        fits(d)
        # The exchange log opened, a request and response in full: still no sideways scroll.
        d.execute_script(
            """document.getElementById("exchanges").open = true;
            document.querySelector("#exchange-log details").open = true;"""
        )
        fits(d)
        d.execute_script("document.getElementById('exchanges').open = false")
    finally:
        d.set_window_size(*DESKTOP)


def test_a_car_edited_shows_the_events_its_put_produced(browser: WebDriver) -> None:
    d = browser
    go(d, "#/cars")
    form = "#create-car"
    fill(d, f"{form} input[name=year]", "2020")
    Select(d.find_element(By.CSS_SELECTOR, f"{form} select[name=make]")).select_by_value("Ford")
    Select(d.find_element(By.CSS_SELECTOR, f"{form} select[name=model]")).select_by_value("F150")
    fill(d, f"{form} input[name=mileage]", "100")
    # Lower case is accepted (the client upper-cases what it sends).
    fill(d, f"{form} input[name=vin]", "1ftfw1e50pfa00042")
    assert d.execute_script(
        f"return document.querySelector('{form} input[name=vin]').validity.valid"
    )
    press(d, f"{form} button[type=submit]")
    shows(d, "#car-title", "2020 Ford F150")
    assert '"vin": "1FTFW1E50PFA00042"' in last_exchange(d, "POST")["request"]

    # Edit: PUT the whole car; the API appends one event per difference.
    Select(d.find_element(By.CSS_SELECTOR, "#edit-car select[name=color]")).select_by_value("red")
    fill(d, "#edit-car input[name=mileage]", "250")
    press(d, "#save-car")
    until(d, lambda d: d.find_element(By.ID, "put-events"))
    assert text(d, "#put-events h2") == "This PUT produced 2 event(s)"
    produced = [li.text.split(" ")[0] for li in d.find_elements(By.CSS_SELECTOR, "#put-events li")]
    assert produced == ["ColorChanged", "MileageChanged"]
    assert "CarRepresentation" in last_exchange(d, "PUT")["summary"]
    until(d, lambda d: len(history_types(d)) == 3)
    shot(d, "car-put-events")

    # As of version 0: the same form, every field visibly not editable.
    press(d, "#history tr[data-version='0'] a.as-of")
    until(d, lambda d: d.find_element(By.ID, "as-of"))
    look = d.execute_script(
        """const f = document.querySelector("#edit-car select[name=color]");
        const s = getComputedStyle(f);
        return {disabled: [...document.querySelectorAll("#edit-car input, #edit-car select")]
                  .every((x) => x.disabled),
                cursor: s.cursor, border: s.borderStyle, bg: s.backgroundColor,
                value: f.value};"""
    )
    assert look["disabled"] and look["cursor"] == "not-allowed" and look["border"] == "dashed"
    assert look["bg"] != "rgb(255, 255, 255)" and look["value"] == "blue"
    assert d.find_elements(By.ID, "save-car") == []
    shot(d, "car-as-of-0")

    # The history reads on a phone: each change a card, nothing off-screen.
    d.set_window_size(*PHONE)
    try:
        press(d, "#as-of a")
        until(d, lambda d: d.find_element(By.ID, "save-car"))
        cards = d.execute_script(
            """return [...document.querySelectorAll("#history tbody tr")].map((tr) => ({
              display: getComputedStyle(tr).display,
              right: Math.max(...[...tr.children].map((c) => c.getBoundingClientRect().right))}))"""
        )
        inner = d.execute_script("return window.innerWidth")
        assert cards and all(c["display"] == "block" and c["right"] <= inner for c in cards)
        by = d.find_element(By.CSS_SELECTOR, "#history tbody tr td.by")
        assert by.is_displayed() and by.text == "tester"
        label = d.execute_script("return getComputedStyle(arguments[0], '::before').content", by)
        assert label == '"By: "'  # each line of a card says what it is
        fits(d)
        d.execute_script("document.getElementById('history').scrollIntoView()")
        shot(d, "car-history-phone")
    finally:
        d.set_window_size(*DESKTOP)

    # The list searches by VIN, and shows each car's state.
    go(d, "#/cars?query=1FTFW1E50PFA00042")
    rows = d.find_elements(By.CSS_SELECTOR, "#cars tbody tr")
    assert len(rows) == 1 and "red" in rows[0].text
    assert text(d, "#cars tbody td.state") == "active"
    press(d, "#cars tbody a")
    shows(d, "#car-title", "2020 Ford F150")

    # Retire: asked first, then 410, history still there; the list says "retired".
    press(d, "#retire button")
    assert "cannot be undone" in text(d, "#confirm-text")
    confirm(d, "yes")
    until(d, lambda d: "410" in text(d, "#car-gone"))
    until(d, lambda d: len(history_types(d)) == 4)
    assert history_types(d)[-1] == "CarDeleted"
    go(d, "#/cars?query=1FTFW1E50PFA00042&state=all")
    assert text(d, "#cars tbody td.state") == "retired"


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
        refused = last_exchange(second, "PUT")
        assert f"If-Match: {stale}" in refused["request"]
        assert refused["status"] == "412" and "→ 412" in refused["summary"]
        assert "1004" in exchanges(second)  # the error code, linked to its page

        # Reload the current state: field by field, theirs against yours, then reapply.
        press(second, "#conflict-reload")
        until(second, lambda d: d.find_element(By.ID, "conflict-diff"))
        name = "#conflict-diff tr[data-field=name]"
        assert text(second, f"{name} td.theirs") == "Renamed in the first window"
        assert text(second, f"{name} td.yours") == "Renamed in the second window"
        assert "diff-both" in second.find_element(By.CSS_SELECTOR, name).get_attribute("class")
        count = "#conflict-diff tr[data-field=currentCount]"
        assert "diff-same" in second.find_element(By.CSS_SELECTOR, count).get_attribute("class")
        shot(second, "conflict-412")
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
        until(second, lambda d: d.find_element(By.ID, "conflict-diff"))
        row = "#conflict-diff tr[data-field={}]"
        assert "diff-theirs" in second.find_element(
            By.CSS_SELECTOR, row.format("color")
        ).get_attribute("class")
        assert text(second, row.format("color") + " td.yours") == "white"
        assert "diff-yours" in second.find_element(
            By.CSS_SELECTOR, row.format("mileage")
        ).get_attribute("class")
        assert text(second, row.format("mileage") + " td.yours") == "500"
        assert '"mileage": 500' in second.execute_script(
            "return document.getElementById('conflict-mine').textContent"
        )
        second.set_window_size(*PHONE)  # the diff reads on a phone too
        try:
            fits(second)
            second.execute_script("document.getElementById('conflict').scrollIntoView()")
            shot(second, "conflict-diff-phone")
        finally:
            second.set_window_size(*DESKTOP)
        second.execute_script("document.getElementById('conflict').scrollIntoView()")
        shot(second, "conflict-diff")
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


def test_a_read_only_key_is_offered_no_write(base: str, browser: WebDriver, tmp_path: Path) -> None:
    item = create_item(base, "Look, do not touch")
    car = create_car(base)
    reader = start_browser(base, tmp_path / "chromium-reader", key=READER)
    try:
        d = reader
        go(d, "#/items")
        until(d, lambda d: d.find_element(By.ID, "read-only"))
        assert "may not write" in text(d, "#read-only")
        assert d.find_elements(By.CSS_SELECTOR, "#create-item, #create-car") == []
        # It learnt so from one probe that cannot append: a 403 before any body is read.
        probe = last_exchange(d, "POST")
        assert probe["status"] == "403" and "WhatMayThisKeyDo" in probe["summary"]
        go(d, f"#/items/{item}")
        shows(d, "#item-name", "Look, do not touch")
        for form in ("rename", "check-in", "remove", "deactivate"):
            assert d.find_elements(By.ID, form) == []
        assert len(history_types(d)) == 1
        go(d, f"#/cars/{car}")
        shows(d, "#car-title", "2021 BMW M5")
        assert d.find_elements(By.CSS_SELECTOR, "#save-car, #retire") == []
        assert d.execute_script(
            "return [...document.querySelectorAll('#edit-car input, #edit-car select')]"
            ".every((x) => x.disabled)"
        )
        go(d, "#/cars")
        assert d.find_elements(By.ID, "create-car") == []
        # The probe was answered once for this key, not on every page (the 401 before the key
        # was entered is its first try), and no other write was sent.
        posts = d.find_elements(By.CSS_SELECTOR, "#exchange-log li[data-method=POST] summary")
        assert all("WhatMayThisKeyDo" in p.get_attribute("textContent") for p in posts)
        assert len(d.find_elements(By.CSS_SELECTOR, "#exchange-log li[data-status='403']")) == 1
        writes = "#exchange-log li:is([data-method=PUT], [data-method=DELETE])"
        assert d.find_elements(By.CSS_SELECTOR, writes) == []
        d.set_window_size(*PHONE)
        try:
            go(d, f"#/cars/{car}")
            fits(d)
            shot(d, "read-only-car-phone")
        finally:
            d.set_window_size(*DESKTOP)
        # The writer's window still offers everything.
        go(browser, f"#/items/{item}")
        until(browser, lambda d: d.find_element(By.ID, "rename"))
    finally:
        close(reader, "reader")
