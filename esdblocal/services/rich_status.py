"""KurrentDB's rich errors: a ``google.rpc.Status`` in the ``grpc-status-details-bin``
trailer, holding an ``ErrorInfo`` (reason, domain), optional ``RetryInfo``, and the
error's own details message (``RpcExceptions.FromError`` in the server's Api.V2).

The messages are built from descriptors in a private pool, so this module clashes with no
``google.rpc`` modules another package may load; on the wire they are the real ones.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.any_pb2 import Any as AnyPb

_FIELD = descriptor_pb2.FieldDescriptorProto
_POOL = descriptor_pool.DescriptorPool()
_STRING, _INT32, _SINT64, _INT64, _MESSAGE = (
    _FIELD.TYPE_STRING,
    _FIELD.TYPE_INT32,
    _FIELD.TYPE_SINT64,
    _FIELD.TYPE_INT64,
    _FIELD.TYPE_MESSAGE,
)
_ONE, _MANY = _FIELD.LABEL_OPTIONAL, _FIELD.LABEL_REPEATED


def _file(
    name: str, package: str, messages: dict[str, list[tuple[str, int, int, int, str]]]
) -> None:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    proto.dependency.append("google/protobuf/any.proto")
    for message_name, fields in messages.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    _POOL.Add(proto)


_POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(AnyPb.DESCRIPTOR.file.serialized_pb))
_file(
    "esdblocal/google_rpc.proto",
    "google.rpc",
    {
        "Status": [
            ("code", 1, _INT32, _ONE, ""),
            ("message", 2, _STRING, _ONE, ""),
            ("details", 3, _MESSAGE, _MANY, ".google.protobuf.Any"),
        ],
        "ErrorInfo": [
            ("reason", 1, _STRING, _ONE, ""),
            ("domain", 2, _STRING, _ONE, ""),
        ],
        "Duration": [("seconds", 1, _INT64, _ONE, ""), ("nanos", 2, _INT32, _ONE, "")],
        "RetryInfo": [("retry_delay", 1, _MESSAGE, _ONE, ".google.rpc.Duration")],
    },
)
_file(
    "esdblocal/kurrentdb_v2_streams_errors.proto",
    "kurrentdb.protocol.v2.streams.errors",
    {
        "StreamTombstonedErrorDetails": [("stream", 1, _STRING, _ONE, "")],
        "StreamRevisionConflictErrorDetails": [
            ("stream", 1, _STRING, _ONE, ""),
            ("expected_revision", 2, _SINT64, _ONE, ""),
            ("actual_revision", 3, _SINT64, _ONE, ""),
        ],
        "AppendTransactionSizeExceededErrorDetails": [
            ("size", 1, _INT32, _ONE, ""),
            ("max_size", 2, _INT32, _ONE, ""),
        ],
        "StreamAlreadyInAppendSessionErrorDetails": [("stream", 1, _STRING, _ONE, "")],
        "StreamStateViolation": [
            ("stream", 1, _STRING, _ONE, ""),
            ("expected_state", 2, _SINT64, _ONE, ""),
            ("actual_state", 3, _SINT64, _ONE, ""),
        ],
        "ConsistencyViolation": [
            ("check_index", 1, _INT32, _ONE, ""),
            (
                "stream_state",
                2,
                _MESSAGE,
                _ONE,
                ".kurrentdb.protocol.v2.streams.errors.StreamStateViolation",
            ),
        ],
        "AppendConsistencyViolationErrorDetails": [
            (
                "violations",
                1,
                _MESSAGE,
                _MANY,
                ".kurrentdb.protocol.v2.streams.errors.ConsistencyViolation",
            )
        ],
    },
)


def message(full_name: str, **fields: Any) -> Any:
    """A message of the pool, e.g. ``message("google.rpc.ErrorInfo", reason="…")``."""
    cls = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))
    return cls(**fields)


# The nested name the real proto gives ConsistencyViolation's StreamStateViolation.
VIOLATION = "kurrentdb.protocol.v2.streams.errors.ConsistencyViolation"
STREAMS_ERRORS = "kurrentdb.protocol.v2.streams.errors."


def _packed(detail: Any) -> Any:
    packed = message("google.protobuf.Any")
    packed.type_url = "type.googleapis.com/" + detail.DESCRIPTOR.full_name
    packed.value = detail.SerializeToString()
    return packed


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message_text: str,
    reason: str,
    domain: str,
    *details: Any,
    retry_after_seconds: int | None = None,
) -> NoReturn:
    """End the call as ``RpcExceptions.FromError``: status, text, and the rich trailer."""
    items = [message("google.rpc.ErrorInfo", reason=reason, domain=domain), *details]
    if retry_after_seconds is not None:
        delay = message("google.rpc.Duration", seconds=retry_after_seconds)
        items.append(message("google.rpc.RetryInfo", retry_delay=delay))
    status = message(
        "google.rpc.Status",
        code=code.value[0],
        message=message_text,
        details=[_packed(item) for item in items],
    )
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    await context.abort(code, message_text)
    raise AssertionError("abort raises")
