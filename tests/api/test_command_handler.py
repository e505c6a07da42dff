"""``CommandHandler.execute`` without Falcon, against a real esdblocal: what a worker does
when its view of a stream is stale, when another writer wins the race at the store, and
where the client's precondition is checked.

Two handlers are two workers of the web: ``worker`` runs the command under test; ``rival``
writes to the same stream before it (the worker's view is then stale) or while it decides
(the worker then loses the race at the store).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import uuid4

import msgspec
import pytest

from app.commands import (
    CommandFailed,
    CommandHandler,
    CommandRequest,
    Conflict,
    PreconditionFailed,
    Refused,
)
from domain import inventory as inv
from domain.aggregates import INVENTORY_ITEM
from domain.errors import DomainError
from eventstore.streams import EventStore

RETRIES = 3
CHECK_IN = inv.CheckInItemsToInventoryCommand(count=5)


@pytest.fixture
def store(esdb_uri: str) -> Iterator[EventStore]:
    adapter = EventStore(esdb_uri)
    yield adapter
    adapter.close()


def run(
    handler: CommandHandler,
    stream: str,
    command: inv.InventoryCommand,
    if_match: Literal["*"] | tuple[int, ...] | None = None,
) -> int:
    """One command through ``handler``: the events it appended."""
    request = CommandRequest(domain_model=type(command).__name__, if_match=if_match)
    outcome = handler.execute(
        INVENTORY_ITEM,
        stream,
        lambda state: inv.fire(state, command),
        request,
        creates=isinstance(command, inv.CreateInventoryItemCommand),
    )
    return outcome.appended


class Racing:
    """The domain's decision, with a rival's check-in landing first on each of the first
    ``wins`` calls, between the worker's decision and its append."""

    def __init__(self, rival: CommandHandler, stream: str, command: inv.Command, wins: int):
        self._rival, self._stream, self._command, self._wins = rival, stream, command, wins
        self.calls = 0

    def __call__(self, state: inv.InventoryItem) -> Sequence[msgspec.Struct] | DomainError:
        self.calls += 1
        if self.calls <= self._wins:
            run(self._rival, self._stream, CHECK_IN)
        return inv.fire(state, self._command)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    stale: int  # rival check-ins after the worker's last command: its view is that far behind
    command: inv.Command
    if_match: Literal["cached", "current"] | None  # the version the client's ETag names
    wins: int  # races the rival wins while the worker decides
    then: int | type[CommandFailed]  # events appended, or the refusal
    calls: int  # how often the worker's domain decided
    cold: bool = False  # a worker that never saw the stream


REMOVE = inv.RemoveItemsFromInventoryCommand
CASES = {
    "a fresh view appends at once": Case(
        0, inv.CheckInItemsToInventoryCommand(count=1), None, 0, 1, 1
    ),
    "a stale view loses at the store, is read, decides again": Case(
        1, inv.CheckInItemsToInventoryCommand(count=1), None, 0, 1, 2
    ),
    "a refusal on an unread view is decided again after the read": Case(
        1, REMOVE(count=8), None, 0, 1, 2
    ),
    "a refusal, even on a current view, stands only once read": Case(
        0, REMOVE(count=8), None, 0, Refused, 2
    ),
    "a worker that never saw the stream reads it before deciding": Case(
        0, REMOVE(count=1), None, 0, 1, 1, cold=True
    ),
    "a rival winning twice: retried until it stops": Case(0, REMOVE(count=1), None, 2, 1, 3),
    "a rival winning every race: retried, then a conflict": Case(
        0, REMOVE(count=1), None, 99, Conflict, 1 + RETRIES + 1
    ),
    "If-Match and a lost race: the precondition fails once read": Case(
        0, REMOVE(count=1), "cached", 1, PreconditionFailed, 1
    ),
    "If-Match of the store's version on a stale view: it holds once read": Case(
        1, REMOVE(count=1), "current", 0, 1, 1
    ),
    "If-Match of the stale view's version: it fails once read": Case(
        1, REMOVE(count=1), "cached", 0, PreconditionFailed, 1
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_execute_decides_on_what_the_store_holds(store: EventStore, case: Case) -> None:
    stream = INVENTORY_ITEM.stream(uuid4())
    worker = CommandHandler(store, retries=RETRIES)
    rival = CommandHandler(store)
    run(worker, stream, inv.CreateInventoryItemCommand(name="Widget"))
    run(worker, stream, CHECK_IN)  # the worker knows version 1: 5 in stock
    for _ in range(case.stale):
        run(rival, stream, CHECK_IN)
    if case.cold:
        worker = CommandHandler(store, retries=RETRIES)
    cached, current = 1, 1 + case.stale
    if_match = {None: None, "cached": (cached,), "current": (current,)}[case.if_match]
    decide = Racing(rival, stream, case.command, case.wins)
    request = CommandRequest(domain_model=type(case.command).__name__, if_match=if_match)

    if isinstance(case.then, int):
        outcome = worker.execute(INVENTORY_ITEM, stream, decide, request)
        appended = outcome.appended
        assert appended == case.then
    else:
        with pytest.raises(case.then):
            worker.execute(INVENTORY_ITEM, stream, decide, request)
        appended = 0
    assert decide.calls == case.calls
    # The store holds the worker's set-up, the rival's writes and what the command appended:
    # nothing twice, nothing of a refused command.
    raced = min(case.wins, decide.calls)
    assert len(store.read(stream)) == 2 + case.stale + raced + appended
    if appended:
        assert outcome.version == current + raced + appended
