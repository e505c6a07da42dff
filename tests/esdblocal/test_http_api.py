"""The HTTP side in the real server's shapes, through real HTTP to a real esdblocal.

Events are written with esdbclient over gRPC and read back over HTTP (and the other way
round). The expected fields, link relations and status codes are those the server builds in
``src/EventStore.Core/Services/Transport/Http`` (``Convert.cs``, ``Configure.cs``,
``AtomController.cs``): feeds at the head, in the middle and at both ends, forward and
backward, ``$all``, single events, metadata, writes and deletes.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound

from esdblocal import EmbeddedServer
from esdblocal.security import Users, user
from esdblocal.server import ProjectionOptions

# These tests write their own $ce- links (as a node without projections shows them).
NO_PROJECTIONS = ProjectionOptions(run="None")

ATOM = "application/vnd.eventstore.atom+json"


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """A tiny HTTP client that does not follow redirects (so 301/302/307 can be checked)."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        self.base = base
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "", parts.port or 80
        self._context = context

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        if self._context is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, context=self._context, timeout=30
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(
                response.status,
                response.reason,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def get(self, path: str, accept: str = ATOM, **headers: str) -> Reply:
        return self.request("GET", path, {"Accept": accept, **_headers(headers)})

    def feed(self, path: str, **headers: str) -> dict[str, Any]:
        reply = self.get(path, **headers)
        assert reply.status == 200, (path, reply.status, reply.reason)
        assert reply.headers["content-type"].startswith(ATOM)
        return reply.json()  # type: ignore[no-any-return]

    def path(self, uri: str) -> str:
        """An absolute link from a feed → the path to request (and check it is ours)."""
        assert uri.startswith(self.base), uri
        return uri[len(self.base) :]


def _headers(given: dict[str, str]) -> dict[str, str]:
    """Keyword arguments → header names: es_long_poll → ES-LongPoll style."""
    names = {
        "es_long_poll": "ES-LongPoll",
        "es_resolve_link_tos": "ES-ResolveLinkTos",
        "es_expected_version": "ES-ExpectedVersion",
        "if_none_match": "If-None-Match",
        "authorization": "Authorization",
    }
    return {names[k]: v for k, v in given.items()}


def links(feed: dict[str, Any]) -> dict[str, str]:
    relations = [link["relation"] for link in feed["links"]]
    assert len(relations) == len(set(relations)), relations
    return {link["relation"]: link["uri"] for link in feed["links"]}


def titles(feed: dict[str, Any]) -> list[str]:
    return [entry["title"] for entry in feed["entries"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(
        data_dir=tmp_path_factory.mktemp("esdb-http"), http_port=0, projections=NO_PROJECTIONS
    ) as node:
        yield node


@pytest.fixture(scope="module")
def web(server: EmbeddedServer) -> Http:
    return Http(server.http_url)


@pytest.fixture(scope="module")
def esdb(server: EmbeddedServer) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(server.uri) as client:
        yield client


def write(client: EventStoreDBClient, stream: str, count: int, data: bytes = b'{"a":1}') -> None:
    client.append_to_stream(
        stream,
        current_version=StreamState.ANY,
        events=[NewEvent(type=f"E{i}", data=data) for i in range(count)],
    )


# --------------------------------------------------------------------------- stream feeds


def test_head_of_a_one_event_stream(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"one-{uuid4().hex}"
    write(esdb, stream, 1)
    reply = web.get(f"/streams/{stream}")
    feed = reply.json()
    base = web.base
    assert feed["title"] == f"Event stream '{stream}'"
    assert feed["id"] == feed["selfUrl"] == f"{base}/streams/{stream}"
    assert feed["streamId"] == stream
    assert feed["author"] == {"name": "EventStore"}
    assert feed["headOfStream"] is True
    assert feed["eTag"].startswith("0;")
    assert reply.headers["etag"] == f'"{feed["eTag"]}"'
    assert reply.headers["cache-control"] == "max-age=0, no-cache, must-revalidate"
    assert reply.headers["vary"] == "Accept"
    assert [(link["relation"], link["uri"]) for link in feed["links"]] == [
        ("self", f"{base}/streams/{stream}"),
        ("first", f"{base}/streams/{stream}/head/backward/20"),
        ("previous", f"{base}/streams/{stream}/1/forward/20"),
        ("metadata", f"{base}/streams/{stream}/metadata"),
    ]
    (entry,) = feed["entries"]
    assert entry["title"] == f"0@{stream}"
    assert entry["id"] == f"{base}/streams/{stream}/0"
    assert entry["summary"] == "E0"
    assert entry["author"] == {"name": "EventStore"}
    assert entry["updated"].endswith("Z") and entry["updated"] >= feed["updated"][:19]
    assert entry["links"] == [
        {"uri": f"{base}/streams/{stream}/0", "relation": "edit"},
        {"uri": f"{base}/streams/{stream}/0", "relation": "alternate"},
    ]
    assert "content" not in entry and "data" not in entry  # embed none


def test_paging_backward_from_the_head_to_the_start(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"paged-{uuid4().hex}"
    write(esdb, stream, 45)
    head = web.feed(f"/streams/{stream}")
    assert titles(head) == [f"{n}@{stream}" for n in range(44, 24, -1)]
    assert links(head) == {
        "self": f"{web.base}/streams/{stream}",
        "first": f"{web.base}/streams/{stream}/head/backward/20",
        "last": f"{web.base}/streams/{stream}/0/forward/20",
        "next": f"{web.base}/streams/{stream}/24/backward/20",
        "previous": f"{web.base}/streams/{stream}/45/forward/20",
        "metadata": f"{web.base}/streams/{stream}/metadata",
    }
    middle_reply = web.get(web.path(links(head)["next"]))
    middle = middle_reply.json()
    assert titles(middle) == [f"{n}@{stream}" for n in range(24, 4, -1)]
    assert middle["headOfStream"] is False and "eTag" not in middle
    assert middle_reply.headers["cache-control"] == "max-age=31536000, public"
    assert links(middle)["next"].endswith("/4/backward/20")
    assert links(middle)["previous"].endswith("/25/forward/20")
    oldest = web.feed(web.path(links(middle)["next"]))
    assert titles(oldest) == [f"{n}@{stream}" for n in range(4, -1, -1)]
    assert "next" not in links(oldest) and "last" not in links(oldest)  # the end
    assert links(oldest)["previous"].endswith("/5/forward/20")


def test_paging_forward_from_the_start_to_the_head(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"fwd-{uuid4().hex}"
    write(esdb, stream, 45)
    first_reply = web.get(f"/streams/{stream}/0/forward/20")
    first = first_reply.json()
    assert titles(first) == [f"{n}@{stream}" for n in range(19, -1, -1)]  # newest first
    assert first["headOfStream"] is False
    assert first_reply.headers["cache-control"] == "max-age=31536000, public"
    assert set(links(first)) == {"self", "first", "previous", "metadata"}  # nothing older
    assert links(first)["previous"].endswith(f"/streams/{stream}/20/forward/20")
    second = web.feed(web.path(links(first)["previous"]))
    assert links(second)["next"].endswith("/19/backward/20")
    assert links(second)["last"].endswith("/0/forward/20")
    head_reply = web.get(web.path(links(second)["previous"]))
    head = head_reply.json()
    assert titles(head) == [f"{n}@{stream}" for n in range(44, 39, -1)]
    assert head["headOfStream"] is True
    assert head_reply.headers["etag"].startswith('"44;')
    past = web.feed(web.path(links(head)["previous"]))
    assert past["entries"] == [] and past["headOfStream"] is True
    assert "previous" not in links(past)  # the end, and nothing read


def test_an_empty_page_of_a_truncated_stream(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"trunc-{uuid4().hex}"
    write(esdb, stream, 3)
    esdb.set_stream_metadata(stream, metadata={"$tb": 3}, current_version=StreamState.ANY)
    feed = web.feed(f"/streams/{stream}")
    assert feed["entries"] == [] and feed["headOfStream"] is True
    assert set(links(feed)) == {"self", "first", "previous", "metadata"}
    assert links(feed)["previous"].endswith("/3/forward/20")


def test_missing_deleted_and_tombstoned_streams(web: Http, esdb: EventStoreDBClient) -> None:
    assert web.get(f"/streams/missing-{uuid4().hex}").status == 404
    assert web.get(f"/streams/missing-{uuid4().hex}/0").status == 404
    soft, hard = f"soft-{uuid4().hex}", f"hard-{uuid4().hex}"
    write(esdb, soft, 2)
    write(esdb, hard, 2)
    esdb.delete_stream(soft, current_version=1)
    esdb.tombstone_stream(hard, current_version=1)
    assert web.get(f"/streams/{soft}").status == 404
    assert web.get(f"/streams/{hard}").status == 410
    assert web.get(f"/streams/{hard}/0/forward/20").status == 410


def test_bad_arguments_are_400_and_unknown_media_406(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"bad-{uuid4().hex}"
    write(esdb, stream, 1)
    assert web.get(f"/streams/{stream}/x").status == 400
    assert web.get(f"/streams/{stream}/0/forward/0").status == 400
    assert web.get(f"/streams/{stream}/0/forward/20", es_long_poll="soon").status == 400
    assert web.get("/streams/%24all/zz/forward/20").status == 400
    assert web.get(f"/streams/{stream}", accept="application/atom+xml").status == 406


def test_if_none_match_at_the_head_is_304(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"etag-{uuid4().hex}"
    write(esdb, stream, 2)
    reply = web.get(f"/streams/{stream}")
    assert web.get(f"/streams/{stream}", if_none_match=reply.headers["etag"]).status == 304
    write(esdb, stream, 1)
    assert web.get(f"/streams/{stream}", if_none_match=reply.headers["etag"]).status == 200


# --------------------------------------------------------------------------- events


def test_a_single_event_in_each_media_type(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"single-{uuid4().hex}"
    write(esdb, stream, 2, data=b'{"b":[1,2]}')
    entry = web.get(f"/streams/{stream}/1").json()
    assert entry["title"] == f"1@{stream}" and entry["summary"] == "E1"
    assert entry["content"]["eventStreamId"] == stream
    assert entry["content"]["eventNumber"] == 1
    assert entry["content"]["data"] == {"b": [1, 2]}
    assert web.get(f"/streams/{stream}/1", accept="application/json").json() == {"b": [1, 2]}
    dto = web.get(f"/streams/{stream}/1", accept="application/vnd.eventstore.event+json").json()
    assert dto["eventType"] == "E1" and dto["data"] == {"b": [1, 2]}
    assert set(dto) == {"eventStreamId", "eventNumber", "eventType", "eventId", "data", "metadata"}
    head = web.get(f"/streams/{stream}/head")
    assert head.json()["title"] == f"1@{stream}" and head.headers["etag"].startswith('"1;')
    assert web.get(f"/streams/{stream}/0").headers["cache-control"] == "max-age=31536000, public"
    assert web.get(f"/streams/{stream}/2").status == 404


def test_embed_levels(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"embed-{uuid4().hex}"
    esdb.append_to_stream(
        stream,
        current_version=StreamState.NO_STREAM,
        events=[
            NewEvent(type="J", data=b'{"x":{"y":1}}', metadata=b'{"$correlationId":"c1"}'),
            NewEvent(type="T", data=b'{"looks":"json"}', content_type="application/octet-stream"),
        ],
    )
    rich = web.feed(f"/streams/{stream}?embed=rich")["entries"]
    assert rich[1]["eventType"] == "J" and rich[1]["isJson"] is True
    assert rich[1]["streamId"] == stream and rich[1]["positionEventNumber"] == 0
    assert "data" not in rich[1]
    body = web.feed(f"/streams/{stream}?embed=body")["entries"]
    assert body[1]["data"] == '{"x":{"y":1}}'
    assert body[1]["metaData"] == '{"$correlationId":"c1"}' and body[1]["isMetaData"] is True
    assert "data" not in body[0]  # not JSON: only tryharder shows it
    pretty = web.feed(f"/streams/{stream}?embed=pretty")["entries"]
    assert pretty[1]["data"] == '{\n  "x": {\n    "y": 1\n  }\n}'
    harder = web.feed(f"/streams/{stream}?embed=tryharder")["entries"]
    assert harder[0]["isJson"] is True and json.loads(harder[0]["data"]) == {"looks": "json"}
    content = web.feed(f"/streams/{stream}?embed=content")["entries"]
    assert content[1]["content"]["data"] == {"x": {"y": 1}}
    assert "content" not in content[0]  # not JSON


def test_links_resolved_or_not_and_dollar_streams_encoded_or_not(
    web: Http, esdb: EventStoreDBClient
) -> None:
    category = f"cat{uuid4().hex[:8]}"
    original = f"{category}-1"
    write(esdb, original, 2)
    esdb.append_to_stream(
        f"$ce-{category}",
        current_version=StreamState.ANY,
        events=[NewEvent(type="$>", data=f"{n}@{original}".encode()) for n in range(2)],
    )
    for path in (f"/streams/$ce-{category}", f"/streams/%24ce-{category}"):
        feed = web.feed(f"{path}?embed=rich")
        assert feed["streamId"] == f"$ce-{category}"
        assert feed["id"] == f"{web.base}/streams/%24ce-{category}"
        newest = feed["entries"][0]
        assert newest["title"] == f"1@{original}" and newest["summary"] == "$>"
        assert newest["id"] == f"{web.base}/streams/{original}/1"
        assert newest["eventType"] == "E1" and newest["streamId"] == original
        assert newest["positionStreamId"] == f"$ce-{category}"
    plain = web.feed(f"/streams/%24ce-{category}?embed=rich", es_resolve_link_tos="false")
    assert plain["entries"][0]["title"] == f"1@$ce-{category}"
    assert plain["entries"][0]["eventType"] == "$>"
    through = web.get(f"/streams/%24ce-{category}/0").json()
    assert through["title"] == f"0@{original}" and through["summary"] == "$>"


def test_metadata(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"meta-{uuid4().hex}"
    write(esdb, stream, 1)
    esdb.set_stream_metadata(stream, metadata={"$maxCount": 10, "owner": "x"})
    assert web.get(f"/streams/{stream}/metadata", accept="application/json").json() == {
        "$maxCount": 10,
        "owner": "x",
    }
    entry = web.get(f"/streams/{stream}/metadata").json()
    assert entry["title"] == f"0@$${stream}" and entry["summary"] == "$metadata"
    assert web.get(f"/streams/{uuid4().hex}/metadata").status == 404


# --------------------------------------------------------------------------- $all


def test_all_backward_to_the_start_reads_what_esdbclient_reads(
    web: Http, esdb: EventStoreDBClient
) -> None:
    write(esdb, f"all-{uuid4().hex}", 3)
    expected = [
        (e.stream_name, e.stream_position) for e in esdb.read_all(backwards=True, filter_exclude=[])
    ]
    head = web.feed("/streams/%24all?embed=rich")
    assert head["title"] == "All events" and head["id"] == f"{web.base}/streams/%24all"
    assert set(links(head)) >= {"self", "first", "previous", "metadata"}
    seen, feed = [], web.feed("/streams/$all/head/backward/50?embed=rich")
    while True:
        seen += [(e["positionStreamId"], e["positionEventNumber"]) for e in feed["entries"]]
        if "next" not in links(feed):
            break
        assert links(feed)["last"].endswith(f"/streams/%24all/{'0' * 32}/forward/50")
        feed = web.feed(web.path(links(feed)["next"]) + "?embed=rich")
    assert seen == expected  # every event, newest first, nothing twice, to the very start


def test_all_forward_from_the_start(web: Http, esdb: EventStoreDBClient) -> None:
    write(esdb, f"allf-{uuid4().hex}", 1)
    first = web.feed(f"/streams/%24all/{'0' * 32}/forward/2?embed=rich")
    assert len(first["entries"]) == 2
    relations = links(first)
    assert "next" not in relations and "last" not in relations  # from position 0
    previous = relations["previous"].rsplit("/", 3)[1]
    assert len(previous) == 32 and previous[:16] == previous[16:]
    newest = first["entries"][0]
    following = web.feed(web.path(relations["previous"]) + "?embed=rich")
    assert following["entries"][-1]["id"] != newest["id"]
    back = links(following)["next"]  # back to (before) the first entry of the page
    older = web.feed(web.path(back) + "?embed=rich")
    assert older["entries"][0]["id"] == newest["id"]


def test_all_filtered_by_event_type_and_stream_prefix(web: Http, esdb: EventStoreDBClient) -> None:
    tag = uuid4().hex[:8]
    for n in range(3):
        esdb.append_to_stream(
            f"flt{tag}-{n}",
            current_version=StreamState.ANY,
            events=[NewEvent(type=f"Kind{tag}{i % 2}", data=b"{}") for i in range(5)],
        )
    query = f"?context=eventtype&type=regex&data=%5EKind{tag}0%24&embed=rich"
    head = web.feed(f"/streams/%24all/filtered{query}")
    assert head["id"] == f"{web.base}/streams/%24all/filtered"
    assert len(head["entries"]) == 9  # 3 of 5 in each of 3 streams
    assert {e["eventType"] for e in head["entries"]} == {f"Kind{tag}0"}
    assert "metadata" not in links(head)
    assert "next" not in links(head)  # the whole log looked through: nothing older
    assert "context=eventtype" in links(head)["previous"]  # the links keep the filter
    page = web.feed(
        f"/streams/%24all/filtered/head/backward/4?context=streamid&type=prefix&data=flt{tag}-"
    )
    assert titles(page) == [f"4@flt{tag}-2", f"3@flt{tag}-2", f"2@flt{tag}-2", f"1@flt{tag}-2"]
    older = web.feed(web.path(links(page)["next"]))
    assert titles(older) == [f"0@flt{tag}-2", f"4@flt{tag}-1", f"3@flt{tag}-1", f"2@flt{tag}-1"]
    newer = web.feed(web.path(links(older)["previous"]))
    assert titles(newer) == titles(page)
    assert web.get("/streams/%24all/filtered?context=nope&type=prefix&data=x").status == 400
    assert web.get("/streams/%24all/filtered?context=streamid&type=prefix").status == 400


def test_long_poll_answers_when_an_event_arrives(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"poll-{uuid4().hex}"
    write(esdb, stream, 1)
    answer: list[Reply] = []
    waiting = threading.Thread(
        target=lambda: answer.append(web.get(f"/streams/{stream}/1/forward/20", es_long_poll="60"))
    )
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive()  # nothing to answer yet: it waits
    write(esdb, stream, 1)
    waiting.join(90)
    # A poll that ran out would answer the (empty) page it had: the event means it woke.
    assert titles(answer[0].json()) == [f"1@{stream}"]
    quiet = time.monotonic()
    empty = web.feed(f"/streams/{stream}/2/forward/20", es_long_poll="1")
    assert empty["entries"] == [] and time.monotonic() - quiet >= 0.9


# --------------------------------------------------------------------------- writes


def test_post_events_and_expected_versions(web: Http, esdb: EventStoreDBClient) -> None:
    stream = f"post-{uuid4().hex}"
    body = json.dumps(
        [
            {"eventId": str(uuid4()), "eventType": "Posted", "data": {"n": 1}},
            {"eventId": str(uuid4()), "eventType": "Posted", "data": "plain", "metadata": {"m": 2}},
        ]
    ).encode()
    events_json = {"Content-Type": "application/vnd.eventstore.events+json"}
    created = web.request(
        "POST",
        f"/streams/{stream}",
        {**events_json, **_headers({"es_expected_version": "-1"})},
        body,
    )
    assert created.status == 201
    assert created.headers["location"] == f"{web.base}/streams/{stream}/0"
    read = list(esdb.get_stream(stream))
    assert [e.type for e in read] == ["Posted", "Posted"]
    assert json.loads(read[0].data) == {"n": 1} and read[0].content_type == "application/json"
    assert read[1].data == b"plain" and json.loads(read[1].metadata) == {"m": 2}
    wrong = web.request(
        "POST", f"/streams/{stream}", {**events_json, "ES-ExpectedVersion": "5"}, body
    )
    assert (wrong.status, wrong.reason) == (400, "Wrong expected EventNumber")
    assert wrong.headers["es-currentversion"] == "1"
    again = web.request(
        "POST",
        f"/streams/{stream}",
        {**events_json, "ES-ExpectedVersion": "1"},
        body.replace(b"Posted", b"More"),
    )
    assert again.status == 201 and again.headers["location"].endswith(f"/{stream}/2")  # fmt: skip
    assert web.request("POST", f"/streams/{stream}", events_json, b"[]").status == 400


def test_post_json_without_an_id_redirects_to_an_idempotent_uri(web: Http) -> None:
    stream = f"json-{uuid4().hex}"
    headers = {"Content-Type": "application/json", "ES-EventType": "Raw"}
    redirect = web.request("POST", f"/streams/{stream}", headers, b'{"k":"v"}')
    assert redirect.status == 307
    location = redirect.headers["location"]
    assert location.startswith(f"{web.base}/streams/{stream}/incoming/")
    for _ in range(2):  # the same id twice: written once
        assert web.request("POST", web.path(location), headers, b'{"k":"v"}').status == 201
    assert titles(web.feed(f"/streams/{stream}")) == [f"0@{stream}"]
    untyped = web.request("POST", f"/streams/{stream}", {"Content-Type": "application/json"}, b"{}")
    assert untyped.status == 400


def test_delete_soft_and_hard(web: Http, esdb: EventStoreDBClient) -> None:
    soft, hard = f"del-{uuid4().hex}", f"del-{uuid4().hex}"
    write(esdb, soft, 2)
    write(esdb, hard, 2)
    wrong = web.request("DELETE", f"/streams/{soft}", {"ES-ExpectedVersion": "7"})
    assert wrong.status == 400 and wrong.headers["es-currentversion"] == "1"
    assert web.request("DELETE", f"/streams/{soft}").status == 204
    never = web.request("DELETE", f"/streams/never-{uuid4().hex}")
    assert never.status == 400 and never.headers["es-currentversion"] == "-1"
    with pytest.raises(NotFound):
        list(esdb.get_stream(soft))
    assert web.request("DELETE", f"/streams/{hard}", {"ES-HardDelete": "true"}).status == 204
    assert web.get(f"/streams/{hard}").status == 410
    posted = web.request(
        "POST",
        f"/streams/{hard}",
        {"Content-Type": "application/vnd.eventstore.events+json"},
        json.dumps([{"eventId": str(uuid4()), "eventType": "X", "data": {}}]).encode(),
    )
    assert posted.status == 410


# --------------------------------------------------------------------------- node and UI


def test_node_endpoints(web: Http) -> None:
    info = web.get("/info", accept="application/json").json()
    assert info["features"]["atomPub"] is True
    assert info["authentication"]["type"] == "insecure"
    assert info["state"] == "leader"
    gossip = web.get("/gossip", accept="application/json").json()
    (member,) = gossip["members"]
    assert member["state"] == "Leader" and member["isAlive"] is True
    stats = web.get("/stats", accept="application/json").json()
    assert stats["proc"]["id"] > 0 and "es" in stats
    for path in ("/streams/x", "/info"):  # CORS preflight, and the headers on answers
        preflight = web.request("OPTIONS", path, {"Origin": "http://elsewhere"})
        assert preflight.status == 200
        assert "ES-ExpectedVersion" in preflight.headers["access-control-allow-headers"]
    assert web.get("/info").headers["access-control-allow-origin"] == "*"
    options = web.get("/info/options", accept="application/json").json()
    assert {"name": "EnableAtomPubOverHttp"}.items() <= options[0].items()


def test_the_ui_redirects(web: Http, esdb: EventStoreDBClient) -> None:
    for path in ("/", "/web"):
        reply = web.get(path, accept="text/html")
        assert reply.status == 302 and reply.headers["location"] == "/web/index.html"
    page = web.get("/web/index.html", accept="text/html")
    assert page.status == 200 and b"app.js" in page.body
    assert web.get("/web/app.js", accept="*/*").status == 200
    stream = f"html-{uuid4().hex}"
    write(esdb, stream, 1)
    html = web.get(f"/streams/{stream}", accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert html.status == 200 and html.headers["content-type"].startswith("text/html")
    assert f"/web/index.html#/streams/{stream}".encode() in html.body
    event = web.get(f"/streams/{stream}/0", accept="text/html")
    assert f"#/streams/{stream}/0".encode() in event.body
    dollar = web.get("/streams/%24ce-a%2Fb", accept="text/html")  # as the server: $ stays
    assert b'"/web/index.html#/streams/$ce-a%2Fb"' in dollar.body
    slash = web.get(f"/streams/{stream}/?embed=body", accept=ATOM)
    assert slash.status == 307
    assert slash.headers["location"] == f"{web.base}/streams/{stream}?embed=body"


def test_web_ui_serves_the_given_directory(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>EventStoreDB</title>clusternode-web")
    with EmbeddedServer(http_port=0, web_ui=tmp_path) as node:
        served = Http(node.http_url).get("/web/index.html", accept="text/html")
    assert served.status == 200 and b"clusternode-web" in served.body


def test_stream_search_and_event_types(web: Http, esdb: EventStoreDBClient) -> None:
    prefix = f"srch{uuid4().hex[:6]}"
    for n in range(3):
        write(esdb, f"{prefix}-{n}", 1)
    found = web.get(f"/esdblocal/streams?prefix={prefix}", accept="application/json").json()
    assert [s["streamId"] for s in found["streams"]] == [f"{prefix}-{n}" for n in range(3)]
    assert found["more"] is False
    underscore = web.get("/esdblocal/streams?prefix=srch_", accept="application/json").json()
    assert underscore["streams"] == []  # LIKE wildcards are literal
    types = web.get("/esdblocal/event-types", accept="application/json").json()["eventTypes"]
    assert "E0" in {t["eventType"] for t in types}


# --------------------------------------------------------------------------- secure node


def test_a_secure_node_serves_https_with_basic_auth(tmp_path: Path) -> None:
    users = Users.defaults(extra=[user("app", "app-secret")])
    with EmbeddedServer(
        data_dir=tmp_path, tls=True, users=users, http_port=0, projections=NO_PROJECTIONS
    ) as node:
        assert node.http_url.startswith("https://")
        context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca" / "ca.crt"))
        web = Http(node.http_url, context)
        stream = f"secure-{uuid4().hex}"
        admin, app = _basic("admin", "changeit"), _basic("app", "app-secret")
        body = json.dumps([{"eventId": str(uuid4()), "eventType": "S", "data": {}}]).encode()
        post = {"Content-Type": "application/vnd.eventstore.events+json"}
        assert web.request("POST", f"/streams/{stream}", post, body).status == 401
        as_app = {**post, "Authorization": app}
        assert web.request("POST", f"/streams/{stream}", as_app, body).status == 201
        anonymous = web.get(f"/streams/{stream}")
        assert anonymous.status == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
        assert web.get(f"/streams/{stream}", authorization=app).status == 200
        assert web.get(f"/streams/{stream}", authorization=_basic("app", "wrong")).status == 401
        assert web.get("/streams/%24all", authorization=app).status == 401  # admins only
        assert web.get("/streams/%24all", authorization=admin).status == 200
        assert web.get("/info", accept="application/json").json()["authentication"]["type"] == (
            "internal"
        )
        assert web.get("/web/index.html", accept="text/html").status == 200  # the UI is public


def _basic(name: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


# --------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_the_command_line_prints_the_http_url_after_the_connection_string() -> None:
    import subprocess
    import sys

    from tests.esdblocal.test_process import esdblocal

    with esdblocal("--memory") as (process, _):
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("esdblocal: stream browser and HTTP API at http://localhost:")
        url = line.rsplit(" ", 1)[1]
        assert url.endswith("/web/")
        web = Http(url.removesuffix("/web/"))
        assert web.get("/info", accept="application/json").json()["features"]["atomPub"] is True
        process.terminate()
        assert process.wait(timeout=10) == 0
    refused = subprocess.run(
        [sys.executable, "-m", "esdblocal", "--memory", "--web-ui", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2 and "no index.html" in refused.stderr
