"""Streams.Read without subscription: one stream, or $all, with the real server's rules."""

from __future__ import annotations

from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound, UnknownError

from esdblocal import EmbeddedServer


def append(client: EventStoreDBClient, stream: str, *types: str) -> int:
    return client.append_to_stream(
        stream,
        current_version=StreamState.ANY,
        events=[NewEvent(type=t, data=b"{}") for t in types],
    )


class TestStreamReads:
    @pytest.fixture
    def stream(self, client: EventStoreDBClient, stream_name: str) -> str:
        append(client, stream_name, "E0", "E1", "E2", "E3", "E4")
        return stream_name

    @pytest.mark.parametrize(
        ("kwargs", "types"),
        [
            ({}, ["E0", "E1", "E2", "E3", "E4"]),
            ({"backwards": True}, ["E4", "E3", "E2", "E1", "E0"]),
            ({"stream_position": 2}, ["E2", "E3", "E4"]),  # inclusive
            ({"stream_position": 2, "backwards": True}, ["E2", "E1", "E0"]),  # inclusive
            ({"limit": 2}, ["E0", "E1"]),
            ({"backwards": True, "limit": 1}, ["E4"]),
            ({"stream_position": 1, "limit": 2}, ["E1", "E2"]),
            ({"stream_position": 5}, []),  # past the end: empty, not "not found"
            ({"stream_position": 99, "backwards": True, "limit": 1}, ["E4"]),
        ],
    )
    def test_directions_positions_and_limits(
        self, client: EventStoreDBClient, stream: str, kwargs: dict[str, object], types: list[str]
    ) -> None:
        assert [e.type for e in client.get_stream(stream, **kwargs)] == types  # type: ignore[arg-type]

    def test_every_event_carries_its_own_position(
        self, client: EventStoreDBClient, stream: str
    ) -> None:
        recorded = client.get_stream(stream)
        positions = [e.commit_position for e in recorded]
        assert all(p is not None and p > 0 for p in positions)
        assert positions == sorted(set(positions))
        assert all(e.prepare_position == e.commit_position for e in recorded)
        assert [e.stream_position for e in recorded] == [0, 1, 2, 3, 4]

    def test_missing_stream_is_not_found(self, client: EventStoreDBClient) -> None:
        missing = f"test-{uuid4()}"
        for kwargs in ({}, {"backwards": True}, {"stream_position": 1, "limit": 10}):
            with pytest.raises(NotFound):
                client.get_stream(missing, **kwargs)  # type: ignore[arg-type]
        assert client.get_current_version(missing) is StreamState.NO_STREAM

    def test_current_version(self, client: EventStoreDBClient, stream: str) -> None:
        assert client.get_current_version(stream) == 4

    def test_long_stream_reads_across_pages(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        total = 1_300  # more than two of the server's pages
        for start in range(0, total, 500):
            append(client, stream_name, *[f"N{i}" for i in range(start, min(total, start + 500))])
        forwards = client.get_stream(stream_name)
        assert [e.stream_position for e in forwards] == list(range(total))
        backwards = client.get_stream(stream_name, backwards=True)
        assert [e.stream_position for e in backwards] == list(reversed(range(total)))
        assert len(client.get_stream(stream_name, stream_position=700, limit=600)) == 600


class TestReadAll:
    """Forwards from a position is inclusive; backwards from a position is exclusive."""

    @pytest.fixture
    def two_streams(self, client: EventStoreDBClient) -> tuple[list[str], int, int]:
        first, second = f"test-{uuid4()}", f"test-{uuid4()}"
        cp1 = append(client, first, "A1", "A2", "A3")
        cp2 = append(client, second, "B1", "B2", "B3")
        return [first, second], cp1, cp2

    def test_forwards_from_position_is_inclusive(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        _, cp1, cp2 = two_streams
        assert [e.type for e in client.read_all(commit_position=cp1)] == ["A3", "B1", "B2", "B3"]
        assert [e.type for e in client.read_all(commit_position=cp2)] == ["B3"]
        assert [e.type for e in client.read_all(commit_position=cp1, limit=2)] == ["A3", "B1"]

    def test_backwards_from_position_is_exclusive(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        _, cp1, cp2 = two_streams
        back = [e.type for e in client.read_all(commit_position=cp2, backwards=True, limit=3)]
        assert back == ["B2", "B1", "A3"]
        back = [e.type for e in client.read_all(commit_position=cp1, backwards=True, limit=2)]
        assert back == ["A2", "A1"]

    def test_a_position_that_is_no_events_is_invalid(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        """24.x: UNKNOWN "Unexpected ReadAllResult: InvalidPosition" (Filtered… when
        filtered), which esdbclient raises as UnknownError (eventsourcing's test expects it)."""
        _, cp1, cp2 = two_streams
        with pytest.raises(UnknownError) as plain:
            list(client.read_all(commit_position=cp1 + 1, filter_exclude=()))
        assert "Unexpected ReadAllResult: InvalidPosition" in str(plain.value)
        with pytest.raises(UnknownError) as filtered:
            list(client.read_all(commit_position=cp1 + 1))  # esdbclient hides $ events
        assert "Unexpected FilteredReadAllResult: InvalidPosition" in str(filtered.value)
        with pytest.raises(UnknownError):
            list(client.read_all(commit_position=cp2 - 1, backwards=True))
        # The start, an event's own position and past the last event are all valid.
        assert list(client.read_all(commit_position=0, limit=1))
        assert [e.type for e in client.read_all(commit_position=cp2 + 10**9)] == []

    def test_backwards_from_end_and_commit_position(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        _, _, cp2 = two_streams
        assert [e.type for e in client.read_all(backwards=True, limit=2)] == ["B3", "B2"]
        assert client.get_commit_position() == cp2

    def test_everything_filtered_out_gives_position_zero(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        assert client.get_commit_position(filter_exclude=[".*"]) == 0

    @pytest.mark.parametrize(
        ("include", "exclude", "expected"),
        [
            (["A1"], [], ["A1"]),
            (["A1", "B2"], [], ["A1", "B2"]),
            (["A"], [], []),  # the client anchors the pattern: no partial match
            (["A.*"], [], ["A1", "A2", "A3"]),
            ([".*3"], [], ["A3", "B3"]),
            ([], ["A.*"], ["B1", "B2", "B3"]),
            ([], ["A"], ["A1", "A2", "A3", "B1", "B2", "B3"]),
        ],
    )
    def test_event_type_filters(
        self,
        client: EventStoreDBClient,
        two_streams: tuple[list[str], int, int],
        include: list[str],
        exclude: list[str],
        expected: list[str],
    ) -> None:
        _, cp1, _ = two_streams
        start = cp1
        for recorded in client.read_all(commit_position=cp1, backwards=True, limit=2):
            start = recorded.commit_position or start
        kwargs: dict[str, object] = {"commit_position": start}
        if include:
            kwargs["filter_include"] = include
        if exclude:
            kwargs["filter_exclude"] = [r"\$.+", *exclude]
        assert [e.type for e in client.read_all(**kwargs)] == expected  # type: ignore[arg-type]

    def test_stream_name_filters(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        (first, second), _, _ = two_streams
        only_second = client.read_all(filter_include=[second], filter_by_stream_name=True)
        assert [e.type for e in only_second] == ["B1", "B2", "B3"]
        prefix = first[:-6] + ".*"
        by_prefix = client.read_all(filter_include=[prefix], filter_by_stream_name=True)
        assert [e.stream_name for e in by_prefix] == [first] * 3

    def test_default_filter_hides_system_events_but_all_starts_with_one(
        self, client: EventStoreDBClient, two_streams: tuple[list[str], int, int]
    ) -> None:
        assert not any(e.type.startswith("$") for e in client.read_all())
        first = next(iter(client.read_all(filter_exclude=[])))
        assert first.type.startswith("$")
        assert first.commit_position is not None and first.commit_position > 0


def test_read_all_is_empty_of_user_events_on_a_fresh_server() -> None:
    with EmbeddedServer() as server, EventStoreDBClient(server.uri) as fresh:
        assert list(fresh.read_all()) == []
        assert fresh.get_commit_position() == 0
        system = list(fresh.read_all(filter_exclude=[]))
        assert system and all(e.type.startswith("$") for e in system)


def test_links_resolve_to_their_targets(client: EventStoreDBClient, stream_name: str) -> None:
    append(client, stream_name, "Target0", "Target1")
    links = f"links-{uuid4()}"
    client.append_to_stream(
        links,
        current_version=StreamState.NO_STREAM,
        events=[NewEvent(type="$>", data=f"1@{stream_name}".encode(), content_type="text/plain")],
    )
    (unresolved,) = client.get_stream(links)
    assert (unresolved.type, unresolved.link) == ("$>", None)
    (resolved,) = client.get_stream(links, resolve_links=True)
    assert (resolved.type, resolved.stream_name, resolved.stream_position) == (
        "Target1",
        stream_name,
        1,
    )
    assert resolved.link is not None and resolved.link.stream_name == links
