"""EventStoreDB's AtomPub JSON: feeds and entries in the shapes its HTTP API answers.

Built from the server's ``Convert.cs`` (feeds, entries, the link relations at each edge),
``Feed.cs`` (field names, serialised camelCase by its JSON codec) and ``AtomSpecs`` (page
size 20). Pure functions over :class:`~esdblocal.store.Recorded`; the HTTP module reads the
log and chooses which of these to answer.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any
from urllib.parse import quote

from esdblocal.store import Recorded

FEED_PAGE_SIZE = 20  # AtomSpecs.FeedPageSize
AUTHOR = "EventStore"  # AtomSpecs.Author in 23.10/24.x ("Kurrent" from 25.0)
LINK_EVENT_TYPE = "$>"
ALL_ESCAPED = "%24all"
ALL_FILTERED_ESCAPED = "%24all/filtered"
MIN_DATE = "0001-01-01T00:00:00Z"  # DateTime.MinValue, what an empty feed shows as updated


class Embed(IntEnum):
    """``EmbedLevel``: how much of each event a feed entry carries (``?embed=``)."""

    NONE = 0
    CONTENT = 1
    RICH = 2
    BODY = 3
    PRETTY = 4
    TRYHARDER = 5

    @classmethod
    def parse(cls, value: str | None) -> Embed:
        return {
            "content": cls.CONTENT,
            "rich": cls.RICH,
            "body": cls.BODY,
            "pretty": cls.PRETTY,
            "tryharder": cls.TRYHARDER,
        }.get((value or "").lower(), cls.NONE)


@dataclass(frozen=True, slots=True)
class Resolved:
    """``ResolvedEvent``: the event, and the link that led to it (``$>``), if any.

    ``event`` is None for a link whose target is gone; ``original`` is what was read.
    """

    event: Recorded | None
    link: Recorded | None = None

    @property
    def original(self) -> Recorded:
        original = self.link if self.link is not None else self.event
        assert original is not None
        return original


def escape(stream: str) -> str:
    """``Uri.EscapeDataString``: everything but RFC 3986 unreserved characters."""
    return quote(stream, safe="-_.~")


def timestamp(ticks: int) -> str:
    """100 ns ticks since the Unix epoch → ISO 8601 UTC with 7 fractional digits, as .NET."""
    seconds, rest = divmod(ticks, 10_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:07d}Z"


def tf_pos(position: int) -> str:
    """``TFPos.AsString``: commit then prepare, 16 upper-case hex digits each."""
    return f"{position:016X}{position:016X}"


def parse_tf_pos(text: str) -> int | None:
    """``TFPos.TryParse`` (32 hex digits); esdblocal's commit and prepare are the same."""
    if len(text) != 32:
        return None
    try:
        commit, prepare = int(text[:16], 16), int(text[16:], 16)
    except ValueError:
        return None
    if commit >= 2**63 or prepare >= 2**63:
        return None
    return commit


def etag(version: int, content_type: str) -> str:
    """``version;hash``: the server uses the media type's .NET string hash; ours is CRC-32."""
    digest = zlib.crc32(content_type.encode())
    return f"{version};{digest - (1 << 32) if digest >= 1 << 31 else digest}"


def link_target(data: bytes) -> tuple[str, int] | None:
    """``N@stream`` → (stream, N)."""
    revision, sep, stream = data.decode(errors="replace").partition("@")
    if not sep:
        return None
    try:
        return stream, int(revision)
    except ValueError:
        return None


def _link(uri: str, relation: str) -> dict[str, str]:
    return {"uri": uri, "relation": relation}


def _pretty(text: str) -> str:
    """``FormatJson`` where it applies, else the text as it was ("we tried")."""
    try:
        return _format_json(text)
    except ValueError:
        return text


def _format_json(text: str) -> str:
    """``FormatJson``: an object re-indented (2 spaces); anything else raises ValueError."""
    if not text:
        return text
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return json.dumps(value, indent=2, ensure_ascii=False)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def is_json(record: Recorded) -> bool:
    return record.content_type == "application/json"


def data_dto(record: Recorded) -> dict[str, Any]:
    """``ReadEventCompletedText`` via ``CreateDataDto``: JSON data and metadata parsed."""
    data: Any = _text(record.data)
    metadata: Any = _text(record.metadata)
    if is_json(record):
        data = _parse_or(data)
        metadata = _parse_or(metadata)
    return {
        "eventStreamId": record.stream,
        "eventNumber": record.revision,
        "eventType": record.type,
        "eventId": record.event_id,
        "data": data,
        "metadata": metadata,
    }


def _parse_or(text: str) -> Any:
    try:
        return json.loads(text) if text else text
    except ValueError:
        return text


def entry(
    resolved: Resolved, base: str, embed: Embed, single_entry: bool = False
) -> dict[str, Any]:
    """``Convert.ToEntry``: one event (or link) as a feed entry."""
    event, link = resolved.event, resolved.link
    out: dict[str, Any] = {}
    if embed > Embed.CONTENT and event is not None:
        out.update(_rich(resolved, event, embed))
    if event is not None and link is None:
        stream, number, ticks, summary = event.stream, event.revision, event.created, event.type
    elif link is not None:
        target = link_target(link.data) or (link.stream, link.revision)
        stream, number = target
        ticks, summary = link.created, LINK_EVENT_TYPE
    else:  # pragma: no cover - a Resolved always has one of them
        raise ValueError("nothing to show")
    uri = f"{base}/streams/{escape(stream)}/{number}"
    out["title"] = f"{number}@{stream}"
    out["id"] = uri
    out["updated"] = timestamp(ticks)
    out["author"] = {"name": AUTHOR}
    out["summary"] = summary
    if (
        event is not None
        and link is None
        and (single_entry or embed == Embed.CONTENT)
        and is_json(event)
    ):
        out["content"] = data_dto(event)
    out["links"] = [_link(uri, "edit"), _link(uri, "alternate")]
    return out


def _rich(resolved: Resolved, event: Recorded, embed: Embed) -> dict[str, Any]:
    """``RichEntryElement``'s own fields, filled as far as ``embed`` asks, in its order."""
    json_flag = is_json(event)
    data: str | None = None
    metadata: str | None = None
    link_metadata: str | None = None
    is_metadata = is_link_metadata = False
    if embed >= Embed.BODY:
        text = _text(event.data)
        if json_flag:
            data = _pretty(text) if embed >= Embed.PRETTY else text
        elif embed >= Embed.TRYHARDER:
            data = text
            with contextlib.suppress(ValueError):
                data = _format_json(text)
                json_flag = True
        metadata = _text(event.metadata)
        is_metadata = bool(metadata)
        metadata = (_pretty(metadata) if embed >= Embed.PRETTY else metadata) or None
        if resolved.link is not None:
            link_metadata = _text(resolved.link.metadata)
            is_link_metadata = bool(link_metadata)
            if embed >= Embed.PRETTY:
                link_metadata = _pretty(link_metadata)
    rich: dict[str, Any] = {
        "eventId": event.event_id,
        "eventType": event.type,
        "eventNumber": event.revision,
        "data": data,
        "metaData": metadata,
        "linkMetaData": link_metadata,
        "streamId": event.stream,
        "isJson": json_flag,
        "isMetaData": is_metadata,
        "isLinkMetaData": is_link_metadata,
        "positionEventNumber": resolved.original.revision,
        "positionStreamId": resolved.original.stream,
    }
    return {key: value for key, value in rich.items() if value is not None}


def _feed(title: str, self_uri: str, updated: str) -> dict[str, Any]:
    return {"title": title, "id": self_uri, "updated": updated}


def _stream_feed(
    base: str, stream: str, events: list[Resolved], head_of_stream: bool
) -> tuple[str, str, dict[str, Any]]:
    """What both directions of a stream's feed start with: (escaped name, self, feed)."""
    escaped = escape(stream)
    self_uri = f"{base}/streams/{escaped}"
    updated = timestamp(events[0].original.created) if events else MIN_DATE
    feed = _feed(f"Event stream '{stream}'", self_uri, updated)
    feed["streamId"] = stream
    feed["author"] = {"name": AUTHOR}
    feed["headOfStream"] = head_of_stream
    return escaped, self_uri, feed


def stream_backward_feed(
    base: str,
    stream: str,
    events: list[Resolved],
    from_number: int,
    count: int,
    last_number: int,
    end_of_stream: bool,
    head_of_stream: bool,
    content_type: str,
    embed: Embed,
) -> dict[str, Any]:
    """``ToStreamEventBackwardFeed``: a page read backwards from ``from_number``."""
    escaped, self_uri, feed = _stream_feed(base, stream, events, head_of_stream)
    feed["selfUrl"] = self_uri
    if head_of_stream:
        feed["eTag"] = etag(last_number, content_type)
    previous = min(from_number, last_number) + 1
    following = from_number - count
    links = [
        _link(self_uri, "self"),
        _link(f"{base}/streams/{escaped}/head/backward/{count}", "first"),
    ]
    if not end_of_stream:
        links.append(_link(f"{base}/streams/{escaped}/0/forward/{count}", "last"))
        links.append(_link(f"{base}/streams/{escaped}/{following}/backward/{count}", "next"))
    links.append(_link(f"{base}/streams/{escaped}/{previous}/forward/{count}", "previous"))
    links.append(_link(f"{base}/streams/{escaped}/metadata", "metadata"))
    feed["links"] = links
    feed["entries"] = [entry(e, base, embed) for e in events]
    return feed


def stream_forward_feed(
    base: str,
    stream: str,
    events: list[Resolved],
    from_number: int,
    count: int,
    last_number: int,
    end_of_stream: bool,
    embed: Embed,
) -> dict[str, Any]:
    """``ToStreamEventForwardFeed``: a page read forwards from ``from_number`` (oldest last)."""
    escaped, self_uri, feed = _stream_feed(base, stream, events, end_of_stream)
    previous = min(from_number + count - 1, last_number) + 1
    following = from_number - 1
    links = [
        _link(self_uri, "self"),
        _link(f"{base}/streams/{escaped}/head/backward/{count}", "first"),
    ]
    if following >= 0:
        links.append(_link(f"{base}/streams/{escaped}/0/forward/{count}", "last"))
        links.append(_link(f"{base}/streams/{escaped}/{following}/backward/{count}", "next"))
    if not end_of_stream or events:
        links.append(_link(f"{base}/streams/{escaped}/{previous}/forward/{count}", "previous"))
    if not escaped.startswith("$$"):
        links.append(_link(f"{base}/streams/{escaped}/metadata", "metadata"))
    feed["links"] = links
    feed["entries"] = [entry(e, base, embed) for e in reversed(events)]
    return feed


def all_backward_feed(
    base: str,
    events: list[Resolved],
    count: int,
    end_of_stream: bool,
    next_position: int,
    previous_position: int,
    embed: Embed,
    filtered: str | None = None,
) -> dict[str, Any]:
    """``ToAllEventsBackwardFeed``: ``$all`` before a position, newest first.

    ``next_position``: where the following (older) page reads back from;
    ``previous_position``: where the newer page reads forward from.
    """
    path = ALL_FILTERED_ESCAPED if filtered is not None else ALL_ESCAPED
    query = f"?{filtered}" if filtered else ""
    self_uri = f"{base}/streams/{path}"
    feed = _feed(
        "All events", self_uri, timestamp(events[0].original.created) if events else MIN_DATE
    )
    feed["author"] = {"name": AUTHOR}
    feed["headOfStream"] = False
    links = [
        _link(self_uri, "self"),
        _link(f"{base}/streams/{path}/head/backward/{count}{query}", "first"),
    ]
    if not end_of_stream:
        links.append(_link(f"{base}/streams/{path}/{tf_pos(0)}/forward/{count}{query}", "last"))
        links.append(
            _link(f"{base}/streams/{path}/{tf_pos(next_position)}/backward/{count}{query}", "next")
        )
    links.append(
        _link(
            f"{base}/streams/{path}/{tf_pos(previous_position)}/forward/{count}{query}",
            "previous",
        )
    )
    if filtered is None:  # the filtered feeds have no metadata link
        links.append(_link(f"{base}/streams/{ALL_ESCAPED}/metadata", "metadata"))
    feed["links"] = links
    feed["entries"] = [entry(e, base, embed) for e in events]
    return feed


def all_forward_feed(
    base: str,
    events: list[Resolved],
    count: int,
    current_position: int,
    end_of_stream: bool,
    next_position: int,
    previous_position: int,
    embed: Embed,
    filtered: str | None = None,
) -> dict[str, Any]:
    """``ToAllEventsForwardFeed``: ``$all`` from a position, entries newest first.

    ``previous_position``: where the newer page reads forward from (after the last event);
    ``next_position``: where the older page reads back from (the first event).
    """
    path = ALL_FILTERED_ESCAPED if filtered is not None else ALL_ESCAPED
    query = f"?{filtered}" if filtered else ""
    self_uri = f"{base}/streams/{path}"
    feed = _feed(
        "All events", self_uri, timestamp(events[-1].original.created) if events else MIN_DATE
    )
    feed["author"] = {"name": AUTHOR}
    feed["headOfStream"] = False
    links = [
        _link(self_uri, "self"),
        _link(f"{base}/streams/{path}/head/backward/{count}{query}", "first"),
    ]
    if current_position != 0:
        links.append(_link(f"{base}/streams/{path}/{tf_pos(0)}/forward/{count}{query}", "last"))
        links.append(
            _link(f"{base}/streams/{path}/{tf_pos(next_position)}/backward/{count}{query}", "next")
        )
    if not end_of_stream or events:
        links.append(
            _link(
                f"{base}/streams/{path}/{tf_pos(previous_position)}/forward/{count}{query}",
                "previous",
            )
        )
    if filtered is None:  # the filtered feeds have no metadata link
        links.append(_link(f"{base}/streams/{ALL_ESCAPED}/metadata", "metadata"))
    feed["links"] = links
    feed["entries"] = [entry(e, base, embed) for e in reversed(events)]
    return feed
