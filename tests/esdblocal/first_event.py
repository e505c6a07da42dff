"""A catch-up subscription read on a thread until its first event: the idle-client tests
(test_keepalive.py, test_idle_clients.py) hold one open and silent, then append."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any


class FirstEvent:
    def __init__(self, subscription: Iterable[Any]) -> None:
        self.received: list[str] = []  # the first event's type, once it comes
        self.failure: list[BaseException] = []  # what ended the subscription instead
        self.thread = threading.Thread(target=self._consume, args=(subscription,))
        self.thread.start()

    def _consume(self, subscription: Iterable[Any]) -> None:
        try:
            for event in subscription:
                self.received.append(event.type)
                return
        except BaseException as error:
            self.failure.append(error)
