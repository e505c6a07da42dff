"""OpenTelemetry for the web and the projector, from the standard ``OTEL_*`` variables.

Off unless ``OTEL_TRACES_EXPORTER`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (then the API's
no-op tracer costs next to nothing). Exporters (``OTEL_TRACES_EXPORTER``, comma-separated):
``otlp`` (OTLP over HTTP/protobuf; ``OTEL_EXPORTER_OTLP_*`` as the SDK reads them), ``console``
(stdout), ``file`` (one JSON span per line appended to ``OTEL_EXPORTER_FILE_PATH``: the SDK has
no file exporter; this is its console exporter writing to a file) and ``none``. The sampler,
the batch processor and the resource read their own ``OTEL_*`` variables in the SDK.

The trace travels in event metadata under the keys the official EventStoreDB clients'
OpenTelemetry plugins use: ``$traceId`` (32 lowercase hex digits) and ``$spanId`` (16), the
span that appended the event; a subscriber continues the trace from them.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any

from opentelemetry import context, trace
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
)

TRACE_ID = "$traceId"
SPAN_ID = "$spanId"
tracer = trace.get_tracer("restful-cqrs")
_provider: Any = None


def enabled_by(env: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    return bool(exporters or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup(service: str, instrument_falcon: bool = False) -> bool:
    """Install the SDK for this process (once, after any fork); True when tracing is on."""
    global _provider, tracer
    if _provider is not None or not enabled_by():
        return _provider is not None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    tracer = trace.get_tracer("restful-cqrs")
    # Not opentelemetry-instrumentation-grpc's client interceptor: it wraps a streaming
    # call's responses in a plain generator, and esdbclient cancels its reads through them
    # (``'generator' object has no attribute 'cancel'``: every worker failed to boot). The
    # store's calls that matter are spans of ours (``streams.append``, ``projections.fold``).
    if instrument_falcon:
        from opentelemetry.instrumentation.falcon import FalconInstrumentor

        FalconInstrumentor().instrument()
    return True


def _exporters() -> list[Any]:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    found: list[Any] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(OTLPSpanExporter())
        elif name == "console":
            found.append(ConsoleSpanExporter())
        elif name == "file":
            out: IO[str] = open(  # noqa: SIM115 (the exporter's for the process's life)
                os.environ.get("OTEL_EXPORTER_FILE_PATH", "traces.jsonl"), "a", buffering=1
            )
            found.append(
                ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(None) + "\n")
            )
        elif name not in ("", "none"):
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")
    return found


def shutdown() -> None:
    """Export what is pending (the projector leaves with os._exit, past atexit)."""
    if _provider is not None:
        _provider.shutdown()


# With tracing off, a span is this: no span object, no context to attach and detach. The
# API's no-op tracer still did both, four times a command: 8 % of a command's CPU in the
# worker under cProfile (bench/README.md, Throughput).
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)


def span(
    name: str, attributes: dict[str, Any] | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> AbstractContextManager[Span]:
    """A span around a block, the current span inside it; nothing at all when tracing is off."""
    if _provider is None:
        return _OFF
    return tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def metadata_fields() -> bytes | None:
    """``"$traceId":"…","$spanId":"…",`` for the current span, or None when not tracing."""
    if _provider is None:
        return None
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return None
    return (
        f'"{TRACE_ID}":"{current.trace_id:032x}","{SPAN_ID}":"{current.span_id:016x}",'
    ).encode()


def with_trace(metadata: bytes, fields: bytes | None) -> bytes:
    """An event's JSON metadata object with the trace fields first."""
    if fields is None or not metadata.startswith(b"{"):
        return metadata
    if metadata.strip() == b"{}":
        return b"{" + fields[:-1] + b"}"
    return b"{" + fields + metadata[1:]


def parent_of(metadata: bytes) -> context.Context | None:
    """The context an event's ``$traceId``/``$spanId`` continue (None: none, or malformed).

    Marked sampled and remote, as the official clients' plugins restore it."""
    if b"$traceId" not in metadata:
        return None
    import msgspec

    try:
        meta = msgspec.json.decode(metadata)
        trace_id = int(meta[TRACE_ID], 16)
        span_id = int(meta[SPAN_ID], 16)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    found = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1))
    if not found.is_valid:
        return None
    return trace.set_span_in_context(NonRecordingSpan(found))


def on() -> bool:
    return _provider is not None
