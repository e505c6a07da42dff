"""What a list page costs at a deep offset: the read store's block counts against OFFSET.

Fills a read store with N inventory items through the projector's own ``ReadStoreWriter``
(no event store involved: this measures the read store alone), deactivates every 7th, and times
``ReadModels.page`` at offsets 0, N/2 and N-10 for ``state=active`` and ``state=all``,
against the plain ``ORDER BY ordinal LIMIT ? OFFSET ?`` query a store without block counts
would run. Prints a table; figures are ratios to offset 0 of the same method, run side by
side. Never pass/fail.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import msgspec
from common import Bench, log, median

from domain import inventory
from eventstore.feed import Recorded
from projections.reader import Filters, ReadModels
from projections.schema import new_generation, swap
from projections.views import INVENTORY_VIEW
from projections.writer import ReadStoreWriter


def fill(directory: Path, count: int) -> None:
    path = new_generation(directory)
    swap(directory, path)
    writer = ReadStoreWriter(path)
    created = msgspec.json.encode(inventory.InventoryItemCreated(name="Widget"))
    gone = msgspec.json.encode(inventory.InventoryItemDeactivated())
    position = 0
    started = time.perf_counter()
    for start in range(0, count, 5000):
        batch = []
        for number in range(start, min(count, start + 5000)):
            stream = f"inventoryItem-{uuid4()}"
            position += 1
            batch.append(Recorded(stream, "InventoryItemCreated", created, 0, position))
            if number % 7 == 0:
                position += 1
                batch.append(Recorded(stream, "InventoryItemDeactivated", gone, 1, position))
        writer.commit(batch, position)
    writer.close()
    log(f"filled {count:,} items in {time.perf_counter() - started:.1f} s")


def timed(action: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``action()``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="20,000 items, 10 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.repeat = 20_000, 10
    return Bench.main("paging-bench", lambda bench: run(args, bench))


def run(args: argparse.Namespace, bench: Bench) -> None:
    fill(bench.tmp, args.items)
    reads = ReadModels(bench.tmp)
    db = reads._db()  # the same connection, for the plain OFFSET query
    assert db is not None

    def plain(state: str, offset: int) -> list[tuple[object, ...]]:
        where = "" if state == "all" else "WHERE active = 1 "
        query = f"SELECT id, version, active, name, current_count FROM inventory_items {where}"
        return db.execute(f"{query}ORDER BY ordinal LIMIT 10 OFFSET ?", (offset,)).fetchall()

    rows, n = [], args.repeat
    for state in ("active", "all"):
        filters, base = Filters(state=state), (0.0, 0.0)
        for offset in (0, args.items // 2, int(args.items * 6 / 7) - 10):
            page = reads.page(INVENTORY_VIEW, filters, offset, 10)
            assert [r.id for r in page.records] == [r[0] for r in plain(state, offset)]
            blocks = timed(lambda f=filters, o=offset: reads.page(INVENTORY_VIEW, f, o, 10), n)
            offsets = timed(lambda s=state, o=offset: plain(s, o), n)
            base = (blocks, offsets) if offset == 0 else base
            figures = [f"{blocks:.3f}", f"{blocks / base[0]:.1f}", f"{offsets:.3f}"]
            rows.append([state, f"{offset:,}", *figures, f"{offsets / base[1]:,.1f}"])
    bench.header(f"## A list page at a deep offset ({args.items:,} items, median of {args.repeat})")
    header = "state|offset|block counts ms|ratio to offset 0|plain `OFFSET` ms|ratio"
    bench.report.table(header, rows)


if __name__ == "__main__":
    sys.exit(main())
