"""esdblocal's stream browser at desktop and phone sizes, in a real headless Chromium.

Against a real esdblocal with its system projections running (as ``make run`` starts it),
with stream names as the API writes them (a UUID after the category) and long type names:

- tables use the screen (1366x900), and nothing is wider than the phone (390x844:
  ``scrollWidth`` against the viewport);
- stream and type names are one line, cut with an ellipsis, the full name in their title;
- ``$all`` hides system events (a toggle, on by default) and shows them when asked;
- every link on every page leads somewhere that answers: a page of the browser that shows no
  error, or (outside the browser) a 200;
- no console error.

Screenshots of each page at each size go to ``artifacts/esdblocal-browser/`` (not committed).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from esdblocal import EmbeddedServer
from tests.esdblocal.test_browser import (  # noqa: F401  (the Chromium fixture)
    ARTIFACTS,
    browser,
    severe_console_errors,
    wait_for,
)

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
TYPE = "InventoryItemQuantityAdjustedByStocktake"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    # The default projections (System, started): $ce-, $et-, $bc- and $streams exist.
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("esdb-layout"), http_port=0) as server:
        yield server


@pytest.fixture(scope="module")
def streams(node: EmbeddedServer) -> list[str]:
    names = [f"inventoryitem-{uuid4()}" for _ in range(3)]
    correlation = str(uuid4())
    with EventStoreDBClient(node.uri) as client:
        # More than a page of $all without system events, written first.
        client.append_to_stream(
            f"inventoryitem-{uuid4()}",
            current_version=StreamState.ANY,
            events=[NewEvent(type="InventoryItemCreated", data=b"{}") for _ in range(20)],
        )
        for name in names:
            events = [
                NewEvent(
                    type="InventoryItemCreated" if i == 0 else TYPE,
                    data=json.dumps({"sku": f"SKU-{i}", "quantity": i}).encode(),
                    metadata=json.dumps({"$correlationId": correlation}).encode(),
                )
                for i in range(4)
            ]
            client.append_to_stream(name, current_version=StreamState.ANY, events=events)
        client.set_stream_metadata(names[0], metadata={"$maxCount": 1000})
        # The system projections' links are what crowd $all: wait until they are written.
        deadline = time.monotonic() + 30
        while True:
            try:
                if len(client.get_stream(f"$bc-{correlation}", resolve_links=False)) == 12:
                    break
            except Exception:  # not there yet
                pass
            assert time.monotonic() < deadline, "the system projections never caught up"
            time.sleep(0.05)
    return names


def show(driver: WebDriver, url: str, text: str) -> None:
    driver.get(url)
    wait_for(driver, "#main", text)
    time.sleep(0.3)  # late fills (neighbours, the metadata link) come in


def check_fits(driver: WebDriver, size: str) -> None:
    width = driver.execute_script("return document.documentElement.scrollWidth")
    viewport = driver.execute_script("return window.innerWidth")
    assert width <= viewport, f"{driver.current_url} is {width} px wide on a {viewport} px {size}"


def check_names(driver: WebDriver) -> None:
    """Every name on one line, its full text in its title."""
    names = driver.execute_script(
        """return [...document.querySelectorAll('#main .name')].map(a => ({
             text: a.textContent, title: a.title, white: getComputedStyle(a).whiteSpace,
             height: a.getBoundingClientRect().height,
             font: parseFloat(getComputedStyle(a).fontSize)}))"""
    )
    assert names, driver.current_url
    for name in names:
        assert name["white"] == "nowrap", name
        assert name["title"] == name["text"], name
        assert name["height"] < 2 * name["font"], name  # one line


def types_shown(driver: WebDriver) -> list[str]:
    """The Type column, read in one go (the page re-renders as it fills)."""
    types: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#events td:nth-child(2)')].map(td => td.textContent)"
    )
    return types


def checked(driver: WebDriver) -> bool:
    value: bool = driver.execute_script(
        "const box = document.getElementById('hide-system'); return Boolean(box && box.checked)"
    )
    return value


def links_of(driver: WebDriver) -> list[str]:
    hrefs: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('a[href]')].map(a => a.href)"
    )
    return hrefs


def test_pages_at_desktop_and_phone_sizes(
    browser: WebDriver,  # noqa: F811
    node: EmbeddedServer,
    streams: list[str],
) -> None:
    web = f"{node.http_url}/web/index.html"
    first = streams[0]
    pages = {
        "home": (f"{web}#/", first),
        "all": (f"{web}#/streams/%24all", first),
        "stream": (f"{web}#/streams/{first}", f"3@{first}"),
        "event": (f"{web}#/streams/{first}/1", '"quantity": 1'),
        "metadata": (f"{web}#/streams/{first}/metadata", "$maxCount"),
        "category": (f"{web}#/streams/%24ce-inventoryitem", f"3@{streams[2]}"),
        "type": (f"{web}#/type/{TYPE}", f"3@{streams[2]}"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        for size, (width, height) in SIZES.items():
            browser.set_window_size(width, height)
            for label, (url, text) in pages.items():
                show(browser, url, text)
                check_fits(browser, size)
                check_names(browser)
                browser.save_screenshot(str(ARTIFACTS / f"{size}-{label}.png"))
            if size == "desktop":
                show(browser, pages["stream"][0], pages["stream"][1])
                table = browser.execute_script(
                    "return document.getElementById('events').getBoundingClientRect().width"
                )
                assert table >= width - 80, f"the table is {table} px on a {width} px screen"
        assert severe_console_errors(browser) == []
    finally:
        browser.set_window_size(1200, 900)


def test_all_hides_system_events_until_asked(
    browser: WebDriver,  # noqa: F811
    node: EmbeddedServer,
    streams: list[str],
) -> None:
    web = f"{node.http_url}/web/index.html"
    show(browser, f"{web}#/streams/%24all", streams[0])
    assert checked(browser)
    types = types_shown(browser)
    assert types and not [t for t in types if t.startswith("$")], types
    # Older pages keep the filter.
    browser.find_element(By.CSS_SELECTOR, '[data-rel="next"]').click()
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: "/filtered/" in d.current_url and types_shown(d))
    assert checked(browser)
    browser.find_element(By.ID, "hide-system").click()
    wait.until(lambda d: any(t.startswith("$") for t in types_shown(d)))
    assert not checked(browser)
    assert browser.current_url.endswith("#/streams/%24all")
    browser.find_element(By.ID, "hide-system").click()  # as it was, for the other tests
    wait.until(lambda d: checked(d) and not any(t.startswith("$") for t in types_shown(d)))
    assert severe_console_errors(browser) == []


def test_every_link_on_every_page_leads_somewhere(
    browser: WebDriver,  # noqa: F811
    node: EmbeddedServer,
    streams: list[str],
) -> None:
    web = f"{node.http_url}/web/index.html"
    first = streams[0]
    starts = [
        (f"{web}#/", first),
        (f"{web}#/streams/%24all", first),
        (f"{web}#/streams/{first}", f"3@{first}"),
        (f"{web}#/streams/{first}/2", '"quantity": 2'),
        (f"{web}#/category/inventoryitem", first),
        (f"{web}#/streams/%24ce-inventoryitem", f"3@{streams[2]}"),
    ]
    targets: dict[str, str] = {}
    for url, text in starts:
        show(browser, url, text)
        for href in links_of(browser):
            targets.setdefault(href, url)
    assert len(targets) > 30
    for href, found_on in sorted(targets.items()):
        if "/web/index.html#" not in href:
            with urllib.request.urlopen(href, timeout=30) as reply:
                assert reply.status == 200, (href, found_on)
            continue
        browser.get(href)
        WebDriverWait(browser, 30).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "#main h1")
                and "Looking for" not in d.find_element(By.ID, "main").text
                and "Loading" not in d.find_element(By.ID, "status").text
            )
        )
        errors = browser.find_elements(By.CSS_SELECTOR, "#main .error")
        assert not errors, (href, found_on, [e.text for e in errors])
    assert severe_console_errors(browser) == []
