"""Live fan-out: committed events pushed to every waiting subscription, no polling.

The writer thread hands each committed group to the event loop; the hub keeps the most
recent events in memory so that live subscriptions read them from here instead of from
SQLite, and wakes everyone waiting. A subscription that falls further behind than the
buffer reaches reads from the log instead, so a slow consumer costs itself, not the server.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right

from esdblocal.store import Recorded


class Hub:
    def __init__(self, head: int, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._records: list[Recorded] = []
        self._positions: list[int] = []
        # Every event after this position that has been published is in the buffer.
        self.complete_after = head
        self.head = head
        self._changed = asyncio.Event()

    def publish(self, records: list[Recorded]) -> None:
        """Called in the loop (via call_soon_threadsafe) with each committed group."""
        self._records.extend(records)
        self._positions.extend(r.position for r in records)
        self.head = records[-1].position
        if len(self._records) > 2 * self._capacity:
            drop = len(self._records) - self._capacity
            self.complete_after = self._positions[drop - 1]
            del self._records[:drop]
            del self._positions[:drop]
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def covers(self, position: int) -> bool:
        """Whether every published event after ``position`` is still in the buffer."""
        return position >= self.complete_after

    def after(self, position: int, limit: int) -> list[Recorded]:
        start = bisect_right(self._positions, position)
        return self._records[start : start + limit]

    @property
    def changed(self) -> asyncio.Event:
        """An event set at the next publish; take it before looking, then wait on it."""
        return self._changed
