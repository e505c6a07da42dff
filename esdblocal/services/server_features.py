"""ServerFeatures.GetSupportedMethods: which calls this node serves, so that negotiating
clients (the Node.js client among them) use BatchAppend and the gRPC management calls.

esdbclient ships no module for ``serverfeatures.proto``; its three messages are built
here from a descriptor, and the service is registered as a generic handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from esdbclient.protos.Grpc import shared_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# The version clients are told; esdblocal follows EventStoreDB 24.x (see README).
SERVER_VERSION = "24.10.0"
SERVICE = "event_store.client.server_features.ServerFeatures"


def _messages() -> tuple[type[Any], type[Any]]:
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(
        name="esdblocal_serverfeatures.proto",
        package="event_store.client.server_features",
        syntax="proto3",
    )
    method = proto.message_type.add(name="SupportedMethod")
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    method.field.add(name="method_name", number=1, type=string, label=optional)
    method.field.add(name="service_name", number=2, type=string, label=optional)
    method.field.add(name="features", number=3, type=string, label=repeated)
    methods = proto.message_type.add(name="SupportedMethods")
    methods.field.add(
        name="methods",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".event_store.client.server_features.SupportedMethod",
        label=repeated,
    )
    methods.field.add(name="event_store_server_version", number=2, type=string, label=optional)
    pool.Add(proto)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("event_store.client.server_features.SupportedMethods")),
        get(pool.FindMessageTypeByName("event_store.client.server_features.SupportedMethod")),
    )


SupportedMethods, SupportedMethod = _messages()


def _features(service: str, method: str) -> list[str]:
    """The features the real server advertises per method (ServerFeatures.cs)."""
    if "PersistentSubscriptions" in service:
        return ["stream", "all"]
    if "Streams" in service and "Read" in method:
        return ["position", "events"]
    if "Streams" in service and "BatchAppend" in method:
        return ["deadline_duration"]
    if "Projections" in service and "Create" in method:
        return ["track_emitted_streams"]
    return []


def supported_methods(services: Iterable[Any]) -> Any:
    """The answer for the given service descriptors (plus this service itself)."""
    answer = SupportedMethods(event_store_server_version=SERVER_VERSION)
    names = [(s.full_name, [m.name for m in s.methods]) for s in services]
    names.append((SERVICE, ["GetSupportedMethods"]))
    for service, methods in names:
        if "client" not in service:
            continue
        for method in methods:
            answer.methods.add(
                method_name=method.lower(),
                service_name=service.lower(),
                features=_features(service, method),
            )
    return answer


def handler(services: Iterable[Any]) -> grpc.GenericRpcHandler:
    """A generic handler answering GetSupportedMethods for ``services``."""
    answer = supported_methods(services)

    async def get_supported_methods(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return answer

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetSupportedMethods": grpc.unary_unary_rpc_method_handler(
                get_supported_methods,
                request_deserializer=shared_pb2.Empty.FromString,
                response_serializer=lambda message: message.SerializeToString(),
            )
        },
    )
