"""esdblocal's own stream browser in a real headless Chromium, against a real esdblocal.

Events are written with esdbclient; the browser opens the stream list, a stream, an older
page, an event, follows a ``$ce-`` link to its original and sees a new event arrive at the
head. Screenshots go to ``artifacts/esdblocal-browser/`` (ignored by git), kept for looking at.
Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from esdblocal import EmbeddedServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "esdblocal-browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from esdblocal.server import ProjectionOptions  # noqa: E402

# These tests write their own $ce- links (as a node without projections shows them).
NO_PROJECTIONS = ProjectionOptions(run="None")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(
        data_dir=tmp_path_factory.mktemp("esdb-browser"), http_port=0, projections=NO_PROJECTIONS
    ) as node:
        yield node


@pytest.fixture(scope="module")
def esdb(server: EmbeddedServer) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(server.uri) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="esdblocal-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def category(esdb: EventStoreDBClient) -> str:
    """A category of three streams; the first has 25 events; $ce-<category> links to them."""
    name = f"brw{uuid4().hex[:8]}"
    for n in range(3):
        events = [
            NewEvent(
                type=f"Thing{i % 3}",
                data=json.dumps({"stream": n, "index": i}).encode(),
                metadata=json.dumps({"$correlationId": f"corr-{name}"}).encode(),
            )
            for i in range(25 if n == 0 else 2)
        ]
        esdb.append_to_stream(f"{name}-{n}", current_version=StreamState.ANY, events=events)
    esdb.append_to_stream(
        f"$ce-{name}",
        current_version=StreamState.ANY,
        events=[NewEvent(type="$>", data=f"{i}@{name}-1".encode()) for i in range(2)],
    )
    return name


def wait_for(driver: WebDriver, css: str, text: str | None = None) -> None:
    condition = (
        expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
        if text is not None
        else expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )
    WebDriverWait(driver, 60).until(condition)


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def severe_console_errors(driver: WebDriver) -> list[str]:
    """Script errors (a 404 the page expects, like a missing $streams, is not one)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and entry.get("source") != "network"
    ]


def test_browse_streams_pages_and_events(
    browser: WebDriver, server: EmbeddedServer, category: str
) -> None:
    browser.get(f"{server.http_url}/")
    assert browser.current_url.endswith("/web/index.html")
    wait_for(browser, "#recent", f"{category}-2")
    wait_for(browser, "#categories", category)
    shot(browser, "home")
    browser.find_element(By.LINK_TEXT, f"{category}-0").click()
    wait_for(browser, "h1", f"{category}-0")
    wait_for(browser, "#events tbody tr")
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert len(rows) == 20
    assert rows[0].text.startswith(f"24@{category}-0")
    newer = browser.find_element(By.CSS_SELECTOR, '[data-rel="previous"]')
    assert newer.get_attribute("aria-disabled") == "true"  # at the head: nothing newer
    shot(browser, "stream")
    browser.find_element(By.CSS_SELECTOR, '[data-rel="next"]').click()
    wait_for(browser, "#events tbody tr", f"4@{category}-0")
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert [r.text.split()[0] for r in rows] == [f"{n}@{category}-0" for n in range(4, -1, -1)]
    older = browser.find_element(By.CSS_SELECTOR, '[data-rel="next"]')
    assert older.get_attribute("aria-disabled") == "true"  # the oldest page: no broken link
    assert browser.find_element(By.CSS_SELECTOR, '[data-rel="previous"]').get_attribute("href")
    shot(browser, "older-page")
    browser.find_element(By.LINK_TEXT, f"3@{category}-0").click()
    wait_for(browser, "#event-data", '"index": 3')
    assert json.loads(browser.find_element(By.ID, "event-data").text) == {"stream": 0, "index": 3}
    assert len(browser.find_element(By.ID, "event-id").text) == 36
    assert f"corr-{category}" in browser.find_element(By.ID, "event-metadata").text
    assert (
        browser.find_element(By.LINK_TEXT, f"corr-{category}")
        .get_attribute("href")
        .endswith(f"#/correlation/corr-{category}")
    )
    shot(browser, "event")
    assert severe_console_errors(browser) == []


def test_follow_a_category_link_to_its_original(
    browser: WebDriver, server: EmbeddedServer, category: str
) -> None:
    browser.get(f"{server.http_url}/web/index.html#/category/{category}")
    wait_for(browser, "#category-stream", f"$ce-{category}")
    wait_for(browser, "#stream-list", f"{category}-2")
    browser.find_element(By.LINK_TEXT, f"$ce-{category}").click()
    wait_for(browser, "#events tbody tr", f"1@{category}-1")
    assert f"(link 1@$ce-{category})" in browser.find_element(By.ID, "events").text
    shot(browser, "category-stream")
    browser.find_element(By.LINK_TEXT, f"1@{category}-1").click()
    wait_for(browser, "h1", f"1@{category}-1")
    assert json.loads(browser.find_element(By.ID, "event-data").text) == {"stream": 1, "index": 1}
    assert "#/streams/" + f"{category}-1/1" in browser.current_url
    # The link itself, opened through the category stream, names its original.
    browser.get(f"{server.http_url}/web/index.html#/streams/%24ce-{category}/0")
    wait_for(browser, "#read-through", f"0@$ce-{category}")
    browser.find_element(By.ID, "original").click()
    wait_for(browser, "h1", f"0@{category}-1")
    assert severe_console_errors(browser) == []


def test_without_projections_category_and_type_streams_fall_back_to_all(
    browser: WebDriver, server: EmbeddedServer, category: str
) -> None:
    browser.get(f"{server.http_url}/web/index.html#/streams/%24et-Thing2")
    wait_for(browser, ".error", "system projections")
    browser.find_element(By.ID, "fallback").click()
    wait_for(browser, "#events tbody tr", f"23@{category}-0")
    types = {
        row.text.split()[1] for row in browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    }
    assert types == {"Thing2"}
    shot(browser, "fallback-event-type")
    browser.get(f"{server.http_url}/web/index.html#/")
    wait_for(browser, "#created-note", "system projections")
    assert f"{category}-2" in browser.find_element(By.ID, "created").text


def test_a_new_event_appears_at_the_head(
    browser: WebDriver, server: EmbeddedServer, esdb: EventStoreDBClient, category: str
) -> None:
    stream = f"{category}-2"
    browser.get(f"{server.http_url}/web/index.html#/streams/{stream}")
    wait_for(browser, "#events tbody tr", f"1@{stream}")
    wait_for(browser, "#live", "Live")
    esdb.append_to_stream(
        stream, current_version=1, events=[NewEvent(type="Arrived", data=b'{"late": true}')]
    )
    wait_for(browser, "#events tbody tr.new", f"2@{stream}")
    first = browser.find_element(By.CSS_SELECTOR, "#events tbody tr")
    assert "Arrived" in first.text
    shot(browser, "live")


def test_search_and_keyboard(browser: WebDriver, server: EmbeddedServer, category: str) -> None:
    browser.get(f"{server.http_url}/web/index.html#/")
    wait_for(browser, "#recent", category)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("/")
    search = browser.switch_to.active_element
    assert search.get_attribute("id") == "search-input"
    search.send_keys(f"{category}-", Keys.ENTER)
    wait_for(browser, "#stream-list", f"{category}-1")
    items = browser.find_elements(By.CSS_SELECTOR, "#stream-list li")
    assert [i.text.split()[0] for i in items] == [f"{category}-{n}" for n in range(3)]
    browser.find_element(By.TAG_NAME, "body").send_keys("j")
    assert browser.switch_to.active_element.text == f"{category}-0"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(browser, "h1", f"{category}-0")
    browser.find_element(By.TAG_NAME, "body").send_keys("]")
    wait_for(browser, "#events tbody tr", f"4@{category}-0")


def test_a_missing_event_and_a_missing_stream_say_so(
    browser: WebDriver, server: EmbeddedServer, category: str
) -> None:
    browser.get(f"{server.http_url}/web/index.html#/streams/{category}-0/99")
    wait_for(browser, ".error", f"There is no event 99 in '{category}-0'")
    browser.find_element(By.LINK_TEXT, f"Back to {category}-0").click()
    wait_for(browser, "#events tbody tr", f"24@{category}-0")
    browser.get(f"{server.http_url}/web/index.html#/streams/nothing-{category}")
    wait_for(browser, ".error", f"Stream 'nothing-{category}' was not found.")


def test_a_secure_node_browses_over_https_as_a_user(browser: WebDriver, tmp_path: Path) -> None:
    """HTTPS on the node's certificates, Basic auth (a person types it into the browser's
    own prompt, which the API's 401 brings up; here the header is set directly)."""
    with EmbeddedServer(
        data_dir=tmp_path, tls=True, http_port=0, projections=NO_PROJECTIONS
    ) as node:
        with EventStoreDBClient(node.uri_as("admin", "changeit")) as admin:
            admin.append_to_stream(
                "secure-1", current_version=StreamState.ANY, events=[NewEvent(type="S", data=b"{}")]
            )
        basic = base64.b64encode(b"admin:changeit").decode()
        browser.execute_cdp_cmd("Security.setIgnoreCertificateErrors", {"ignore": True})
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {basic}"}}
        )
        try:
            browser.get(f"{node.http_url}/web/index.html#/streams/secure-1")
            wait_for(browser, "#events tbody tr", "0@secure-1")
            browser.get(f"{node.http_url}/web/index.html#/")
            wait_for(browser, "#recent", "secure-1")
        finally:
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
            browser.execute_cdp_cmd("Security.setIgnoreCertificateErrors", {"ignore": False})


def test_readable_on_a_phone(browser: WebDriver, server: EmbeddedServer, category: str) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{server.http_url}/web/index.html#/streams/{category}-0")
        wait_for(browser, "#events tbody tr", f"24@{category}-0")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        viewport = browser.execute_script("return window.innerWidth")
        assert width <= viewport  # nothing wider than the screen: no sideways scrolling
        shot(browser, "phone")
    finally:
        browser.set_window_size(1200, 900)
