"""Users and access, as a secure EventStoreDB node (23.6 and later) applies them.

- Credentials travel as HTTP basic auth in the ``authorization`` header of each call. A
  header that does not name a known user with the right password is refused before any
  service sees the call: the real node answers HTTP 401, which gRPC clients report as
  ``UNAUTHENTICATED "Received http2 header with status: 401"``; esdblocal answers that code
  and text.
- No header is the anonymous user. Since 23.6 (``AllowAnonymousStreamAccess`` false) the
  anonymous user may read gossip but nothing of any stream: ``PERMISSION_DENIED "Access
  Denied"`` with the ``exception: access-denied`` trailer.
- The default users are ``admin`` (group ``$admins``) and ``ops`` (group ``$ops``), both with
  password ``changeit`` unless set otherwise (``EVENTSTORE_DEFAULT_ADMIN_PASSWORD`` /
  ``..._OPS_PASSWORD`` on the real server).
- Default ACLs: user streams (and their metadata) to any authenticated user; system streams
  (a name starting with ``$``, ``$all`` among them) to ``$admins`` only. ``$acl`` entries in
  stream metadata are stored but not enforced.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

ADMINS = "$admins"
OPS = "$ops"
DEFAULT_PASSWORD = "changeit"
UNAUTHENTICATED_DETAILS = "Received http2 header with status: 401"
ACCESS_DENIED = "Access Denied"


class BadCredentials(Exception):
    """The authorization header does not name a user with that password."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    groups: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMINS in self.groups


@dataclass(frozen=True, slots=True)
class User:
    name: str
    salt: bytes
    digest: bytes
    groups: frozenset[str]


def _digest(salt: bytes, password: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 10_000)


def user(name: str, password: str, groups: Iterable[str] = ()) -> User:
    salt = os.urandom(16)
    return User(name, salt, _digest(salt, password), frozenset(groups))


def parse_user(text: str) -> User:
    """``name:password`` or ``name:password:group,group`` (the ``--user`` option)."""
    name, sep, rest = text.partition(":")
    password, _, groups = rest.partition(":")
    if not name or not sep or not password:
        raise ValueError(f"expected name:password[:group,...], got {text!r}")
    return user(name, password, [g for g in groups.split(",") if g])


class Users:
    """The node's users; a verified header is remembered so a call costs one dict lookup."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users = {u.name: u for u in users}
        self._verified: dict[str, Principal] = {}

    @classmethod
    def defaults(
        cls,
        admin_password: str = DEFAULT_PASSWORD,
        ops_password: str = DEFAULT_PASSWORD,
        extra: Iterable[User] = (),
    ) -> Users:
        return cls(
            [user("admin", admin_password, [ADMINS]), user("ops", ops_password, [OPS]), *extra]
        )

    def named(self, name: str) -> Principal | None:
        """The user ``name`` (a user certificate's common name), if there is one."""
        found = self._users.get(name)
        return Principal(found.name, found.groups) if found is not None else None

    def principal(self, metadata: Iterable[tuple[str, Any]]) -> Principal | None:
        """The caller named by the call's metadata; None for anonymous."""
        header = next((v for k, v in metadata if k == "authorization"), None)
        if header is None:
            return None
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        known = self._verified.get(header)
        if known is not None:
            return known
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            raise BadCredentials("unsupported authorization scheme")
        try:
            name, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise BadCredentials("malformed basic credentials") from error
        found = self._users.get(name)
        if found is None or not hmac.compare_digest(found.digest, _digest(found.salt, password)):
            raise BadCredentials("wrong user name or password")
        principal = Principal(found.name, found.groups)
        self._verified[header] = principal
        return principal


def may_access(principal: Principal | None, stream: str) -> bool:
    """The default ACLs: user streams to any authenticated user, system streams to admins.

    ``stream`` is a stream name or ``$all``; a metadata stream ``$$x`` follows ``x``.
    """
    if principal is None:
        return False
    if stream.startswith("$$"):
        stream = stream[2:]
    return principal.is_admin or not stream.startswith("$")


Behaviour = Callable[..., Any]


class Authenticate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls with bad credentials before they reach a service (the node's 401)."""

    def __init__(self, users: Users) -> None:
        self._users = users

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        try:
            self._users.principal(handler_call_details.invocation_metadata or ())
        except BadCredentials:
            return _refusing(handler)
        return handler


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)


def _refusing(handler: Any) -> Any:
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED."""
    if handler is None or (not handler.request_streaming and not handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(_refuse)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_refuse)
    return grpc.unary_stream_rpc_method_handler(_refuse)


async def deny(context: grpc.aio.ServicerContext) -> None:
    """Abort the call as the node does when the ACL says no."""
    context.set_trailing_metadata((("exception", "access-denied"),))
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, ACCESS_DENIED)
