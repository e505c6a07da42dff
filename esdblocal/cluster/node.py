"""One member of a local cluster, as its own process: ``python -m esdblocal.cluster.node``.

The supervisor starts it with its number, ports and data directory. It applies a
truncation left by its last run, opens its log, serves, and tells the supervisor on stdout
(one JSON object a line) that it is ready, on which ports, and each change of its state;
the supervisor sends the members' addresses on stdin. When stdin closes (the supervisor
went away) it stops. Exit code 75 asks to be started again at once (after a truncation
marker was left, or on stepping down).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from esdblocal import certificates
from esdblocal.cluster.log import truncate_pending
from esdblocal.cluster.member import Address, Member
from esdblocal.projections.manager import RUN_MODES, RUN_SYSTEM
from esdblocal.security import Users
from esdblocal.server import DB_FILE, DatabaseOptions, Node, ProjectionOptions, Security


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m esdblocal.cluster.node")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--advertise-host")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--http-port", type=int)
    parser.add_argument("--web-ui", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--run-projections", choices=RUN_MODES, default=RUN_SYSTEM)
    parser.add_argument("--start-standard-projections", choices=("true", "false"), default="true")
    parser.add_argument("--commit-timeout-ms", type=int, default=2000)
    parser.add_argument("--certs", type=Path, help="a secure member: TLS and users, these files")
    return parser.parse_args(argv)


def announce(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    truncated = truncate_pending(args.data, DB_FILE)
    if truncated is not None:
        print(
            f"esdblocal: node {args.index}: truncated its log from position {truncated}",
            file=sys.stderr,
            flush=True,
        )
    security = None
    if args.certs is not None:
        security = Security(certificates.ensure(args.certs, (args.host,)), Users.defaults())
    member = Member(
        args.index,
        args.size,
        args.data,
        DB_FILE,
        commit_timeout=args.commit_timeout_ms / 1000,
        announce=announce,
        peer_ca=security.tls.ca.read_bytes() if security and security.tls.ca else None,
    )
    node = Node(
        args.host,
        args.port,
        args.data,
        args.advertise_host,
        security=security,
        http_port=args.http_port,
        web_ui=args.web_ui,
        projections=ProjectionOptions(
            args.run_projections, args.start_standard_projections == "true"
        ),
        database=DatabaseOptions(args.commit_timeout_ms),
        cluster=member,
    )
    member.attach(node)
    await node.start()
    announce(
        {
            "ready": {
                "port": node.port,
                "http_port": node.http.port if node.http is not None else None,
                "pid": os.getpid(),
            }
        }
    )

    def addresses(line: str) -> None:
        raw = json.loads(line)
        member.set_addresses(
            [
                Address(a["index"], a["host"], a["port"], a.get("http_port"), a["dial"])
                for a in raw["members"]
            ]
        )

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(addresses, line)
        loop.call_soon_threadsafe(member.stop, 0)  # the supervisor is gone

    threading.Thread(target=read_stdin, name="esdblocal-supervisor", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, member.stop, 0)
    try:
        return await member.run()
    finally:
        with contextlib.suppress(Exception):
            await node.stop(grace=0.5)


if __name__ == "__main__":
    code = asyncio.run(main(parse_args()))
    sys.stdout.flush()
    os._exit(code)  # the stdin reader thread may still be blocked in a read
