"""EventStoreDB's own web UI (23.10 and 24.x) served by esdblocal, in a real headless Chromium.

Opt-in: the UI is not shipped with the project. Set ``ESDBLOCAL_WEB_UI`` to one or more
built ``clusternode-web`` folders (separated by ``os.pathsep``), e.g. taken from the
EventStore repository, where each release tag holds the built UI:

    git -C EventStore archive oss-v23.10.5 src/EventStore.ClusterNode.Web/clusternode-web \\
        | tar -x -C /tmp/ui-23.10 --strip-components=3
    git -C EventStore archive v24.10.4 src/EventStore.ClusterNode.Web/clusternode-web \\
        | tar -x -C /tmp/ui-24.10 --strip-components=3
    ESDBLOCAL_WEB_UI=/tmp/ui-23.10:/tmp/ui-24.10 pytest tests/esdblocal/test_web_ui_real.py

Every page (dashboard and its snapshot, stream browser, a stream, an event, a stream's
metadata, projections list, a projection's details, edit and config pages, new projection,
query, competing consumers list, a group's details, new group, admin, cluster status) must
load with no console error and no error toast, and show what esdblocal holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from esdblocal import EmbeddedServer
from esdblocal.server import ProjectionOptions

UIS = [Path(p) for p in os.environ.get("ESDBLOCAL_WEB_UI", "").split(os.pathsep) if p]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not UIS,
        reason="set ESDBLOCAL_WEB_UI to built clusternode-web folders (not shipped; see above)",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.esdblocal.test_browser import browser  # noqa: E402, F401  (the Chromium fixture)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "esdblocal-web-ui"
# A node that never scavenged has no $scavenges stream: the real one answers 404 as well,
# and the Admin page and its scavenge notifier expect it (they poll until it exists).
EXPECTED_404 = ("/streams/$scavenges?",)


def settle(driver: WebDriver, text: str) -> None:
    """Wait for the page to show ``text``, then for its first polls (1-2 s) to come back."""
    WebDriverWait(driver, 30).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text,
        f"{driver.current_url} never showed {text!r}",
    )
    time.sleep(1.5)


def problems(driver: WebDriver) -> list[str]:
    found = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        message = entry["message"]
        if entry.get("source") == "network" and any(p in message for p in EXPECTED_404):
            continue
        found.append(message)
    toasts = driver.find_elements(By.CSS_SELECTOR, ".toast-error")
    found.extend(f"toast: {t.text}" for t in toasts)
    return found


@pytest.fixture(params=UIS, ids=[p.name for p in UIS])
def ui(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture
def node(ui: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(http_port=0, web_ui=ui, projections=ProjectionOptions(run="All")) as server:
        yield server


def test_every_page_loads_without_an_error(
    browser: WebDriver,  # noqa: F811
    node: EmbeddedServer,
    ui: Path,
) -> None:
    stream, group, projection = f"order-{uuid4().hex[:8]}", "workers", "order-counter"
    with EventStoreDBClient(node.uri) as client:
        client.append_to_stream(
            stream,
            current_version=StreamState.ANY,
            events=[NewEvent(type="OrderPlaced", data=b'{"total": 12}') for _ in range(3)],
        )
        client.set_stream_metadata(stream, metadata={"$maxCount": 100})
        client.create_subscription_to_stream(group, stream)
        client.create_projection(
            name=projection,
            query="fromAll().when({$init: function () { return {orders: 0}; },"
            " OrderPlaced: function (s) { s.orders += 1; return s; }});",
        )
    index = f"{node.http_url}/web/index.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1366, 900)
    browser.get(f"{node.http_url}/web/")  # what `python -m esdblocal` prints
    settle(browser, "Dashboard")
    browser.get_log("browser")

    pages = [
        ("dashboard", "#/dashboard", "StorageWriterQueue"),
        ("dashboard-snapshot", "#/dashboard/snapshot", "StorageWriterQueue"),
        ("streams", "#/streams", stream),
        ("stream", f"#/streams/{stream}", f"2@{stream}"),
        ("event", f"#/streams/{stream}/1", '"total": 12'),
        ("metadata", f"#/streams/{stream}/metadata", "$maxCount"),
        ("category", "#/streams/$ce-order", f"0@{stream}"),  # a link shows its original
        ("projections", "#/projections", projection),
        ("projection-new", "#/projections/new", "Name"),
        ("query", "#/query", "Query"),
        ("subscriptions", "#/subscriptions", stream),
        ("subscription", f"#/subscriptions/{stream}/{group}", "DispatchToSingle"),
        ("subscription-new", "#/subscriptions/new", "Group"),
        ("admin", "#/admin", "Projections"),  # the subsystems the node runs
        # One node: the page polls gossip only for ClusterSize > 1, as on a real single node.
        ("clusterstatus", "#/clusterstatus", "Cluster Status"),
    ]
    for label, route, shows in pages:
        browser.get(f"{index}{route}")
        settle(browser, shows)
        browser.save_screenshot(str(ARTIFACTS / f"{ui.name}-{label}.png"))
        assert problems(browser) == [], label

    # The projection's own pages, reached as a person reaches them: from the list.
    browser.get(f"{index}#/projections")
    settle(browser, projection)
    browser.find_element(By.LINK_TEXT, projection).click()
    settle(browser, '"orders": 3')
    details = browser.current_url
    assert problems(browser) == [], "projection details"
    for label, suffix, shows in (("edit", "/edit", "Save"), ("config", "/config", "Emit Enabled")):
        browser.get(details + suffix)
        settle(browser, shows)
        assert problems(browser) == [], label
        browser.save_screenshot(str(ARTIFACTS / f"{ui.name}-projection-{label}.png"))
