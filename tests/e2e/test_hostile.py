"""Hostile input against the real stack: every refusal is problem+json, nothing is appended,
and no event in the store, however it got there, stops or wedges the projector.

Requests go over raw sockets to real gunicorn (so gunicorn's own refusals are seen as a
client sees them); poison events go straight into the store with esdbclient.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from tests.e2e.conftest import ROOT, call, stack_env, whole_stack

pytestmark = pytest.mark.slow
JSON = "application/json"
CREATE = f"{JSON}; domain-model=CreateInventoryItemCommand"
CHECK_IN = f"{JSON}; domain-model=CheckInItemsToInventoryCommand"
REMOVE = f"{JSON}; domain-model=RemoveItemsFromInventoryCommand"
MAX_SAFE = 2**53 - 1


class Stack:
    def __init__(self, port: int, uri: str, data: Path, projector: subprocess.Popen[str]) -> None:
        self.port, self.uri, self.data, self.projector = port, uri, data, projector


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("hostile")
    with whole_stack(data) as (port, uri, projector):
        yield Stack(port, uri, data, projector)


def raw(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    """Send bytes as they are; read the answer to the end (a socket timeout is a hang)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def post(path: str, body: bytes, content_type: str = CREATE, **extra: str) -> bytes:
    headers = "".join(f"{name}: {value}\r\n" for name, value in extra.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def create_item(stack: Stack, name: str = "Sturdy") -> tuple[str, dict[str, str]]:
    status, headers, _ = call(
        stack.port, "POST", "/v1/inventory-items", {"name": name}, Content_Type=CREATE
    )
    assert status == 202
    return "/" + headers["location"].split("/", 3)[3], headers


def stream_length(stack: Stack, stream: str) -> int:
    with EventStoreDBClient(stack.uri) as client:
        return len(client.get_stream(stream))


DEEP = b'{"name": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"


@pytest.mark.parametrize(
    ("why", "body", "code"),
    [
        ("nested 20,000 deep", DEEP, 1000),
        ("not UTF-8", b'{"name": "caf\xe9"}', 1000),
        ("a lone surrogate", b'{"name": "\\ud800"}', 1000),
        ("a name twice", b'{"name": "a", "name": "b"}', 1000),
        ("a byte order mark", b'\xef\xbb\xbf{"name": "a"}', 1000),
        ("NaN", b'{"name": NaN}', 1000),
        ("a control character in a name", b'{"name": "bell\\u0007"}', 1000),
        ("a C1 control character", b'{"name": "x\\u0085"}', 1000),
        ("a name of 201 characters", b'{"name": "' + b"n" * 201 + b'"}', 1000),
    ],
)
def test_malformed_bodies_are_400_problems(
    hostile: Stack, why: str, body: bytes, code: int
) -> None:
    status, headers, problem = raw(hostile.port, post("/v1/inventory-items", body))
    assert (status, headers["content-type"], problem["errorCode"]) == (
        400,
        "application/problem+json",
        code,
    ), why


def test_a_declared_huge_body_is_refused_before_it_is_sent(hostile: Stack) -> None:
    request = (
        b"POST /v1/inventory-items HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n"
    )
    status, headers, problem = raw(hostile.port, request)  # nothing of the body is ever sent
    assert (status, headers["content-type"]) == (413, "application/problem+json")
    assert (problem["errorCode"], problem["maxBodyBytes"]) == (1022, 65536)


def test_a_chunked_body_is_cut_at_the_limit(hostile: Stack) -> None:
    chunk = b'{"name": "' + b"x" * 70_000 + b'"}'
    request = (
        b"POST /v1/inventory-items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(chunk):x}\r\n".encode()
        + chunk
        + b"\r\n0\r\n\r\n"
    )
    status, _, problem = raw(hostile.port, request)
    assert (status, problem["errorCode"]) == (413, 1022)


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
POST = b"POST /v1/inventory-items HTTP/1.1\r\nHost: x\r\n"
MANY_FIELDS = b"".join(b"X-%d: 1\r\n" % n for n in range(101))


@pytest.mark.parametrize(
    ("why", "request_bytes", "status", "code"),
    [
        ("garbage request line", b"HELLO\r\n", 400, 1023),
        ("request line too long", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n", 414, 1024),
        ("too many header fields", GET + MANY_FIELDS, 431, 1025),
        ("a header field too large", GET + b"X-Big: " + b"b" * 9000 + b"\r\n", 431, 1025),
        ("a broken chunk size", POST + b"Transfer-Encoding: chunked\r\n\r\nzz", 400, 1023),
    ],
)  # fmt: skip
def test_gunicorns_own_refusals_are_problems(
    hostile: Stack, why: str, request_bytes: bytes, status: int, code: int
) -> None:
    got, headers, problem = raw(hostile.port, request_bytes + b"\r\n")
    assert (got, headers["content-type"], problem["errorCode"]) == (
        status,
        "application/problem+json",
        code,
    ), why
    assert problem["status"] == status and problem["type"].endswith(f"/v1/errors/{code}")


def test_counts_out_of_range_append_nothing(hostile: Stack) -> None:
    item, headers = create_item(hostile)
    stream = "inventoryItem-" + item.rsplit("/", 1)[1]
    status, _, problem = call(hostile.port, "POST", item, {"count": 10**25}, Content_Type=CHECK_IN)
    assert (status, problem["errorCode"], problem["errors"][0]["field"]) == (400, 1000, "count")
    assert call(hostile.port, "POST", item, {"count": MAX_SAFE}, Content_Type=CHECK_IN)[0] == 202
    status, _, problem = call(hostile.port, "POST", item, {"count": 1}, Content_Type=CHECK_IN)
    assert (status, problem["errorCode"]) == (409, 1026)
    assert stream_length(hostile, stream) == 2
    status, headers, _ = call(hostile.port, "POST", item, {"count": 1}, Content_Type=REMOVE)
    status, _, body = call(hostile.port, "GET", item, Commit_Position=headers["commit-position"])
    assert (status, body["currentCount"]) == (200, MAX_SAFE - 1)  # exact for JSON clients


def test_a_car_beyond_its_ranges_is_refused(hostile: Stack) -> None:
    car = {
        "year": 10_000,
        "make": "Ford",
        "model": "F150",
        "color": "red",
        "mileage": 10**8,
        "vin": "1FTFW1ET5DFC10312",
        "condition": "good",
        "owner": str(uuid.uuid4()),
    }
    status, _, problem = call(hostile.port, "POST", "/v1/cars", car, Content_Type=JSON)
    assert (status, problem["errorCode"]) == (400, 1000)


# ---------------------------------------------------------------- poison in the store


CHECKED_IN = "ItemsCheckedInToInventory"
RENAMED = "InventoryItemRenamed"


def data(type_: str, **fields: Any) -> bytes:
    return json.dumps({"type": type_, **fields}).encode()


def test_poison_events_are_quarantined_and_the_read_side_carries_on(hostile: Stack) -> None:
    item = uuid.uuid4()
    stream = f"inventoryItem-{item}"
    orphan = f"inventoryItem-{uuid.uuid4()}"
    car = f"car-{uuid.uuid4()}"
    # Valid events in streams of our categories whose names are not <category>-<uuid>: no URL
    # reaches such a row, and no representation could carry its id.
    misnamed = "inventoryItem-not-a-uuid"
    shouting = f"car-{str(uuid.uuid4()).upper()}"
    created = {
        "type": "CarCreated",
        "year": 2020,
        "make": "Ford",
        "model": "Escape",
        "color": "red",
        "mileage": 100,
        "vin": "1FTFW1ET5DFC10312",
        "condition": "good",
        "owner": str(uuid.uuid4()),
    }
    ok = 0  # events the model accepts
    deep = b'{"type":"InventoryItemRenamed","newName":' + b"[" * 5000 + b"]" * 5000 + b"}"
    events: list[tuple[str, str, bytes, bool]] = [
        (orphan, "ItemsRemovedFromInventory", data("ItemsRemovedFromInventory", count=1), False),
        (stream, "InventoryItemCreated", data("InventoryItemCreated", name="Poisoned"), True),
        (stream, CHECKED_IN, data(CHECKED_IN, count=2), True),
        (stream, CHECKED_IN, b"not json", False),
        (stream, CHECKED_IN, data(CHECKED_IN, count="two"), False),
        (stream, "ItemsShipped", data("ItemsShipped", count=1), False),
        (stream, CHECKED_IN, data(CHECKED_IN, count=10**25), False),
        (stream, CHECKED_IN, data(CHECKED_IN, count=MAX_SAFE + 1), False),
        (stream, "ItemsRemovedFromInventory", data("ItemsRemovedFromInventory", count=5), False),
        (stream, "InventoryItemCreated", data("InventoryItemCreated", name="Again"), False),
        (stream, RENAMED, data("InventoryItemCreated", name="Mislabelled"), False),
        (stream, RENAMED, b'{"type":"InventoryItemRenamed","newName":"\\ud800"}', False),
        (stream, RENAMED, b'{"type":"InventoryItemRenamed","newName":"caf\xe9"}', False),
        (stream, RENAMED, deep, False),
        (car, "CarCreated", json.dumps(created).encode(), True),
        (car, "MileageChanged", data("MileageChanged", mileage=50), False),
        (car, "MileageChanged", data("MileageChanged", mileage=-1), False),
        (car, "ColorChanged", data("ColorChanged", color="mauve"), False),
        (car, "MileageChanged", b'{"type":"MileageChanged","mileage":1e300}', False),
        (misnamed, "InventoryItemCreated", data("InventoryItemCreated", name="Nameless"), False),
        (shouting, "CarCreated", json.dumps(created).encode(), False),
    ]
    with EventStoreDBClient(hostile.uri) as client:
        for target, type_, payload, accepted in events:
            client.append_to_stream(
                target, current_version=StreamState.ANY, events=[NewEvent(type_, payload)]
            )
            ok += accepted
    # A write through the API after the poison is read back: the projector went past it.
    fresh, headers = create_item(hostile, "After the poison")
    status, _, body = call(hostile.port, "GET", fresh, Commit_Position=headers["commit-position"])
    assert (status, body["name"]) == (200, "After the poison")
    assert hostile.projector.poll() is None

    expected = len(events) - ok
    status, _, ready = call(hostile.port, "GET", "/readyz")
    assert (status, ready["projector"]["quarantined"]) == (200, expected)
    listed = quarantine(hostile.data)
    assert len(listed) == expected
    assert {entry["stream"] for entry in listed} == {orphan, stream, car, misnamed, shouting}
    assert all(entry["reason"] for entry in listed)
    for collection in ("/v1/inventory-items?state=all&limit=100", "/v1/cars?state=all&limit=100"):
        status, _, page = call(hostile.port, "GET", collection)
        assert status == 200, page
        assert all(str(uuid.UUID(entry["id"])) == entry["id"] for entry in page["items"])

    # One meaning on both sides: the read side shows stock 2 at version 12, and the command
    # side, folding the same stream, agrees (its If-Match for that version holds).
    status, got, item_body = call(hostile.port, "GET", f"/v1/inventory-items/{item}")
    assert (status, item_body["name"], item_body["currentCount"]) == (200, "Poisoned", 2)
    status, _, problem = call(
        hostile.port,
        "POST",
        f"/v1/inventory-items/{item}",
        {"count": 3},
        Content_Type=REMOVE,
        If_Match=got["etag"],
    )
    assert (status, problem["errorCode"]) == (409, 1011)
    status, _, _ = call(
        hostile.port,
        "POST",
        f"/v1/inventory-items/{item}",
        {"count": 2},
        Content_Type=REMOVE,
        If_Match=got["etag"],
    )
    assert status == 202
    status, _, car_body = call(hostile.port, "GET", f"/v1/cars/{car.split('-', 1)[1]}")
    assert (status, car_body["mileage"], car_body["color"]) == (200, 100, "red")


def quarantine(data: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "projections", "--quarantine", "--data-dir", str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_rebuild_meets_the_poison_the_same_way(hostile: Stack) -> None:
    """Runs after the poison test: a rebuild beside the running projector (another data
    dir, the same store) quarantines exactly the same events."""
    before = quarantine(hostile.data)
    assert before
    other = hostile.data / "rebuilt"
    rebuild = subprocess.Popen(
        [sys.executable, "-m", "projections", "--rebuild", "--data-dir", str(other)],
        cwd=ROOT,
        env={**stack_env(other, hostile.uri, 0)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert rebuild.stderr is not None
    deadline = time.monotonic() + 60
    for line in rebuild.stderr:
        if "rebuilt store swapped in" in line or time.monotonic() > deadline:
            break
    rebuild.terminate()
    assert rebuild.wait(timeout=20) == 0
    assert quarantine(other) == before
