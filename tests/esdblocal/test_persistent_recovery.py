"""A persistent subscription group survives kill -9: it resumes from its last checkpoint and
redelivers every event that was not acknowledged (at-least-once, nothing skipped)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esdblocal import EmbeddedServer
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


ACTIONS = ("ack", "skip", "park", "retry", "none")


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=12))
def test_whatever_consumers_answer_a_restart_skips_nothing_unanswered(
    tmp_path_factory: pytest.TempPathFactory, actions: list[str]
) -> None:
    """Checkpointing after every completed event, then a restart: every event left
    unanswered comes again, every parked one is in the parked stream, and the checkpoint
    stands before the first unanswered one."""
    data = tmp_path_factory.mktemp("property")
    stream = f"jobs-{uuid4()}"
    with EmbeddedServer(data_dir=data) as server, EventStoreDBClient(server.uri) as client:
        client.create_subscription_to_stream(
            "workers", stream, min_checkpoint_count=1, max_checkpoint_count=1
        )
        batch = [NewEvent(type="Job", data=b"{}") for _ in actions]
        client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=batch)
        subscription = client.read_subscription_to_stream(
            "workers", stream, max_ack_delay=0.02, timeout=30
        )
        answered = 0
        coming_back = {n for n, a in enumerate(actions) if a == "retry"}
        for event in subscription:
            if event.retry_count > 0:  # a retried one: done with it now
                subscription.ack(event)
                coming_back.discard(event.stream_position)
            else:
                action = actions[event.stream_position]
                if action == "ack":
                    subscription.ack(event)
                elif action != "none":
                    subscription.nack(event, action)  # type: ignore[arg-type]
                answered += 1
            if answered == len(actions) and not coming_back:
                break
        time.sleep(1.2)  # acks arrive; a tick passes
        subscription.stop()
        parked = actions.count("park")
        info = client.get_subscription_info("workers", stream)
        assert info.parked_message_count == parked
    unanswered = [n for n, a in enumerate(actions) if a == "none"]
    with EmbeddedServer(data_dir=data) as server, EventStoreDBClient(server.uri) as client:
        info = client.get_subscription_info("workers", stream)
        checkpoint = int(info.last_checkpointed_event_position or -1)
        if unanswered:
            assert checkpoint < unanswered[0]
        assert info.parked_message_count == parked
        if not unanswered:
            return
        subscription = client.read_subscription_to_stream("workers", stream, timeout=30)
        again: set[int] = set()
        for event in subscription:
            subscription.ack(event)
            again.add(event.stream_position)
            if set(unanswered) <= again:
                break
        subscription.stop()
