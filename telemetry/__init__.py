"""Telemetry: an adapter like the others, set up once in each composition root.

- ``telemetry.tracing``: OpenTelemetry (Falcon and gRPC instrumentations), configured by the
  standard ``OTEL_*`` variables; off unless ``OTEL_TRACES_EXPORTER`` or
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. The trace travels in event metadata as the official
  EventStoreDB clients' plugins carry it (``$traceId``, ``$spanId``).
- ``telemetry.metrics``: Prometheus figures (prometheus_client, multiprocess mode under
  gunicorn), served on a port of their own (``METRICS_PORT``, ``PROJECTOR_METRICS_PORT``).

The domain never imports this package.
"""
