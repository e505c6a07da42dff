from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SchemaFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEMA_FORMAT_UNSPECIFIED: _ClassVar[SchemaFormat]
    SCHEMA_FORMAT_JSON: _ClassVar[SchemaFormat]
    SCHEMA_FORMAT_PROTOBUF: _ClassVar[SchemaFormat]
    SCHEMA_FORMAT_AVRO: _ClassVar[SchemaFormat]
    SCHEMA_FORMAT_BYTES: _ClassVar[SchemaFormat]
SCHEMA_FORMAT_UNSPECIFIED: SchemaFormat
SCHEMA_FORMAT_JSON: SchemaFormat
SCHEMA_FORMAT_PROTOBUF: SchemaFormat
SCHEMA_FORMAT_AVRO: SchemaFormat
SCHEMA_FORMAT_BYTES: SchemaFormat

class SchemaInfo(_message.Message):
    __slots__ = ("format", "name", "id")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    format: SchemaFormat
    name: str
    id: str
    def __init__(self, format: _Optional[_Union[SchemaFormat, str]] = ..., name: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class StreamRevision(_message.Message):
    __slots__ = ("stream", "revision")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    stream: str
    revision: int
    def __init__(self, stream: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...
