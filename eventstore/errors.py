"""The adapter's own exceptions: what the rest of the project knows of the store's failures
(esdbclient's names stay inside this package)."""

from __future__ import annotations


class ConcurrencyConflict(Exception):
    """The stream is not at the expected version: someone else wrote first."""


class StreamGone(Exception):
    """The stream was tombstoned: nothing can be read from or written to it again."""


class StoreUnavailable(Exception):
    """The event store cannot be reached (or answered too late): retry."""


class StoreRefused(StoreUnavailable):
    """The store refuses this configuration (credentials, access, certificate, URI).

    Still a 503 to HTTP clients (it is the server's fault, not theirs), but at start-up it
    stops the web and the projector with one clear line: no retry will mend it.
    """
