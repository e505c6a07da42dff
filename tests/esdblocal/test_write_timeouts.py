"""--commit-timeout-ms: a write the log cannot commit in time is answered as the real
server's request manager answers it ("Operation timed out: Commit phase timeout.", which
esdbclient raises as AbortedByServer), and, as there, it may still commit afterwards."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import AbortedByServer

from esdblocal import EmbeddedServer
from esdblocal.__main__ import parse_args
from esdblocal.server import DB_FILE, DatabaseOptions
from esdblocal.services.shared import timeout_tick

TIMEOUT_MS = 300


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path, database=DatabaseOptions(TIMEOUT_MS)) as running:
        yield running


def test_a_write_that_cannot_commit_in_time_times_out_and_commits_later(
    server: EmbeddedServer, tmp_path: Path, stream_name: str
) -> None:
    with EventStoreDBClient(server.uri) as client:
        client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[
            NewEvent(type="Before", data=b"{}")
        ])  # fmt: skip
        # Another process holds the database's write lock: the writer cannot commit.
        blocker = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(AbortedByServer):
                client.append_to_stream(
                    stream_name, current_version=0, events=NewEvent(type="Late", data=b"{}")
                )
            assert time.monotonic() - started < 3  # the timeout, not the lock, ended it
        finally:
            blocker.rollback()
            blocker.close()
        # Once the lock goes, the write goes through, as on the real server.
        deadline = time.monotonic() + 10
        types: list[str] = []
        while time.monotonic() < deadline:
            types = [e.type for e in client.get_stream(stream_name)]
            if types == ["Before", "Late"]:
                break
            time.sleep(0.05)
        assert types == ["Before", "Late"]


def test_timeout_flags_have_the_real_servers_names_and_defaults() -> None:
    args = parse_args(["--memory"])
    assert (args.commit_timeout_ms, args.prepare_timeout_ms) == (2_000, 2_000)
    args = parse_args(["--memory", "--commit-timeout-ms", "50", "--prepare-timeout-ms", "70"])
    assert DatabaseOptions(args.commit_timeout_ms, args.prepare_timeout_ms) == DatabaseOptions(
        50, 70
    )


def test_timeouts_are_checked_on_the_request_managers_one_second_tick(stream_name: str) -> None:
    """The Node client's suite runs a node with a 1 ms commit timeout and expects a small
    append to succeed: the real request manager looks at timeouts once a second."""
    assert timeout_tick(10.2, 0.001) == 11.0  # the next tick after 10.231
    assert timeout_tick(10.9, 0.001) == 11.0
    assert timeout_tick(10.98, 0.001) == 12.0  # 11.011 is past the tick at 11
    assert timeout_tick(3.0, 2.0) == 6.0  # the default 2 s: at most a second later
    with (
        EmbeddedServer(database=DatabaseOptions(1, 1)) as quick,
        EventStoreDBClient(quick.uri) as client,
    ):
        for number in range(5):
            client.append_to_stream(
                stream_name, current_version=StreamState.ANY, events=NewEvent(f"E{number}", b"{}")
            )
        assert len(client.get_stream(stream_name)) == 5
