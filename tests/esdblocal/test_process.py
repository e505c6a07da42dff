"""esdblocal as its own process: the command line, clean stops, and kill -9 durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

pytestmark = pytest.mark.slow


@contextmanager
def esdblocal(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``python -m esdblocal`` on a free port; yield the process and its URI."""
    process = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        uri = process.stdout.readline().strip()
        assert uri.startswith("esdb://127.0.0.1:") and uri.endswith("?tls=false"), uri
        yield process, uri
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_prints_uri_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with esdblocal("--data", str(tmp_path / "esdb")) as (process, uri):
        with EventStoreDBClient(uri) as client:
            client.append_to_stream(
                "cli-1", current_version=StreamState.ANY, events=NewEvent(type="X", data=b"")
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert (tmp_path / "esdb" / "log.sqlite3").exists()


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    with esdblocal("--memory") as (process, _):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_memory_mode_keeps_nothing(tmp_path: Path) -> None:
    with esdblocal("--memory") as (process, uri):
        with EventStoreDBClient(uri) as client:
            client.append_to_stream(
                "mem-1", current_version=StreamState.ANY, events=NewEvent(type="X", data=b"")
            )
            assert len(client.get_stream("mem-1")) == 1
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    with esdblocal("--memory") as (_, uri), EventStoreDBClient(uri) as client:
        assert list(client.read_all()) == []


def test_data_survives_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "esdb")
    with esdblocal("--data", data) as (process, uri), EventStoreDBClient(uri) as client:
        first = client.append_to_stream(
            "keep-1", current_version=StreamState.NO_STREAM, events=NewEvent(type="A", data=b"1")
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    with esdblocal("--data", data) as (_, uri), EventStoreDBClient(uri) as client:
        (event,) = client.get_stream("keep-1")
        assert (event.type, event.data, event.commit_position) == ("A", b"1", first)
        second = client.append_to_stream(
            "keep-1", current_version=0, events=NewEvent(type="B", data=b"2")
        )
        assert second > first


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Writers append as fast as they can; the server dies mid-flight; nothing acked is lost."""
    data = str(tmp_path / "esdb")
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    with esdblocal("--data", data) as (process, uri):

        def write(index: int) -> None:
            stream = f"durable-{index}-{uuid4()}"
            with EventStoreDBClient(uri) as client:
                while not stop.is_set():
                    event = NewEvent(type="Durable", data=os.urandom(32))
                    try:
                        client.append_to_stream(
                            stream, current_version=StreamState.ANY, events=event
                        )
                    except Exception:  # the server is gone: stop writing
                        return
                    with lock:
                        acknowledged.append((stream, str(event.id)))

        writers = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for writer in writers:
            writer.start()
        time.sleep(1.5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert len(acknowledged) > 50, "the writers got going before the kill"
    with esdblocal("--data", data) as (_, uri), EventStoreDBClient(uri) as client:
        stored = {(e.stream_name, str(e.id)) for e in client.read_all()}
    lost = [pair for pair in acknowledged if pair not in stored]
    assert lost == [], f"{len(lost)} of {len(acknowledged)} acknowledged events were lost"
