"""HTTP to the letter, through real gunicorn: the syntax of what we send, the grammar of what we
read, caching metadata on every GET/HEAD, methods and codings, and writes that say exactly
what they did (issue 23). Each class of case is a parametrized table.

The Content-Type we send is checked by a parser that is not Falcon's: a port of RFC 9110's
grammar (``media_type`` below, written from the RFC, not from the app) and the standard
library's ``email.headerregistry``, whose defects list must stay empty.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import re
import socket
import uuid
from collections.abc import Iterator
from email.headerregistry import HeaderRegistry
from typing import Any

import pytest

from tests.e2e.conftest import call, whole_stack

pytestmark = pytest.mark.slow
JSON = "application/json"
CREATE = f"{JSON}; domain-model=CreateInventoryItemCommand"
CHECK_IN = f"{JSON}; domain-model=CheckInItemsToInventoryCommand"
RENAME = f"{JSON}; domain-model=RenameInventoryItemCommand"
CAR = {
    "year": 2020,
    "make": "Ford",
    "model": "Escape",
    "color": "red",
    "mileage": 100,
    "vin": "1FTFW1ET5DFC10312",
    "condition": "good",
    "owner": "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
}

# RFC 9110 5.6.2 token, 5.6.4 quoted-string, 5.6.6 parameters, 8.3.1 media-type.
TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
PARAMETER = re.compile(rf"[ \t]*;[ \t]*(?:({TOKEN})=({TOKEN}|{QUOTED}))?")


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """RFC 9110's media-type, strictly: AssertionError on any character out of place."""
    head = re.match(rf"({TOKEN})/({TOKEN})", value)
    assert head, value
    params: dict[str, str] = {}
    position = head.end()
    while position < len(value):
        found = PARAMETER.match(value, position)
        assert found and found.end() > position, f"not RFC 9110 at {value[position:]!r}"
        if found[1]:
            raw = found[2]
            params[found[1].lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw[0] == '"' else raw
        position = found.end()
    return f"{head[1]}/{head[2]}".lower(), params


def strictly(content_type: str) -> dict[str, str]:
    """Both strict parsers agree on the header and find nothing wrong in it."""
    kind, params = media_type(content_type)
    parsed = HeaderRegistry()("content-type", content_type)
    assert parsed.defects == (), parsed.defects
    assert parsed.content_type == kind  # type: ignore[attr-defined]
    assert dict(parsed.params) == params  # type: ignore[attr-defined]
    return params


class Stack:
    def __init__(self, port: int) -> None:
        self.port = port
        status, headers, _ = call(port, "POST", "/v1/inventory-items", {"name": "Letter"},
                                  Content_Type=CREATE)  # fmt: skip
        assert status == 202
        self.item = "/" + headers["location"].split("/", 3)[3]
        self.position = headers["commit-position"]
        status, headers, _ = call(port, "POST", "/v1/cars", CAR, Content_Type=JSON)
        assert status == 202
        self.car = "/" + headers["location"].split("/", 3)[3]
        self.position = headers["commit-position"]
        gone = call(port, "POST", "/v1/inventory-items", {"name": "Gone"}, Content_Type=CREATE)
        self.gone = "/" + gone[1]["location"].split("/", 3)[3]
        self.position = call(port, "DELETE", self.gone)[1]["commit-position"]

    def get(self, path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str]]:
        return self.fetch(path, method, **headers)[:2]

    def fetch(
        self, path: str, method: str = "GET", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers.setdefault("Commit_Position", self.position)
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        connection.request(method, path, headers=named)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.fixture(scope="module")
def letter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with whole_stack(tmp_path_factory.mktemp("letter")) as (port, _, _):
        yield Stack(port)


# ---------------------------------------------------------------- 1. what we send


ANSWERS = [
    ("/v1", {}),
    ("/v1/inventory-items", {}),
    ("{item}", {}),
    ("{item}", {"Accept": "application/xml"}),
    ("{item}", {"Accept": f"{JSON}; domain-model=InventoryItemSummary"}),
    ("{car}", {}),
    ("{item}/history", {}),
    ("{item}?version=0", {}),
    ("/v1/openapi.json", {}),
    ("/v1/errors", {}),
    ("/v1/errors/1000", {}),
    ("/v1/changes", {}),
    ("/v1/search?query=Letter", {}),
    ("/healthz", {}),
    ("/readyz", {}),
]


@pytest.mark.parametrize(("path", "headers"), ANSWERS)
def test_every_content_type_we_send_is_rfc_9110(
    letter: Stack, path: str, headers: dict[str, str]
) -> None:
    status, got = letter.get(path.format(item=letter.item, car=letter.car), **headers)
    assert status == 200
    params = strictly(got["content-type"])
    if "domain-model" in params:
        assert params["format"] in (JSON, "application/xml")
        assert params["schema"] == "application/schema+json"


def test_the_202_and_the_options_description_are_rfc_9110(letter: Stack) -> None:
    status, headers, _ = call(letter.port, "POST", letter.item, {"count": 1}, Content_Type=CHECK_IN)
    assert status == 202
    assert strictly(headers["content-type"])["domain-model"] == "CommandAccepted"
    status, headers, described = call(
        letter.port, "OPTIONS", letter.item, Accept=f"{JSON}; domain-model=ResourceDescription"
    )
    assert status == 200
    strictly(headers["content-type"])
    for method in described["methods"]:
        for accepted in method["accepts"]:
            strictly(accepted["contentType"])
        for response in method["responses"]:
            for key in ("contentType",):
                if key in response:
                    strictly(response[key])


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; domain-model=CheckInItemsToInventoryCommand",
        'application/json; domain-model="CheckInItemsToInventoryCommand"',
        "Application/JSON; domain-model=CheckInItemsToInventoryCommand",
        "APPLICATION/JSON; DOMAIN-MODEL=CheckInItemsToInventoryCommand; CHARSET=UTF-8",
        "application/json;domain-model=CheckInItemsToInventoryCommand;charset=utf-8",
        'application/json ; charset="utf-8" ; domain-model=CheckInItemsToInventoryCommand',
        "application/json; domain-model=CheckInItemsToInventoryCommand; version=1.0.0",
    ],
)
def test_a_request_media_type_is_read_in_every_valid_form(letter: Stack, content_type: str) -> None:
    status, _, body = call(
        letter.port, "POST", letter.item, {"count": 1}, Content_Type=content_type
    )
    assert status == 202, body


@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [
        ("application/json; domain-model", 400, 1031),  # a parameter without a value
        ("application/json; domain-model=a/b", 400, 1031),  # "/" is not a token character
        ("application json", 400, 1031),
        ('application/json; domain-model="Check', 400, 1031),  # an unterminated quoted-string
        ("application/json; charset=latin-1; domain-model=CheckInItemsToInventoryCommand", 415,
         1001),
        ("text/plain; domain-model=CheckInItemsToInventoryCommand", 415, 1001),
        ("application/json; domain-model=checkinitemstoinventorycommand", 415, 1001),
    ],
)  # fmt: skip
def test_a_request_media_type_that_is_not_one_is_refused(
    letter: Stack, content_type: str, status: int, code: int
) -> None:
    got, _, problem = call(
        letter.port, "POST", letter.item, {"count": 1}, Content_Type=content_type
    )
    assert (got, problem["errorCode"]) == (status, code)
    if code == 1031:
        assert problem["header"] == "Content-Type"


# ---------------------------------------------------------------- 2. caching


CACHED = [
    ("/v1", 200, "Accept, Accept-Encoding"),
    ("/v1/inventory-items", 200, "Accept, Accept-Encoding"),
    ("{item}", 200, "Accept, Accept-Datetime, Accept-Encoding"),
    ("{car}", 200, "Accept, Accept-Datetime, Accept-Encoding"),
    ("{item}/history", 200, "Accept, Accept-Encoding"),
    ("{item}/timemap", 200, "Accept-Encoding"),
    ("/v1/openapi.json", 200, "Accept-Encoding"),
    ("/v1/errors", 200, "Accept, Accept-Encoding"),
    ("/v1/errors/1000", 200, "Accept, Accept-Encoding"),
    ("/v1/changes", 200, "Accept, Prefer, Accept-Encoding"),
    ("/v1/search?query=Letter", 200, "Accept, Accept-Encoding"),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("path", "status", "vary"), CACHED)
def test_every_representation_has_a_validator_and_revalidates(
    letter: Stack, method: str, path: str, status: int, vary: str | None
) -> None:
    path = path.format(item=letter.item, car=letter.car)
    got, headers = letter.get(path, method)
    assert got == status
    assert headers["cache-control"] == "private, max-age=0, must-revalidate"
    assert headers.get("vary") == vary
    assert headers["etag"].startswith('"')
    again, revalidated = letter.get(path, method, If_None_Match=headers["etag"])
    assert again == 304
    assert (revalidated["etag"], revalidated.get("vary")) == (headers["etag"], vary)
    assert revalidated["cache-control"] == headers["cache-control"]


@pytest.mark.parametrize(
    ("path", "headers", "status", "vary"),
    [
        (f"/v1/inventory-items/{uuid.UUID(int=7)}", {}, 404, "Accept, Accept-Datetime"),
        ("{gone}", {}, 410, "Accept, Accept-Datetime"),
        ("{item}", {"Accept": "text/html"}, 406, "Accept, Accept-Datetime"),
        ("/v1/inventory-items?limit=0", {}, 400, "Accept"),
        ("/v1/no-such-thing", {}, 404, "Accept"),
        ("{item}?version=999", {}, 404, "Accept"),
        (f"/v1/inventory-items/{uuid.UUID(int=7)}/timemap", {}, 404, "Accept"),
        ("/v1/errors/9", {}, 404, "Accept"),
        ("{item}", {"Accept-Datetime": "yesterday"}, 400, "Accept, Accept-Datetime"),
    ],
)
def test_an_error_is_never_stored(
    letter: Stack, path: str, headers: dict[str, str], status: int, vary: str
) -> None:
    """A 404 may be a resource the read side has not reached yet: no cache keeps it."""
    path = path.format(item=letter.item, gone=letter.gone)
    for method in ("GET", "HEAD"):
        got, answered = letter.get(path, method, **headers)
        assert (got, answered["cache-control"], answered["vary"]) == (status, "no-store", vary)


def test_a_timegate_redirect_and_its_mementos_state_their_caching(letter: Stack) -> None:
    got, headers = letter.get(letter.item, Accept_Datetime="Fri, 01 Jan 2100 00:00:00 GMT")
    assert (got, headers["vary"]) == (302, "Accept, Accept-Datetime")
    assert headers["cache-control"] == "private, max-age=0, must-revalidate"
    got, headers = letter.get(f"{letter.item}?version=0")
    assert (got, headers["vary"]) == (200, "Accept, Accept-Encoding")
    assert headers["cache-control"] == "private, max-age=31536000, immutable"


def test_the_timemap_changes_its_validator_with_each_write(letter: Stack) -> None:
    _, before = letter.get(f"{letter.item}/timemap")
    call(letter.port, "POST", letter.item, {"count": 1}, Content_Type=CHECK_IN)
    got, after = letter.get(f"{letter.item}/timemap", If_None_Match=before["etag"])
    assert got == 200 and after["etag"] != before["etag"]


# ---------------------------------------------------------------- 3. the grammar of what we read


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Idempotency-Key", ""),
        ("Idempotency-Key", "k" * 201),
        ("Idempotency-Key", "k" * 5000),
        ("Idempotency-Key", "two words"),
        ("Idempotency-Key", '""'),
        ("Idempotency-Key", "cl\u00e9"),
        ("If-Match", "not-quoted"),
        ("If-Match", '"unterminated'),
        ("If-None-Match", "W/ x"),
        ("X-Correlation-Id", "x" * 201),
    ],
)
def test_a_write_header_that_breaks_its_grammar_is_a_400_naming_it(
    letter: Stack, header: str, value: str
) -> None:
    raw = (
        f"POST /v1/inventory-items HTTP/1.1\r\nHost: x\r\nContent-Type: {CREATE}\r\n"
        f"Content-Length: 16\r\n{header}: {value}\r\n\r\n"
    ).encode("latin-1") + b'{"name": "Late"}'
    status, headers, problem = send_raw(letter.port, raw)
    assert (status, problem["errorCode"], problem["header"]) == (400, 1031, header)
    assert headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "header", "value"),
    [
        ("/v1/inventory-items", "Commit-Position", ""),
        ("/v1/inventory-items", "Commit-Position", "-1"),
        ("/v1/inventory-items", "Commit-Position", "+5"),
        ("/v1/inventory-items", "Commit-Position", "5.0"),
        ("/v1/inventory-items", "Commit-Position", "1e3"),
        ("/v1/inventory-items", "Commit-Position", "9" * 20),
        ("{item}", "Accept-Datetime", "yesterday"),
        ("{item}", "Accept-Datetime", "2007-05-31T20:35:00Z"),
        ("{item}", "Accept-Datetime", "Thu, 31 May 2007 20:35:00 +0000"),
        ("{item}", "Accept-Datetime", "Thu, 31 Feb 2007 20:35:00 GMT"),
        ("{item}", "If-None-Match", "abc"),
        ("/v1/changes", "Prefer", "wait=soon"),
        ("/v1/changes", "Prefer", "wait=1.5"),
        ("/v1/changes", "Prefer", "=1"),
    ],
)
def test_a_read_header_that_breaks_its_grammar_is_a_400_naming_it(
    letter: Stack, path: str, header: str, value: str
) -> None:
    request = f"GET {path.format(item=letter.item)} HTTP/1.1\r\nHost: x\r\n{header}: {value}\r\n"
    status, _, problem = send_raw(letter.port, (request + "\r\n").encode("latin-1"))
    assert (status, problem["errorCode"], problem["header"]) == (400, 1031, header)


@pytest.mark.parametrize(
    "when",
    [
        "Fri, 01 Jan 2100 00:00:00 GMT",  # IMF-fixdate
        "Friday, 01-Jan-99 00:00:00 GMT",  # rfc850-date (1999: more than 50 years ahead)
        "Fri Jan  1 00:00:00 2100",  # asctime-date
    ],
)
def test_accept_datetime_takes_every_http_date_form(letter: Stack, when: str) -> None:
    got, headers = letter.get(letter.item, Accept_Datetime=when)
    if "-99 " in when:
        assert got == 404  # 1999: before the item existed
    else:
        assert got == 302 and "?version=" in headers["location"]


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("wait=1", "wait=1"),
        ('wait="1"', "wait=1"),
        ("respond-async, wait=1", "wait=1"),
        ("handling=lenient; x=y, WAIT=1", "wait=1"),
        ("return=minimal", None),
    ],
)
def test_prefer_is_read_as_rfc_7240_writes_it(
    letter: Stack, prefer: str, applied: str | None
) -> None:
    got, headers = letter.get("/v1/changes?after=999999999999", Prefer=prefer)
    assert (got, headers.get("preference-applied")) == (200, applied)


def test_an_idempotency_key_is_one_key_bare_or_quoted(letter: Stack) -> None:
    key = str(uuid.uuid4())
    first = call(letter.port, "POST", "/v1/inventory-items", {"name": "Keyed"},
                 Content_Type=CREATE, Idempotency_Key=key)  # fmt: skip
    again = call(letter.port, "POST", "/v1/inventory-items", {"name": "Keyed"},
                 Content_Type=CREATE, Idempotency_Key=f'"{key}"')  # fmt: skip
    assert first[0] == again[0] == 202
    assert first[1]["location"] == again[1]["location"]
    longest = call(letter.port, "POST", "/v1/inventory-items", {"name": "Keyed"},
                   Content_Type=CREATE, Idempotency_Key="k" * 200)  # fmt: skip
    assert longest[0] == 202


@pytest.mark.parametrize(
    ("count", "status"), [("5.0", 202), ("5e0", 202), ("0.5e1", 202), ("5.5", 400), ("5", 202)]
)
def test_an_integer_is_an_integer_however_json_writes_it(
    letter: Stack, count: str, status: int
) -> None:
    """JSON Schema calls 5.0 an integer, and the published schema says integer."""
    body = f'{{"count": {count}}}'.encode()
    raw = (
        f"POST {letter.item} HTTP/1.1\r\nHost: x\r\nContent-Type: {CHECK_IN}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    assert send_raw(letter.port, raw)[0] == status


# ---------------------------------------------------------------- 4. methods and codings


def send_raw(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    """Bytes as they are; the answer read to the end of the connection."""
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
    headers[":status-line"] = lines[0]
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


@pytest.mark.parametrize("method", ["FOO", "SEARCH", "PROPFIND", "MKCALENDARCOLLECTIONS", "get"])
def test_an_unknown_method_is_501_with_its_own_code(letter: Stack, method: str) -> None:
    request = f"{method} /v1/inventory-items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    status, headers, problem = send_raw(letter.port, request.encode())
    assert (status, problem["errorCode"]) == (501, 1032)
    assert headers[":status-line"] == "HTTP/1.1 501 Not Implemented"


@pytest.mark.parametrize("method", ["TRACE", "PATCH"])
def test_an_http_method_a_route_lacks_is_405_with_allow(letter: Stack, method: str) -> None:
    request = f"{method} /v1/inventory-items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    status, headers, problem = send_raw(letter.port, request.encode())
    assert (status, problem["errorCode"]) == (405, 1003)
    assert set(headers["allow"].split(", ")) == {"get", "head", "post", "options"}


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate, chunked", "br, chunked"])
def test_a_transfer_coding_we_do_not_decode_is_501(letter: Stack, coding: str) -> None:
    request = (
        f"POST /v1/inventory-items HTTP/1.1\r\nHost: x\r\nContent-Type: {CREATE}\r\n"
        f"Transfer-Encoding: {coding}\r\n\r\n5\r\nxxxxx\r\n0\r\n\r\n"
    )
    status, headers, problem = send_raw(letter.port, request.encode())
    assert (status, problem["errorCode"]) == (501, 1027)
    assert headers[":status-line"] == "HTTP/1.1 501 Not Implemented"


def test_a_content_coding_we_do_not_decode_is_415(letter: Stack) -> None:
    request = (
        f"POST /v1/inventory-items HTTP/1.1\r\nHost: x\r\nContent-Type: {CREATE}\r\n"
        "Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}"
    )
    status, headers, problem = send_raw(letter.port, request.encode())
    assert (status, problem["errorCode"], headers["accept-encoding"]) == (415, 1033, "identity")


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"HELLO\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n", "HTTP/1.1 414 URI Too Long"),
        (GET + b"".join(b"X-%d: 1\r\n" % n for n in range(101)),
         "HTTP/1.1 431 Request Header Fields Too Large"),
        (GET + b"Expect: 200-ok\r\n", "HTTP/1.1 417 Expectation Failed"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zstd, chunked\r\n",
         "HTTP/1.1 501 Not Implemented"),
    ],
)  # fmt: skip
def test_gunicorns_refusals_carry_a_date_and_their_reason_phrase(
    letter: Stack, request_bytes: bytes, status_line: str
) -> None:
    status, headers, problem = send_raw(letter.port, request_bytes + b"\r\n")
    assert headers[":status-line"] == status_line
    assert email.utils.parsedate_to_datetime(headers["date"]) is not None
    assert headers["cache-control"] == "no-store"
    assert problem["status"] == status


@pytest.mark.parametrize("size", [50 * 1024 * 1024, 200 * 1024])
def test_a_client_that_sends_a_too_large_body_whole_reads_the_413(letter: Stack, size: int) -> None:
    """http.client writes the whole body before it reads a byte of the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", letter.port, timeout=30)
    body = b'{"name": "' + b"x" * (size - 12) + b'"}'
    connection.request("POST", "/v1/inventory-items", body=body, headers={"Content-Type": CREATE})
    response = connection.getresponse()
    problem = json.loads(response.read())
    connection.close()
    assert (response.status, problem["errorCode"]) == (413, 1022)


# ---------------------------------------------------------------- 5. writes that say what they did


def test_a_put_202_carries_no_validator_but_chains_through_its_body(letter: Stack) -> None:
    status, headers, accepted = call(letter.port, "PUT", letter.item, {"newName": "Renamed"},
                                     Content_Type=RENAME)  # fmt: skip
    assert status == 202 and "etag" not in headers  # RFC 9110 9.3.4
    status, headers, chained = call(letter.port, "PUT", letter.item, {"newName": "Again"},
                                    Content_Type=RENAME, If_Match=accepted["etag"])  # fmt: skip
    assert status == 202
    stale = call(letter.port, "PUT", letter.item, {"newName": "Stale"}, Content_Type=RENAME,
                 If_Match=accepted["etag"])  # fmt: skip
    assert stale[0] == 412
    got, read = letter.get(letter.item, Commit_Position=headers["commit-position"])
    assert (got, read["etag"]) == (200, chained["etag"])
    status, headers, car = call(letter.port, "PUT", letter.car, {**CAR, "color": "blue"},
                                Content_Type=JSON, If_Match="*")  # fmt: skip
    assert status == 202 and "etag" not in headers and car["etag"].startswith('"')


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("POST", "{item}", {"count": 1}, CHECK_IN),
        ("PATCH", "{car}", {"mileage": 150}, "application/merge-patch+json"),
        ("POST", "/v1/inventory-items", {"name": "Tagged"}, CREATE),
    ],
)
def test_other_202s_carry_the_new_tag_in_header_and_body(
    letter: Stack, method: str, path: str, body: dict[str, Any], content_type: str
) -> None:
    path = path.format(item=letter.item, car=letter.car)
    status, headers, accepted = call(letter.port, method, path, body, Content_Type=content_type)
    assert status == 202
    assert headers["etag"] == accepted["etag"]


# ---------------------------------------------------------------- 7. compression


@pytest.mark.parametrize(
    ("path", "accept_encoding", "coded"),
    [
        ("/v1/openapi.json", "gzip", True),
        ("/v1/inventory-items?limit=100", "gzip, deflate, br", True),
        ("{item}", "br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("{item}/timemap", "*", True),
        ("{item}", "x-gzip", True),  # RFC 9110 8.4.1.3: an alias of gzip
        ("/v1/openapi.json", "gzip;q=0", False),
        ("/v1/openapi.json", "identity", False),
        ("/v1/openapi.json", "br", False),
        ("/v1/openapi.json", "gzip;q=0.5, identity", False),
    ],
)
def test_gzip_when_asked_is_another_representation(
    letter: Stack, path: str, accept_encoding: str, coded: bool
) -> None:
    path = path.format(item=letter.item)
    status, plain, identity = letter.fetch(path)
    got, headers, body = letter.fetch(path, Accept_Encoding=accept_encoding)
    assert (status, got) == (200, 200)
    assert "Accept-Encoding" in headers["vary"] and "Accept-Encoding" in plain["vary"]
    if not coded:
        assert "content-encoding" not in headers and body == identity
        assert headers["etag"] == plain["etag"]
        return
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == identity and len(body) < len(identity)
    assert headers["etag"] == plain["etag"][:-1] + '.gz"'  # RFC 9110 8.8.3: its own tag
    _, head, empty = letter.fetch(path, "HEAD", Accept_Encoding=accept_encoding)
    assert (head["content-length"], head["etag"], empty) == (str(len(body)), headers["etag"], b"")
    again, revalidated, _ = letter.fetch(
        path, Accept_Encoding=accept_encoding, If_None_Match=headers["etag"]
    )
    assert (again, revalidated["etag"]) == (304, headers["etag"])
    # The identity tag does not validate the gzip representation, nor the other way round.
    assert (
        letter.fetch(path, Accept_Encoding=accept_encoding, If_None_Match=plain["etag"])[0] == 200
    )
    assert letter.fetch(path, If_None_Match=headers["etag"])[0] == 200


def test_a_gzip_tag_chains_a_write_like_the_identity_one(letter: Stack) -> None:
    _, headers, _ = letter.fetch(letter.item, Accept_Encoding="gzip")
    status, _, _ = call(letter.port, "POST", letter.item, {"count": 1}, Content_Type=CHECK_IN,
                        If_Match=headers["etag"])  # fmt: skip
    assert status == 202
