"""The projector's side of a trace: each event's fold is a span in the event's trace.

A child, not a link: the official EventStoreDB clients' plugins restore ``$traceId`` and
``$spanId`` as the parent of the subscriber's span, so a trace begun by any of their clients
(or by our web) goes on the same way here, and a trace viewer shows the fold under the
append that wrote the event. A link is for a span with many parents; each of our fold spans
has exactly one event, hence one parent. The events of one batch share its transaction: each
event's span covers the batch's commit (so its duration is the wait its event had)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.trace import SpanKind

from eventstore.feed import Recorded
from telemetry import metrics, tracing


@contextmanager
def folding(events: Sequence[Recorded]) -> Iterator[None]:
    """Time the batch's commit; with tracing on, a span per traced event."""
    started = time.perf_counter()
    traced = []
    if tracing.on():
        begun = time.time_ns()
        for event in events:
            parent = tracing.parent_of(event.metadata)
            if parent is not None:
                traced.append(
                    tracing.tracer.start_span(
                        "projections.fold",
                        context=parent,
                        kind=SpanKind.CONSUMER,
                        start_time=begun,
                        attributes={
                            "db.system": "kurrentdb",
                            "db.kdb.stream": event.stream,
                            "db.kdb.event.id": event.id or "",
                            "db.kdb.event.type": event.type,
                            "db.kdb.commit_position": event.position,
                            "projections.batch.size": len(events),
                        },
                    )
                )
    try:
        yield
    finally:
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for span in traced:
            span.end()
