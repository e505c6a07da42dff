"""``python -m esdblocal``: serve until SIGTERM or Ctrl-C, printing the connection string."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
from pathlib import Path

from esdblocal import certificates
from esdblocal.certificates import TlsFiles
from esdblocal.projections.manager import RUN_MODES, RUN_SYSTEM
from esdblocal.security import DEFAULT_PASSWORD, Users, parse_user
from esdblocal.server import DatabaseOptions, GrpcOptions, ProjectionOptions, Security, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m esdblocal",
        description="An embedded server speaking EventStoreDB's gRPC protocol. Insecure by"
        " default (like a node run with --insecure); --tls makes it a secure node: TLS and"
        " users, anonymous stream access refused.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=2113, help="port (0 picks a free one)")
    parser.add_argument(
        "--advertise-host",
        help="host gossip tells clients to dial (default: localhost when on loopback)",
    )
    http = parser.add_argument_group("HTTP API and stream browser")
    http.add_argument(
        "--http-port",
        type=int,
        help="port of the HTTP API and stream browser (0 picks a free one; default: --port + 1,"
        " or a free one when --port is 0)",
    )
    http.add_argument("--no-http", action="store_true", help="serve gRPC only")
    http.add_argument(
        "--web-ui",
        type=Path,
        metavar="DIR",
        help="serve this copy of EventStoreDB's clusternode-web at /web/ instead of"
        " esdblocal's own stream browser",
    )
    grpc_group = parser.add_argument_group("gRPC (the real server's options and defaults)")
    grpc_group.add_argument(
        "--keep-alive-interval",
        type=_milliseconds,
        default=GrpcOptions.keep_alive_interval,
        metavar="MS",
        help="ping a client after this long without hearing from it (0: never; default"
        " %(default)s)",
    )
    grpc_group.add_argument(
        "--keep-alive-timeout",
        type=_milliseconds,
        default=GrpcOptions.keep_alive_timeout,
        metavar="MS",
        help="close the connection when a ping is not answered within this (default %(default)s)",
    )
    database = parser.add_argument_group("writes (the real server's options and defaults)")
    database.add_argument(
        "--commit-timeout-ms",
        type=_milliseconds,
        default=DatabaseOptions.commit_timeout_ms,
        metavar="MS",
        help="answer a write not committed within this as timed out (default %(default)s)",
    )
    database.add_argument(
        "--prepare-timeout-ms",
        type=_milliseconds,
        default=DatabaseOptions.prepare_timeout_ms,
        metavar="MS",
        help="accepted; the real server uses it for explicit transactions only"
        " (default %(default)s)",
    )
    database.add_argument(
        "--max-append-size",
        type=_bytes,
        default=DatabaseOptions.max_append_size,
        metavar="BYTES",
        help="refuse an append carrying more event data than this (default %(default)s)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data", type=Path, default=Path("var/esdb"), help="data directory")
    where.add_argument("--memory", action="store_true", help="keep nothing on disk")
    projections = parser.add_argument_group("projections (defaults: what the real --dev gives)")
    projections.add_argument(
        "--run-projections",
        choices=RUN_MODES,
        default=os.environ.get("EVENTSTORE_RUN_PROJECTIONS", RUN_SYSTEM),
        help="None: no projection subsystem; System: the system projections; All: user"
        " projections too (env EVENTSTORE_RUN_PROJECTIONS; default System)",
    )
    projections.add_argument(
        "--start-standard-projections",
        type=_boolean,
        nargs="?",
        const=True,
        default=_boolean(os.environ.get("EVENTSTORE_START_STANDARD_PROJECTIONS", "true")),
        metavar="true|false",
        help="start $streams, $by_category, $by_event_type, $stream_by_category and"
        " $by_correlation_id (env EVENTSTORE_START_STANDARD_PROJECTIONS; default true)",
    )
    cluster = parser.add_argument_group("local cluster (esdblocal/README.md, Cluster mode)")
    cluster.add_argument(
        "--cluster-size",
        type=int,
        default=int(os.environ.get("EVENTSTORE_CLUSTER_SIZE", "1")),
        help="members to run on this machine, each a process with its own ports and log;"
        " member i serves gRPC on --port + 2i and HTTP on --port + 2i + 1"
        " (env EVENTSTORE_CLUSTER_SIZE; default 1: a single node)",
    )
    cluster.add_argument(
        "--cluster-restart-delay",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="a member that dies is started again after this long (negative: never; default 3)",
    )
    secure = parser.add_argument_group("secure node")
    secure.add_argument("--tls", action="store_true", help="serve TLS and require users")
    secure.add_argument(
        "--certs",
        type=Path,
        help="where a CA and node certificate are generated on first run"
        " (default: <data>/certs; clients trust <certs>/ca/ca.crt)",
    )
    secure.add_argument("--certificate-file", type=Path, help="use this node certificate (PEM)")
    secure.add_argument("--certificate-private-key-file", type=Path, help="and its key (PEM)")
    secure.add_argument("--ca-file", type=Path, help="the CA clients should trust (printed)")
    secure.add_argument(
        "--user-certificates",
        type=_boolean,
        nargs="?",
        const=True,
        default=_boolean(os.environ.get("KURRENTDB_USER_CERTIFICATES__ENABLED", "false")),
        metavar="true|false",
        help="sign in callers by their client certificate (signed by the CA, common name the"
        " user), as KurrentDB's UserCertificates:Enabled (env"
        " KURRENTDB_USER_CERTIFICATES__ENABLED; default false); makes <certs>/user-admin/",
    )
    secure.add_argument(
        "--admin-password",
        default=os.environ.get("EVENTSTORE_DEFAULT_ADMIN_PASSWORD", DEFAULT_PASSWORD),
        help="password of the admin user (env EVENTSTORE_DEFAULT_ADMIN_PASSWORD; changeit)",
    )
    secure.add_argument(
        "--ops-password",
        default=os.environ.get("EVENTSTORE_DEFAULT_OPS_PASSWORD", DEFAULT_PASSWORD),
        help="password of the ops user (env EVENTSTORE_DEFAULT_OPS_PASSWORD; changeit)",
    )
    secure.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD[:GROUP,...]",
        help="another user (repeatable); group $admins may read $all and system streams",
    )
    args = parser.parse_args(argv)
    given = (args.certificate_file, args.certificate_private_key_file)
    if any(given) and not all(given):
        parser.error("--certificate-file and --certificate-private-key-file go together")
    if (any(given) or args.certs or args.user_certificates) and not args.tls:
        parser.error("certificates need --tls")
    if args.tls and args.memory and not (args.certs or any(given)):
        parser.error("--tls with --memory needs --certs DIR (or a certificate) to keep them")
    if args.web_ui is not None and not (args.web_ui / "index.html").is_file():
        parser.error(f"--web-ui: no index.html in {args.web_ui}")
    if args.cluster_size < 1:
        parser.error("--cluster-size must be at least 1")
    if args.cluster_size > 1 and (any(given) or args.user_certificates):
        # Members dial each other with the CA esdblocal made; user certificates would make
        # every member present one (see README, Cluster mode).
        parser.error("--cluster-size --tls uses esdblocal's own certificates only")
    args.cluster_http_port = args.http_port  # as given: a cluster numbers its members' from it
    if args.http_port is None:
        args.http_port = default_http_port(args.host, args.port)
    try:
        args.users = [parse_user(text) for text in args.user]
    except ValueError as error:
        parser.error(f"--user: {error}")
    return args


def default_http_port(host: str, port: int) -> int:
    """``port + 1`` when it is free, else any free port (0): the URL is printed either way."""
    if port == 0:
        return 0
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port + 1))
        except OSError:
            return 0
    return port + 1


def _milliseconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, not {text!r}") from None
    if value < 0:  # the server's validator: "Please provide a positive integer."
        raise argparse.ArgumentTypeError(f"{value}: please provide a positive integer")
    return value


def _bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of bytes, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: please provide a positive integer")
    return value


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def security(args: argparse.Namespace) -> Security | None:
    if not args.tls:
        return None
    if args.certificate_file:
        files = TlsFiles(args.certificate_file, args.certificate_private_key_file, args.ca_file)
    else:
        files = certificates.ensure(args.certs or args.data / "certs", (args.host,))
    users = Users.defaults(args.admin_password, args.ops_password, args.users)
    if args.user_certificates and not args.certificate_file:
        # The CA is esdblocal's: make admin a certificate to sign in with, as es-gencert-cli.
        cert, key = certificates.user(args.certs or args.data / "certs", "admin")
        print(f"esdblocal: user certificate for admin: {cert} (key {key})", file=sys.stderr)
    return Security(files, users, args.user_certificates)


async def main(args: argparse.Namespace) -> None:
    secure = security(args)
    if secure is not None:
        print(
            f"esdblocal: TLS on, users admin and ops; clients trust {secure.tls.ca}",
            file=sys.stderr,
            flush=True,
        )
    task = asyncio.ensure_future(
        serve(
            args.host,
            args.port,
            None if args.memory else args.data,
            args.advertise_host,
            security=secure,
            http_port=None if args.no_http else args.http_port,
            web_ui=args.web_ui,
            projections=ProjectionOptions(args.run_projections, args.start_standard_projections),
            grpc_options=GrpcOptions(args.keep_alive_interval, args.keep_alive_timeout),
            database=DatabaseOptions(
                args.commit_timeout_ms, args.prepare_timeout_ms, args.max_append_size
            ),
        )
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except (OSError, RuntimeError) as error:
        taken = _taken_port(args, error)
        if taken is None:
            raise
        flag, variable, port = taken
        print(
            f"esdblocal: port {port} on {args.host} is in use by another process: give {flag}"
            f" a free port ({variable} under make run), e.g. {variable}={port + 10} make run",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(3)


def _taken_port(args: argparse.Namespace, error: Exception) -> tuple[str, str, int] | None:
    """Which of the node's ports another process holds, if that is what ``error`` says:
    grpc says "Failed to bind", asyncio's server an OSError with EADDRINUSE."""
    if isinstance(error, RuntimeError) and "Failed to bind" in str(error):
        return "--port", "ESDB_PORT", args.port
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE and args.http_port:
        return "--http-port", "ESDB_HTTP_PORT", args.http_port
    return None


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.cluster_size > 1:
        from esdblocal.cluster import supervisor

        sys.exit(supervisor.run(arguments))
    asyncio.run(main(arguments))
