"""The projector: follow ``$all``, fold events into the read store in batches, never lose one.

One thread reads the subscription into a bounded queue; the projector takes whatever has
arrived (at least one item, at most ``batch`` events) and commits it with its checkpoint in
one transaction. Live, that is one event per transaction (a write is visible within a
millisecond or two); catching up, it lets ``GATHER_SECONDS`` of events gather before each
batch (measured: 25-50 % more events per second than waking for every few), batches grow
toward ``batch`` and the cost of a commit is shared. When the store goes away the
subscription breaks, the projector waits (doubling up to ``MAX_BACKOFF``) and resumes after
its checkpoint. At its start it waits quietly for ``quiet_seconds`` (an esdblocal started
beside it takes a moment to listen) before it says the store is unreachable.

At every (re)connection, before following, it checks that the read store was built from this
event store (``eventstore.identity``); if not, ``run`` raises ``ForeignStore`` and the process
rebuilds (``projections.__main__``): rows folded from another store are never added to.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eventstore.errors import StoreRefused, StoreUnavailable
from eventstore.feed import Feed, Item, Live, Progress, Recorded
from eventstore.identity import Landmark, Mismatch
from projections.reporting import report
from projections.writer import STORE_FAULTS, ReadStoreWriter
from telemetry import metrics
from telemetry.projector import folding

__all__ = ["MAX_BACKOFF", "ForeignStore", "Projector", "report"]
MAX_BACKOFF = 5.0
GATHER_SECONDS = 0.02
QUIET_SECONDS = 5.0


class ForeignStore(Exception):
    """The read store was not built from the event store the projector follows."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(f"{mismatch.reason}: {mismatch.detail}")
        self.mismatch = mismatch


class _End:
    """The subscription ended (stopped, or broke with ``error``)."""

    def __init__(self, error: StoreUnavailable | None = None) -> None:
        self.error = error


@dataclass
class Counters:
    events: int = 0
    started: float = 0.0
    last_report: float = 0.0
    last_lag: float = 0.0
    live: bool = False


class Projector:
    def __init__(
        self,
        feed: Feed,
        writer: ReadStoreWriter,
        batch: int = 2000,
        progress_every: float = 2.0,
        lag_every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self._feed = feed
        self._history = feed.history()
        self._first: Landmark | None = None  # the store's first event, once it has one
        self._writer = writer
        self._quiet_until = clock() + quiet_seconds
        self._connected = False
        self._batch = batch
        self._progress_every = progress_every
        self._lag_every = lag_every
        self._clock = clock

    def run(self, stop: threading.Event, until_live: bool = False) -> bool:
        """Follow until ``stop`` is set (or, with ``until_live``, until caught up).

        Returns True when it stopped because it caught up (``until_live``). Raises
        ForeignStore when the read store turns out to be from another event store.
        """
        backoff = 0.1
        while not stop.is_set():
            try:
                if self._follow(stop, until_live):
                    return True
                backoff = 0.1
            except StoreRefused:
                raise
            except StoreUnavailable as error:
                if self._connected or self._clock() >= self._quiet_until:
                    report("event store unreachable; retrying", error=str(error), inSeconds=backoff)
                else:  # starting beside the store: it may not listen yet
                    report("waiting for the event store", logging.DEBUG, error=str(error))
                self._feed.reset()
            except STORE_FAULTS as error:
                # The read store's fault, not an event's (locked, full, unwritable): the batch
                # was rolled back; wait and resume from the checkpoint, never skip.
                report(
                    "read store failed; retrying",
                    logging.ERROR,
                    error=f"{type(error).__name__}: {error}",
                    inSeconds=backoff,
                )
            else:
                continue
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
        return False

    def _follow(self, stop: threading.Event, until_live: bool) -> bool:
        position = self._writer.position()
        mismatch = self._history.compare(self._writer.origin(), position)
        if mismatch is not None:
            raise ForeignStore(mismatch)
        self._first = self._history.first()
        head = self._feed.head()
        self._connected = True
        counters = Counters(started=self._clock(), last_report=self._clock())
        report("following $all", after=position, head=head)
        items: queue.Queue[Item | _End] = queue.Queue(maxsize=4 * self._batch)
        done = threading.Event()  # set when this follow ends, for whatever reason
        reader = threading.Thread(
            target=self._read, args=(position, items, done), name="feed", daemon=True
        )
        reader.start()
        try:
            while not stop.is_set():
                try:
                    first = items.get(timeout=0.1)
                except queue.Empty:
                    self._maybe_report_lag(counters, position)
                    continue
                taken = [first]
                if not counters.live and items.qsize() < self._batch:
                    # Catching up, latency does not matter: let a batch gather rather than
                    # wake (and commit, with its fsync) for every few events.
                    stop.wait(GATHER_SECONDS)
                while len(taken) < self._batch:
                    try:
                        taken.append(items.get_nowait())
                    except queue.Empty:
                        break
                position = self._commit(taken, position, counters, head)
                end = taken[-1]
                if isinstance(end, _End):
                    if end.error is not None:
                        raise end.error
                    return False
                if until_live and counters.live:
                    return True
            return False
        finally:
            done.set()
            self._feed.stop()
            reader.join(timeout=5)

    def _read(
        self, after: int | None, items: queue.Queue[Item | _End], done: threading.Event
    ) -> None:
        """Feed the queue until the subscription ends or ``done`` is set (never blocks on a
        full queue nobody will drain again)."""

        def put(item: Item | _End) -> bool:
            while not done.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        end = _End()
        try:
            for item in self._feed.follow(after):
                if not put(item):
                    return
        except StoreUnavailable as error:
            end = _End(error)
        put(end)

    def _commit(
        self, taken: list[Item | _End], position: int | None, counters: Counters, head: int | None
    ) -> int | None:
        events = [item for item in taken if isinstance(item, Recorded)]
        reached = position
        went_live = False
        for item in taken:
            if isinstance(item, Recorded | Progress):
                reached = item.position if reached is None else max(reached, item.position)
            elif isinstance(item, Live):
                went_live = True
        if reached is not None and reached != position:
            if self._first is None:  # the store was empty when this follow began
                self._first = self._history.first()
            with folding(events):
                self._writer.commit(events, reached, self._first)
            metrics.POSITION.set(reached)
            metrics.FOLDED.inc(len(events))
        counters.events += len(events)
        now = self._clock()
        if went_live and not counters.live:
            counters.live = True
            counters.last_lag = now  # the first lag line comes lag_every later
            elapsed = now - counters.started
            report(
                "caught up; live",
                position=reached,
                events=counters.events,
                seconds=round(elapsed, 3),
                eventsPerSecond=round(counters.events / elapsed) if elapsed else None,
            )
        elif not counters.live and now - counters.last_report >= self._progress_every:
            counters.last_report = now
            elapsed = now - counters.started
            report(
                "catching up",
                position=reached,
                head=head,
                percent=round(100 * (reached or 0) / head, 1) if head else None,
                events=counters.events,
                eventsPerSecond=round(counters.events / elapsed) if elapsed else None,
            )
        return reached

    def _maybe_report_lag(self, counters: Counters, position: int | None) -> None:
        now = self._clock()
        if not counters.live or now - counters.last_lag < self._lag_every:
            return
        counters.last_lag = now
        try:
            head = self._feed.head()
        except StoreUnavailable as error:
            report("lag unknown: event store unreachable", error=str(error))
            return
        report("lag", position=position, head=head, behind=max(0, (head or 0) - (position or 0)))
