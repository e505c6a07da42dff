"""Documentation from a live server: the generator against the real stack (schemathesis,
with its stateful phase, is in test_outside_tools.py).

The generator runs against the stack with API keys on (it needs a key for the entry point);
its page is then read as a person would, in headless Chromium at a desktop and a phone size,
and every link in it is followed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from app.api import create_app
from app.description import RouteTable, operations
from app.problems import KINDS
from app.settings import Settings
from tests.e2e.conftest import ROOT, whole_stack
from tests.e2e.test_browser_client import (
    CHROMEDRIVER,
    CHROMIUM,
    DESKTOP,
    OPTIONS,
    PHONE,
    console_errors,
    fits,
)

pytestmark = pytest.mark.slow

KEY = "docs-generator-key-0123456789abcdef"
WRITER = "docs-writer-key-0123456789abcdef"
ARTIFACTS = ROOT / "artifacts" / "docs"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The whole stack with API keys on: a read key for the generator, a writer to try the
    examples with."""
    keys = f"docs:{KEY}:read,writer:{WRITER}:read+write"
    with whole_stack(tmp_path_factory.mktemp("docs"), API_KEYS=keys) as (port, _, _):
        yield port


@pytest.fixture(scope="module")
def generated(keyed: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-docs")
    done = generate(keyed, out, "--key", KEY)
    assert done.returncode == 0, done.stderr
    # The README shows what it prints; the count there is the count here.
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"^(\d+) routes -> api-docs/API.md, api-docs/index.html$", readme, re.M)
    printed = re.match(r"(\d+) routes -> ", done.stdout)
    assert shown and printed and shown.group(1) == printed.group(1), done.stdout
    return out


def generate(port: int, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    root = f"http://127.0.0.1:{port}/v1"
    return subprocess.run(
        [sys.executable, "-m", "tools.docs", root, "--out", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def routing_table(tmp: Path) -> RouteTable:
    routes = RouteTable()
    create_app(Settings("esdb://127.0.0.1:1?tls=false", tmp, bytes(64)), routes=routes)
    return routes


def test_the_generator_learns_every_route_and_domain_model_from_options(
    generated: Path, tmp_path: Path
) -> None:
    out = generated
    markdown = (out / "API.md").read_text()
    page = (out / "index.html").read_text()
    routes = routing_table(tmp_path)
    for route in routes.routes:
        assert f"`{route.path}`" in markdown, route.path
        assert f"<code>{route.path}</code>" in page, route.path
        for method, op in operations(route.resource, route.suffix).items():
            assert f"### {method} `{route.path}`" in markdown
            for model in op.accepts:
                assert f"`{model.__name__}`" in markdown
            if op.model_name:
                assert op.model_name in markdown
            if method == "GET" and len(op.offered) > 1:
                for name, media_type in op.offered:  # every format and representation
                    assert f"`{media_type}; domain-model={name}; version=1.0.0`" in markdown
    for kind in KINDS:
        assert f'<a id="error-{kind.number}"></a>' in markdown
        assert f"### {kind.number} {kind.title}" in markdown
        assert f"Status {kind.status}. " in markdown
        assert f'<h3 id="error-{kind.number}">' in page


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: list[str] = []
        self.meta: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "meta":
            self.meta.append(found)


def test_every_link_in_the_docs_answers_and_every_anchor_is_there(generated: Path) -> None:
    links = Links()
    links.feed((generated / "index.html").read_text())
    assert len(links.ids) == len(set(links.ids)), "an anchor is defined twice"
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in links.meta
    inside = {h[1:] for h in links.hrefs if h.startswith("#")}
    outside = {h for h in links.hrefs if not h.startswith("#")}
    assert inside - set(links.ids) == set()
    # The contents reach every route, method, representation and error code.
    assert {"routes", "schemas", "errors"} <= inside
    assert {"get-v1-cars-item-id", "put-v1-cars-item-id", "schema-carrepresentation"} <= inside
    assert {f"error-{kind.number}" for kind in KINDS} <= inside
    # The error pages are the API's own, and public: they answer without a key.
    assert outside and all(
        re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/errors/\d+", h) for h in outside
    )
    for href in sorted(outside):
        with urllib.request.urlopen(href, timeout=10) as response:
            assert response.status == 200, href


def curl_example(markdown: str, heading: str, model: str = "") -> str:
    section = markdown.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    if model:
        section = section.split(f"`{model}`:", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


def run(command: str, key: str) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "API_KEY": key, "ETAG": '"not-a-tag"'},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_curl_examples_run_as_written(generated: Path) -> None:
    """Each example is a command a shell runs: the reads answer, a create creates, and a
    conditional write with a stale $ETAG is refused for the reason the docs give."""
    markdown = (generated / "API.md").read_text()
    listed = run(curl_example(markdown, "GET `/v1/inventory-items`"), KEY)
    assert listed.startswith("HTTP/1.1 200") and "domain-model=InventoryItemList" in listed
    created = run(curl_example(markdown, "POST `/v1/inventory-items`"), WRITER)
    assert created.startswith("HTTP/1.1 202"), created
    location = re.search(r"(?im)^location: (\S+)", created)
    assert location
    check_in = curl_example(
        markdown, "POST `/v1/inventory-items/{item_id}`", "CheckInItemsToInventoryCommand"
    )
    item = location.group(1).rsplit("/", 1)[1]
    refused = run(check_in.replace("00000000-0000-0000-0000-000000000000", item), WRITER)
    assert refused.startswith("HTTP/1.1 412") and '"errorCode":1004' in refused
    described = run(curl_example(markdown, "OPTIONS `/v1/cars`"), KEY)
    assert described.startswith("HTTP/1.1 200") and '"path":"/v1/cars"' in described


def test_the_generator_asks_for_a_key_when_the_api_wants_one(keyed: int, tmp_path: Path) -> None:
    done = generate(keyed, tmp_path)
    assert done.returncode == 1
    assert "the entry point wants an API key (--key or $API_KEY)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")
def test_the_docs_read_on_a_desktop_and_a_phone(generated: Path) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for option in (*OPTIONS, "--hide-scrollbars", "--allow-file-access-from-files"):
        options.add_argument(option)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            driver.set_window_size(*size)
            driver.get((generated / "index.html").as_uri())
            fits(driver)
            driver.save_screenshot(str(ARTIFACTS / f"contents-{name}.png"))
            # The contents lead to a method; its curl example and error codes are there.
            driver.find_element(By.CSS_SELECTOR, "nav.toc a[href='#put-v1-cars-item-id']").click()
            assert driver.current_url.endswith("#put-v1-cars-item-id")
            heading = driver.find_element(By.ID, "put-v1-cars-item-id")
            assert driver.execute_script(
                "return Math.abs(arguments[0].getBoundingClientRect().top) < 20", heading
            )
            fits(driver)
            driver.save_screenshot(str(ARTIFACTS / f"put-car-{name}.png"))
        assert console_errors(driver) == []
    finally:
        driver.quit()


def test_the_generator_says_clearly_when_the_server_is_not_there(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.docs", "http://127.0.0.1:9/v1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot read http://127.0.0.1:9/v1" in done.stderr
    assert "Traceback" not in done.stderr
