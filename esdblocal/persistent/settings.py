"""A subscription group's settings, its start, its filter, and the config entry they persist as.

The field names of :class:`Settings` follow ``PersistentSubscriptionParams``; ``to_entry`` and
``from_entry`` write and read the ``PersistentSubscriptionEntry`` JSON the real server keeps in
``$persistentSubscriptionConfig`` (camelCase, as its Newtonsoft serializer writes it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from esdblocal.store import Recorded

ALL = "$all"
STRATEGIES = ("DispatchToSingle", "RoundRobin", "Pinned", "PinnedByCorrelation")


class InvalidSettings(Exception):
    """The server's "Fail" answer: INTERNAL "Subscription group … failed: '<reason>'"."""


@dataclass(frozen=True, slots=True)
class Start:
    """Where a group starts: a stream revision, or a commit/prepare position in $all.

    ``-1`` (both, for $all) is the end: only events written after the group starts.
    """

    revision: int = 0  # a stream's; -1: the end
    commit: int = 0  # $all's
    prepare: int = 0

    def is_end(self, stream: str) -> bool:
        return self.commit == -1 if stream == ALL else self.revision == -1

    def text(self, stream: str) -> str:
        """As the server shows it in GetInfo's ``start_from``."""
        if stream == ALL:
            return f"C:{self.commit}/P:{self.prepare}"
        return str(self.revision)

    @classmethod
    def parse(cls, stream: str, text: str) -> Start:
        if stream == ALL:
            commit, _, prepare = text.partition("/")
            return cls(0, int(commit.removeprefix("C:")), int(prepare.removeprefix("P:")))
        return cls(int(text))


@dataclass(frozen=True, slots=True)
class Filter:
    """A $all group's filter: ``context`` "eventtype" or "streamid", a regex or prefixes."""

    context: str
    kind: str  # "regex" | "prefix"
    data: str  # the regex, or the prefixes joined by ","

    def compile(self) -> Callable[[Recorded], bool]:
        by_stream = self.context == "streamid"
        if self.kind == "regex":
            search = re.compile(self.data).search

            def matches(value: str) -> bool:
                return search(value) is not None
        else:
            prefixes = tuple(self.data.split(","))

            def matches(value: str) -> bool:
                return value.startswith(prefixes)

        def allowed(record: Recorded) -> bool:
            return matches(record.stream if by_stream else record.type)

        return allowed


def default_all_filter(record: Recorded) -> bool:
    """What every $all group skips (``DefaultAllFilterStrategy``): its own bookkeeping."""
    stream = record.stream
    if not stream.startswith("$"):
        return True
    if stream == "$epoch-information":
        return False
    return not (
        stream.startswith("$persistentsubscription-$all::")
        and (stream.endswith("-checkpoint") or stream.endswith("-parked"))
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a Create or Update sets; times in milliseconds, as the wire carries them."""

    resolve_links: bool = False
    start: Start = field(default_factory=Start)
    extra_statistics: bool = False
    message_timeout_ms: int = 30_000
    max_retry_count: int = 10
    live_buffer_size: int = 500
    read_batch_size: int = 20
    history_buffer_size: int = 500
    checkpoint_after_ms: int = 2_000
    min_checkpoint_count: int = 10
    max_checkpoint_count: int = 1_000
    max_subscriber_count: int = 0  # 0: no limit
    consumer_strategy: str = "RoundRobin"

    def validate(self, stream: str, head: int) -> None:
        """The checks the server makes before it creates or replaces a group.

        ``head`` is the position of the last event in the log (for a $all start).
        """
        if self.consumer_strategy not in STRATEGIES:
            raise InvalidSettings(f"Consumer strategy {self.consumer_strategy} does not exist.")
        start = self.start
        if stream != ALL:
            if start.revision < -1:
                raise InvalidSettings(
                    "Invalid Start From position: event number must be greater than or equal to -1."
                )
        else:
            if start.prepare > start.commit:
                raise InvalidSettings(
                    "Invalid Start From position: prepare position must be less than or equal"
                    " to the commit position."
                )
            if start.commit > head:
                raise InvalidSettings(
                    "Invalid Start From position: commit position must be less than or equal"
                    " to the last commit position in the transaction file."
                )
            if (start.prepare <= -1 or start.commit <= -1) and not (
                start.prepare == -1 and start.commit == -1
            ):
                raise InvalidSettings(
                    "Invalid Start From position: prepare and commit positions must be greater"
                    " than or equal to 0 or both equal to -1."
                )
        if self.read_batch_size >= self.history_buffer_size:
            # PersistentSubscription's constructor throws ArgumentOutOfRangeException(paramName).
            raise InvalidSettings(
                "Specified argument was out of the range of valid values. (Parameter"
                " 'ReadBatchSize may not be greater than or equal to BufferSize')"
            )


def to_entry(
    stream: str, group: str, settings: Settings, event_filter: Filter | None
) -> dict[str, Any]:
    """The ``PersistentSubscriptionEntry`` the server writes for a group."""
    entry: dict[str, Any] = {"stream": stream, "group": group}
    if event_filter is not None:
        entry["filter"] = asdict(event_filter) | {"type": event_filter.kind}
        del entry["filter"]["kind"]
    start = settings.start
    entry |= {
        "resolveLinkTos": settings.resolve_links,
        "extraStatistics": settings.extra_statistics,
        "messageTimeout": settings.message_timeout_ms,
        "startFrom": start.revision if stream != ALL else -(2**63),
        "startPosition": start.text(stream),
        "liveBufferSize": settings.live_buffer_size,
        "historyBufferSize": settings.history_buffer_size,
        "maxRetryCount": settings.max_retry_count,
        "readBatchSize": settings.read_batch_size,
        "preferRoundRobin": settings.consumer_strategy == "RoundRobin",
        "checkPointAfter": settings.checkpoint_after_ms,
        "minCheckPointCount": settings.min_checkpoint_count,
        "maxCheckPointCount": settings.max_checkpoint_count,
        "maxSubscriberCount": settings.max_subscriber_count,
        "namedConsumerStrategy": settings.consumer_strategy,
    }
    return entry


def from_entry(entry: dict[str, Any]) -> tuple[str, str, Settings, Filter | None]:
    """(stream, group, settings, filter) from a stored entry (version 1 entries included)."""
    stream = str(entry["stream"])
    raw_filter = entry.get("filter")
    event_filter = (
        Filter(raw_filter["context"], raw_filter["type"], raw_filter["data"])
        if isinstance(raw_filter, dict)
        else None
    )
    position = entry.get("startPosition")
    start = (
        Start.parse(stream, position)
        if isinstance(position, str)
        else Start(int(entry.get("startFrom", 0)))
    )
    strategy = entry.get("namedConsumerStrategy") or (
        "RoundRobin" if entry.get("preferRoundRobin") else "DispatchToSingle"
    )
    settings = Settings(
        resolve_links=bool(entry.get("resolveLinkTos", False)),
        start=start,
        extra_statistics=bool(entry.get("extraStatistics", False)),
        message_timeout_ms=int(entry.get("messageTimeout", 0)),
        max_retry_count=int(entry.get("maxRetryCount", 0)),
        live_buffer_size=int(entry.get("liveBufferSize", 0)),
        history_buffer_size=int(entry.get("historyBufferSize", 0)),
        read_batch_size=int(entry.get("readBatchSize", 0)),
        checkpoint_after_ms=int(entry.get("checkPointAfter", 0)),
        min_checkpoint_count=int(entry.get("minCheckPointCount", 0)),
        max_checkpoint_count=int(entry.get("maxCheckPointCount", 0)),
        max_subscriber_count=int(entry.get("maxSubscriberCount", 0)),
        consumer_strategy=str(strategy),
    )
    return stream, str(entry["group"]), settings, event_filter
