"""Delete (soft) and Tombstone (final), and stream metadata through $$stream."""

from __future__ import annotations

import time

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound, StreamIsDeleted, WrongCurrentVersion

DELETED_STREAM = 2**63 - 1


def new(kind: str = "E") -> NewEvent:
    return NewEvent(type=kind, data=b"{}")


def two_events(client: EventStoreDBClient, stream: str) -> None:
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=[new(), new()])


class TestSoftDelete:
    @pytest.mark.parametrize(
        "expected", [StreamState.ANY, StreamState.NO_STREAM, StreamState.EXISTS, 0]
    )
    def test_stream_that_never_existed_is_not_found(
        self, client: EventStoreDBClient, stream_name: str, expected: int | StreamState
    ) -> None:
        with pytest.raises(NotFound):
            client.delete_stream(stream_name, current_version=expected)

    def test_wrong_version_then_right_version(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        two_events(client, stream_name)
        with pytest.raises(WrongCurrentVersion):
            client.delete_stream(stream_name, current_version=0)
        client.delete_stream(stream_name, current_version=1)
        # A soft-deleted stream keeps its last version for later checks.
        with pytest.raises(WrongCurrentVersion):
            client.delete_stream(stream_name, current_version=0)
        client.delete_stream(stream_name, current_version=1)
        client.delete_stream(stream_name, current_version=StreamState.ANY)
        with pytest.raises(StreamIsDeleted):
            client.delete_stream(stream_name, current_version=StreamState.EXISTS)
        with pytest.raises(NotFound):
            client.get_stream(stream_name)
        assert client.get_current_version(stream_name) is StreamState.NO_STREAM

    @pytest.mark.parametrize("recreate_with", [StreamState.NO_STREAM, 1, StreamState.ANY])
    def test_recreated_stream_continues_its_numbering(
        self, client: EventStoreDBClient, stream_name: str, recreate_with: int | StreamState
    ) -> None:
        two_events(client, stream_name)
        client.delete_stream(stream_name, current_version=1)
        with pytest.raises(WrongCurrentVersion):
            client.append_to_stream(stream_name, current_version=0, events=[new("Again")])
        client.append_to_stream(stream_name, current_version=recreate_with, events=[new("Again")])
        assert client.get_current_version(stream_name) == 2
        client.append_to_stream(stream_name, current_version=2, events=[new("More")])
        recorded = client.get_stream(stream_name)
        assert [(e.type, e.stream_position) for e in recorded] == [("Again", 2), ("More", 3)]
        metadata, _ = client.get_stream_metadata(stream_name)
        assert metadata["$tb"] == 2

    def test_soft_delete_writes_truncate_before_metadata(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        two_events(client, stream_name)
        client.delete_stream(stream_name, current_version=StreamState.EXISTS)
        metadata, version = client.get_stream_metadata(stream_name)
        assert metadata == {"$tb": DELETED_STREAM}
        assert version == 0

    def test_deleted_events_stay_in_all(self, client: EventStoreDBClient, stream_name: str) -> None:
        two_events(client, stream_name)
        client.delete_stream(stream_name, current_version=1)
        in_all = client.read_all(filter_include=[stream_name], filter_by_stream_name=True)
        assert len(list(in_all)) == 2


class TestTombstone:
    def test_is_final(self, client: EventStoreDBClient, stream_name: str) -> None:
        two_events(client, stream_name)
        with pytest.raises(WrongCurrentVersion):
            client.tombstone_stream(stream_name, current_version=0)
        client.tombstone_stream(stream_name, current_version=1)
        for current_version in (1, StreamState.ANY):
            with pytest.raises(StreamIsDeleted):
                client.tombstone_stream(stream_name, current_version=current_version)
        with pytest.raises(StreamIsDeleted):
            client.delete_stream(stream_name, current_version=StreamState.ANY)
        with pytest.raises(StreamIsDeleted):
            client.get_stream(stream_name)
        with pytest.raises(StreamIsDeleted):
            client.get_current_version(stream_name)
        with pytest.raises(StreamIsDeleted):
            client.append_to_stream(stream_name, current_version=1, events=[new()])

    def test_any_seals_a_stream_that_never_existed(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.tombstone_stream(stream_name, current_version=StreamState.ANY)
        with pytest.raises(StreamIsDeleted):
            client.append_to_stream(
                stream_name, current_version=StreamState.NO_STREAM, events=[new()]
            )

    def test_exists_on_missing_stream_is_not_found(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        with pytest.raises(NotFound):
            client.tombstone_stream(stream_name, current_version=StreamState.EXISTS)

    def test_after_soft_delete(self, client: EventStoreDBClient, stream_name: str) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[new()])
        client.delete_stream(stream_name, current_version=0)
        client.tombstone_stream(stream_name, current_version=0)
        with pytest.raises(StreamIsDeleted):
            client.get_stream(stream_name)

    def test_tombstone_is_visible_in_all(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[new()])
        client.tombstone_stream(stream_name, current_version=0)
        # The newest event of the stream in $all (the system projections may link after it).
        last = next(
            e
            for e in client.read_all(backwards=True, limit=50, filter_exclude=[])
            if e.stream_name == stream_name
        )
        assert (last.type, last.stream_name, last.stream_position) == (
            "$streamDeleted",
            stream_name,
            DELETED_STREAM,
        )


class TestStreamMetadata:
    def test_get_and_set(self, client: EventStoreDBClient, stream_name: str) -> None:
        assert client.get_stream_metadata(stream_name) == ({}, StreamState.NO_STREAM)
        client.set_stream_metadata(
            stream_name, metadata={"foo": "baz"}, current_version=StreamState.NO_STREAM
        )
        metadata, version = client.get_stream_metadata(stream_name)
        assert (metadata, version) == ({"foo": "baz"}, 0)
        acl = {"$acl": {"$w": "admin", "$r": ["$all"], "$d": "$admins", "$mw": [], "$mr": "$all"}}
        client.set_stream_metadata(stream_name, metadata=acl, current_version=0)
        assert client.get_stream_metadata(stream_name) == (acl, 1)
        with pytest.raises(WrongCurrentVersion):
            client.set_stream_metadata(stream_name, metadata={}, current_version=10)

    def test_metastream_keeps_only_its_last_event(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        for value in ("a", "b", "c"):
            client.set_stream_metadata(stream_name, metadata={"v": value})
        (only,) = client.get_stream("$$" + stream_name)
        assert (only.stream_position, only.data) == (2, b'{"v": "c"}')

    def test_tombstoned_stream_metadata_reads_as_deleted_but_can_be_written(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.set_stream_metadata(stream_name, metadata={"foo": "bar"})
        client.set_stream_metadata(stream_name, metadata={"foo": "baz"})
        client.tombstone_stream(stream_name, current_version=StreamState.ANY)
        with pytest.raises(StreamIsDeleted):
            client.get_stream_metadata(stream_name)
        client.set_stream_metadata(stream_name, metadata={"x": 1}, current_version=1)

    def test_max_count_hides_older_events(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=[new(f"E{i}") for i in range(5)]
        )
        client.set_stream_metadata(stream_name, metadata={"$maxCount": 2})
        assert [e.type for e in client.get_stream(stream_name)] == ["E3", "E4"]
        assert [e.type for e in client.get_stream(stream_name, backwards=True)] == ["E4", "E3"]
        assert client.get_stream(stream_name, stream_position=0, limit=1)[0].type == "E3"

    def test_truncate_before_hides_older_events(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=[new(f"E{i}") for i in range(5)]
        )
        client.set_stream_metadata(stream_name, metadata={"$tb": 3})
        assert [e.type for e in client.get_stream(stream_name)] == ["E3", "E4"]
        client.set_stream_metadata(stream_name, metadata={"$tb": 10})
        assert client.get_stream(stream_name) == ()  # truncated, not "not found"

    def test_max_age_hides_events_older_than_it(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=[new("Old")])
        time.sleep(1.1)
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=[new("New")])
        client.set_stream_metadata(stream_name, metadata={"$maxAge": 1})
        assert [e.type for e in client.get_stream(stream_name)] == ["New"]
