"""The production path end to end: a secure event store (esdblocal ``--tls``: TLS, users,
anonymous access refused), gunicorn and the projector as processes, API keys required, over
real HTTP. The only change from the embedded default is ``ESDB_URI`` (plus the keys)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from esdbclient import EventStoreDBClient

from esdblocal import certificates
from eventstore.feed import Feed
from tests.conftest import SecureNode, start_secure_node
from tests.e2e.conftest import (
    call,
    free_port,
    running,
    stack_env,
    start_projector,
    start_web,
    wait_for_port,
)

pytestmark = pytest.mark.slow

READER = "reader-key-0123456789"
WRITER = "writer-key-0123456789"
BOTH = "operator-key-0123456789"
KEYS = f"rita:{READER}:read\nwalt:{WRITER}:write\nola:{BOTH}:read+write\n"
CREATE = {"Content_Type": "application/json; domain-model=CreateInventoryItemCommand"}


def keys_file(directory: Path) -> Path:
    path = directory / "api-keys"
    path.write_text(KEYS)
    return path


def production_env(data: Path, node: SecureNode, port: int, **extra: str) -> dict[str, str]:
    return stack_env(
        data,
        node.uri_as(),
        port,
        API_KEYS_FILE=str(keys_file(data)),
        REQUIRE_AUTH="true",
        **extra,
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def workers_of(master: subprocess.Popen[str]) -> set[int]:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


@pytest.fixture(scope="module")
def secure_stack(
    secure_node: SecureNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    data = tmp_path_factory.mktemp("production")
    port = free_port()
    with running(production_env(data, secure_node, port)):
        yield port


def test_a_write_and_its_read_over_tls_with_credentials_and_keys(
    secure_stack: int, secure_node: SecureNode
) -> None:
    status, headers, _ = call(
        secure_stack, "POST", "/v1/inventory-items", {"name": "Secure"}, **CREATE, **bearer(WRITER)
    )
    assert status == 202
    path = "/" + headers["location"].split("/", 3)[3]
    status, read_headers, body = call(
        secure_stack,
        "GET",
        path,
        Commit_Position=headers["commit-position"],
        **bearer(READER),
    )
    assert (status, body["name"], read_headers["etag"]) == (200, "Secure", headers["etag"])
    with EventStoreDBClient(secure_node.uri_as()) as admin:
        (event,) = admin.get_stream("inventoryItem-" + path.rsplit("/", 1)[1])
    assert json.loads(event.metadata)["principal"] == "walt"


@pytest.mark.parametrize(
    ("authorization", "method", "path", "status", "code"),
    [
        (None, "GET", "/v1/inventory-items", 401, 1020),
        (None, "POST", "/v1/inventory-items", 401, 1020),
        ("Bearer wrong-key-00000000000", "GET", "/v1/cars", 401, 1020),
        (f"Basic {READER}", "GET", "/v1/cars", 401, 1020),
        (f"Bearer {READER}", "GET", "/v1/inventory-items", 200, None),
        (f"Bearer {READER}", "POST", "/v1/inventory-items", 403, 1021),
        (f"Bearer {WRITER}", "GET", "/v1/inventory-items", 403, 1021),
        (f"Bearer {WRITER}", "POST", "/v1/inventory-items", 202, None),
        (f"Bearer {BOTH}", "GET", "/v1/search?query=x", 200, None),
        (f"Bearer {BOTH}", "POST", "/v1/inventory-items", 202, None),
        (None, "GET", "/healthz", 200, None),
        (None, "GET", "/readyz", 200, None),
        (None, "GET", "/v1/openapi.json", 200, None),
        (None, "OPTIONS", "/v1/inventory-items", 200, None),
    ],
)
def test_keys_and_scopes_over_http(
    secure_stack: int,
    authorization: str | None,
    method: str,
    path: str,
    status: int,
    code: int | None,
) -> None:
    headers: dict[str, str] = dict(CREATE) if method == "POST" else {}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = {"name": "Matrix"} if method == "POST" else None
    got, response_headers, problem = call(secure_stack, method, path, body, **headers)
    assert got == status
    if code is not None:
        assert response_headers["content-type"] == "application/problem+json"
        assert problem["errorCode"] == code
    if status == 401:
        assert response_headers["www-authenticate"].startswith('Bearer realm="api"')


def test_readiness_names_the_store_and_the_projector(secure_stack: int) -> None:
    def caught_up() -> bool:
        status, _, body = call(secure_stack, "GET", "/readyz")
        return status == 200 and body["projector"].get("lag") == 0

    eventually(caught_up)
    _, _, body = call(secure_stack, "GET", "/readyz")
    assert body["eventStore"]["reachable"] is True


# ------------------------------------------------------ refused configurations


def _other_ca(node: SecureNode, tmp: Path) -> str:
    other = certificates.ensure(tmp / "other-ca")
    return node.uri_as().replace(str(node.ca.resolve()), str(other.ca))


REFUSALS: list[tuple[str, Callable[[SecureNode, Path], str], str]] = [
    (
        "wrong-password",
        lambda node, tmp: node.uri_as("admin", "not-the-password"),
        "refused the credentials",
    ),
    ("untrusted-ca", _other_ca, "certificate is not trusted"),
    ("no-access-to-all", lambda node, tmp: node.uri_as("app", "app-secret"), "may not read $all"),
    (
        "malformed-uri",
        lambda node, tmp: node.uri_as().replace("tls=true", "tls=maybe"),
        "ESDB_URI is not a connection string",
    ),
]


@pytest.mark.parametrize(
    ("uri_for", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_a_refused_configuration_stops_both_processes_with_one_clear_line(
    secure_node: SecureNode,
    tmp_path: Path,
    uri_for: Callable[[SecureNode, Path], str],
    message: str,
) -> None:
    env = stack_env(tmp_path, uri_for(secure_node, tmp_path), free_port())
    web = start_web(env, stderr=subprocess.PIPE)
    projector = start_projector(env, stderr=subprocess.PIPE)
    _, web_log = web.communicate(timeout=60)
    _, projector_log = projector.communicate(timeout=60)
    assert (web.returncode, projector.returncode) == (3, 3)
    for log in (web_log, projector_log):
        assert message in log
        assert "Traceback" not in log
        assert "not-the-password" not in log
    errors = [json.loads(line) for line in projector_log.splitlines() if '"error"' in line]
    assert errors
    assert errors[-1]["level"] == "error"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"REQUIRE_AUTH": "true"}, "REQUIRE_AUTH is set but no API keys"),
        ({"ETAG_KEY": "too-short"}, "ETAG_KEY must be"),
        ({"API_KEYS": "alice:secret-key-that-is-long"}, "API key entry 1"),
        ({"READ_WAIT": "soon"}, "READ_WAIT must be a number"),
    ],
)
def test_bad_settings_stop_the_web_before_any_worker(
    secure_node: SecureNode, tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    env = stack_env(tmp_path, secure_node.uri_as(), free_port(), **extra)
    web = start_web(env, stderr=subprocess.PIPE)
    _, log = web.communicate(timeout=60)
    assert web.returncode == 3
    assert message in log
    assert "Traceback" not in log
    assert "Booting worker" not in log
    assert "secret-key-that-is-long" not in log


def test_the_ca_can_come_inline_instead_of_as_a_file(
    secure_node: SecureNode, tmp_path: Path
) -> None:
    """ESDB_ROOT_CERTIFICATES (PEM text) for a URI without tlsCAFile: the preflight the web
    runs and the projector's feed both connect."""
    uri = secure_node.uri_as().split("&tlsCAFile=")[0]
    pem = secure_node.ca.read_text()
    env = stack_env(tmp_path, uri, free_port(), ESDB_ROOT_CERTIFICATES=pem)
    done = subprocess.run(
        [sys.executable, "-m", "app.preflight"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "accepts this configuration" in done.stderr
    feed = Feed(uri, ["inventoryItem"], root_certificates=pem)
    try:
        feed.head()
    finally:
        feed.reset()
    without = subprocess.run(
        [sys.executable, "-m", "app.preflight"],
        env={**env, "ESDB_ROOT_CERTIFICATES": ""},
        capture_output=True,
        text=True,
    )
    assert without.returncode == 3  # the system's CAs do not know esdblocal's
    assert "not trusted" in without.stderr


# ---------------------------------------------------------- failures and recovery


def test_the_web_starts_without_the_store_and_recovers_from_its_failure(
    tmp_path: Path,
) -> None:
    """Store down at start: 503s and not ready. Store up: served. Store killed and back:
    served again. Throughout, the same gunicorn workers (nobody restarted them)."""
    esdb_port = free_port()
    store_data = tmp_path / "esdb"
    certificates.ensure(store_data / "certs")
    ca = store_data / "certs" / "ca" / "ca.crt"
    uri = f"esdb://admin:changeit@127.0.0.1:{esdb_port}?tls=true&tlsCAFile={ca}"
    web_port = free_port()
    env = stack_env(tmp_path, uri, web_port, API_KEYS=f"ola:{BOTH}:read+write")
    auth = bearer(BOTH)
    with running(env) as (web, _):
        status, headers, problem = call(
            web_port, "POST", "/v1/inventory-items", {"name": "Early"}, **CREATE, **auth
        )
        assert (status, headers["retry-after"], problem["errorCode"]) == (503, "1", 1016)
        assert call(web_port, "GET", "/readyz")[0] == 503
        workers = workers_of(web)

        node = start_secure_node(store_data, "--port", str(esdb_port))
        try:
            eventually(lambda: call(web_port, "GET", "/readyz")[0] == 200)
            status, headers, _ = call(
                web_port, "POST", "/v1/inventory-items", {"name": "Later"}, **CREATE, **auth
            )
            assert status == 202
            node.process.kill()
            node.process.wait()
            assert call(web_port, "GET", "/readyz")[0] == 503
        finally:
            node.process.kill()
            node.process.wait()

        node = start_secure_node(store_data, "--port", str(esdb_port))
        try:

            def written() -> bool:
                status, _, _ = call(
                    web_port, "POST", "/v1/inventory-items", {"name": "Again"}, **CREATE, **auth
                )
                return status == 202

            eventually(written)
            eventually(lambda: call(web_port, "GET", "/readyz")[0] == 200)
            assert workers_of(web) == workers
        finally:
            node.process.terminate()
            node.process.wait(timeout=20)


def test_sigterm_lets_a_request_in_progress_finish(secure_node: SecureNode, tmp_path: Path) -> None:
    """A GET waiting for the projector (read-your-writes) when gunicorn gets SIGTERM still
    gets its full answer; then gunicorn exits 0."""
    port = free_port()
    env = production_env(tmp_path, secure_node, port, READ_WAIT="10")
    web = start_web(env)
    try:
        wait_for_port(port, web)
        status, headers, _ = call(
            port, "POST", "/v1/inventory-items", {"name": "Graceful"}, **CREATE, **bearer(BOTH)
        )
        assert status == 202  # no projector yet: the read below must wait for one
        path = "/" + headers["location"].split("/", 3)[3]
        answer: dict[str, Any] = {}

        def read() -> None:
            answer["response"] = call(
                port, "GET", path, Commit_Position=headers["commit-position"], **bearer(BOTH)
            )

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.5)
        os.kill(web.pid, signal.SIGTERM)
        projector = start_projector(env)
        try:
            reader.join(timeout=30)
        finally:
            projector.terminate()
            assert projector.wait(timeout=20) == 0
        status, _, body = answer["response"]
        assert (status, body["name"]) == (200, "Graceful")
        assert web.wait(timeout=30) == 0
    finally:
        if web.poll() is None:
            web.kill()
