"""``python -m esdblocal``: serve until SIGTERM or Ctrl-C, printing the connection string."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from esdblocal.server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m esdblocal",
        description="An embedded server speaking EventStoreDB's gRPC protocol (insecure).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=2113, help="port (0 picks a free one)")
    parser.add_argument(
        "--advertise-host",
        help="host gossip tells clients to dial (default: localhost when on loopback)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data", type=Path, default=Path("var/esdb"), help="data directory")
    where.add_argument("--memory", action="store_true", help="keep nothing on disk")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    task = asyncio.ensure_future(
        serve(args.host, args.port, None if args.memory else args.data, args.advertise_host)
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
