"""A persistent subscription group survives kill -9: it resumes from its last checkpoint and
redelivers every event that was not acknowledged (at-least-once, nothing skipped)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from tests.esdblocal.test_process import esdblocal

pytestmark = pytest.mark.slow


def test_kill_9_then_every_unacknowledged_event_comes_again(tmp_path: Path) -> None:
    data = str(tmp_path / "esdb")
    stream = f"jobs-{uuid4()}"
    acked: set[int] = set()
    with esdblocal("--data", data) as (process, uri), EventStoreDBClient(uri) as client:
        client.create_subscription_to_stream(
            "workers", stream, min_checkpoint_count=5, max_checkpoint_count=25
        )
        client.create_subscription_to_all("all-workers", from_end=True)
        batch = [NewEvent(type="Job", data=b"{}") for _ in range(200)]
        client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=batch)
        subscription = client.read_subscription_to_stream("workers", stream, max_ack_delay=0.02)
        for event in subscription:
            if event.stream_position % 7 != 3:  # some are never acknowledged
                subscription.ack(event)
                acked.add(event.stream_position)
            if event.stream_position == 150:
                break
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        subscription.stop()
    unacked = set(range(200)) - acked
    with esdblocal("--data", data) as (_, uri), EventStoreDBClient(uri) as client:
        info = client.get_subscription_info("workers", stream)
        checkpoint = int(info.last_checkpointed_event_position or -1)
        assert checkpoint < min(unacked), "the checkpoint never passes an unacked event"
        subscription = client.read_subscription_to_stream("workers", stream)
        again = []
        for event in subscription:
            subscription.ack(event)
            again.append(event.stream_position)
            if event.stream_position == 199:
                break
        subscription.stop()
        assert again == list(range(checkpoint + 1, 200))
        assert unacked <= set(again)
        assert client.get_subscription_info("all-workers").start_from == "C:-1/P:-1"
        everything = client.read_subscription_to_all("all-workers")
        seen = []
        for event in everything:  # created before the append: the 200 are its to deliver
            everything.ack(event)
            seen.append(event.stream_position)
            if len(seen) == 200:
                break
        everything.stop()
        assert seen == list(range(200))
