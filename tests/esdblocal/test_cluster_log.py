"""A member's log beside the Store: where a follower's log stops agreeing with its leader's,
the offline truncation that cuts it there, and a follower's replicated writes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from esdblocal.cluster.log import LogReader, truncate, valid_position
from esdblocal.cluster.wire import Epoch
from esdblocal.store import ANY, LOG_START, Outcome, Proposed, Recorded, Store, WriteResult

E0 = Epoch(0, 128, "e0", 0)
E1 = Epoch(1, 1_000, "e1", 1)
E2 = Epoch(2, 2_000, "e2", 2)
E1_OTHER = Epoch(1, 1_500, "e1-other", 0)  # an epoch no majority followed


@pytest.mark.parametrize(
    ("follower_writer", "follower_epochs", "leader_epochs", "leader_writer", "valid"),
    [
        # the same epochs: the follower just continues
        (1_800, [E1, E0], [E1, E0], 2_500, 1_800),
        # the leader is in a newer epoch the follower never saw: cut where it starts
        (2_300, [E1, E0], [E2, E1, E0], 2_500, 2_000),
        (1_700, [E1, E0], [E2, E1, E0], 2_500, 1_700),
        # the follower led an epoch of its own no one followed: cut where it starts, or
        # where the leader's own epoch after the shared one starts, if sooner
        (1_900, [E1_OTHER, E0], [Epoch(1, 1_600, "e1-late", 1), E0], 2_500, 1_500),
        (1_900, [E1_OTHER, E0], [E1, E0], 2_500, 1_000),
        (1_900, [E1_OTHER, E0], [E2, E1, E0], 2_500, 1_000),
        # a fresh member, and one whose log shares nothing: from the start
        (LOG_START, [], [E1, E0], 2_500, LOG_START),
        (900, [Epoch(0, 128, "unknown", 1)], [E1, E0], 2_500, LOG_START),
        # never past the leader's own end
        (3_000, [E2, E1, E0], [E2, E1, E0], 2_500, 2_500),
    ],
)
def test_valid_position(
    follower_writer: int,
    follower_epochs: list[Epoch],
    leader_epochs: list[Epoch],
    leader_writer: int,
    valid: int,
) -> None:
    assert valid_position(follower_writer, follower_epochs, leader_epochs, leader_writer) == valid


class Answers:
    """The Store's on_commit, waited on from the test's thread."""

    def __init__(self) -> None:
        self._done: dict[Any, Outcome] = {}
        self._changed = threading.Condition()

    def __call__(self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded]) -> None:
        with self._changed:
            self._done.update(outcomes)
            self._changed.notify_all()

    def wait(self, token: Any) -> WriteResult:
        with self._changed:
            assert self._changed.wait_for(lambda: token in self._done, timeout=30)
        outcome = self._done.pop(token)
        assert isinstance(outcome, WriteResult), outcome
        return outcome


def append(store: Store, answers: Answers, stream: str, *types: str) -> WriteResult:
    token = object()
    events = [Proposed(f"{stream}-{t}", t, "application/json", b"{}", b"") for t in types]
    store.submit("append", stream, ANY, events, token)
    return answers.wait(token)


def test_truncation_drops_the_tail_and_the_streams_follow(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    answers = Answers()
    store = Store(path, answers, initial_events=False)
    append(store, answers, "kept", "A", "B")
    cut = append(store, answers, "cut", "C").position
    append(store, answers, "kept", "D")
    assert cut is not None
    store.close()
    assert truncate(path, cut) == 2

    store = Store(path, answers, initial_events=False)
    try:
        assert [(r.stream, r.type) for r in store.read_all(0, False, 10)] == [
            ("kept", "A"),
            ("kept", "B"),
        ]
        assert store.last_revision("kept") == 1
        assert store.last_revision("cut") == -1
        assert LogReader(path).ends()[1] == cut  # the next record goes where the cut was
        # Writing on continues the stream where the cut left it.
        assert append(store, answers, "kept", "E").current_revision == 2
        assert append(store, answers, "cut", "F").current_revision == 0
    finally:
        store.close()


def test_replicated_records_are_written_as_they_are(tmp_path: Path) -> None:
    leader_answers, follower_answers = Answers(), Answers()
    leader = Store(tmp_path / "leader.sqlite3", leader_answers)
    follower = Store(tmp_path / "follower.sqlite3", follower_answers, initial_events=False)
    try:
        append(leader, leader_answers, "s", "A", "B")
        records = leader.read_all(0, False, 100)
        token = object()
        follower.submit_replicated(records, {"$by_category": records[-1].position}, token)
        assert follower_answers.wait(token).position == records[-1].position
        assert follower.read_all(0, False, 100) == records  # ids, positions, timestamps
        assert follower.checkpoint("$by_category") == records[-1].position
        # It knows the ids: a client's retry of the same append is not written twice.
        replay = append(follower, follower_answers, "s", "A", "B")
        assert (replay.current_revision, replay.position) == (1, records[-1].position)
        # And it can lead on: its next record follows the leader's last.
        fresh = append(follower, follower_answers, "s", "C")
        assert fresh.current_revision == 2
        assert fresh.position == LogReader(tmp_path / "leader.sqlite3").ends()[1]
    finally:
        leader.close()
        follower.close()
