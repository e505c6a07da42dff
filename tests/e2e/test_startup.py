"""What a start tells a newcomer: a taken port names its variable, the URLs to open, the
open-API warning once, and where the root URL leads a person and an API client."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, stack_env, start_web, wait_for_port

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def esdb() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--port", "0", "--memory"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    uri = process.stdout.readline().strip()
    yield uri
    process.terminate()
    process.wait(timeout=20)


def test_a_taken_port_ends_the_start_in_one_line_naming_port(tmp_path: Path, esdb: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = start_web(stack_env(tmp_path, esdb, port), stderr=subprocess.PIPE)
        _, err = web.communicate(timeout=30)
    assert web.returncode == 3
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert "set PORT" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("accept", "target"),
    [
        (BROWSER_ACCEPT, "/app/"),  # a person, in a browser
        (None, "/v1"),  # curl
        ("application/json", "/v1"),  # an API client
    ],
)
def test_the_root_url_leads_people_to_the_client_and_clients_to_the_api(
    started: tuple[int, str], accept: str | None, target: str
) -> None:
    port, _ = started
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/", headers={"Accept": accept} if accept else {})
    response = connection.getresponse()
    response.read()
    assert response.status == 302
    assert response.getheader("Location") == f"http://127.0.0.1:{port}{target}"
    assert "Accept" in (response.getheader("Vary") or "")
    assert response.getheader("Cache-Control")
    # and where it leads answers 200
    connection.request("GET", target, headers={"Accept": accept} if accept else {})
    followed = connection.getresponse()
    followed.read()
    connection.close()
    assert followed.status == 200


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, esdb: str) -> Iterator[tuple[int, str]]:
    """gunicorn with 3 workers; yields (its port, the file its stderr goes to)."""
    port = free_port()
    data = tmp_path_factory.mktemp("startup")
    log = data / "web.log"
    with log.open("w") as sink:
        web = start_web(stack_env(data, esdb, port, WEB_WORKERS="3"), stderr=sink)
    try:
        wait_for_port(port, web)
        yield port, str(log)
    finally:
        web.terminate()
        web.wait(timeout=30)


def test_the_start_says_where_to_go_and_warns_of_an_open_api_once(
    started: tuple[int, str],
) -> None:
    port, log = started
    text = Path(log).read_text()
    assert f"API at http://127.0.0.1:{port}/v1" in text
    assert f"browser client at http://127.0.0.1:{port}/app/" in text
    assert text.count("THE API IS OPEN") == 1  # once per start, not once per worker (3)


@pytest.mark.parametrize(
    ("flag", "other", "variable"),
    [("--port", "--http-port", "ESDB_PORT"), ("--http-port", "--port", "ESDB_HTTP_PORT")],
)
def test_a_taken_esdblocal_port_names_its_flag_and_variable(
    flag: str, other: str, variable: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "esdblocal", "--memory", flag, str(port), other, "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 3
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert f"give {flag} a free port ({variable} under make run)" in done.stderr
    assert "Traceback" not in done.stderr
