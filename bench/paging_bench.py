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
import statistics
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import msgspec

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
    print(f"filled {count:,} items in {time.perf_counter() - started:.1f} s")


def timed(action: object, repeat: int) -> float:
    """Median milliseconds of ``action()``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        fill(directory, args.items)
        reads = ReadModels(directory)
        db = reads._db()  # the same connection, for the plain OFFSET query
        assert db is not None

        def plain(state: str, offset: int) -> list[tuple[object, ...]]:
            where = "" if state == "all" else "WHERE active = 1 "
            return db.execute(
                f"SELECT id, version, active, name, current_count FROM inventory_items {where}"
                "ORDER BY ordinal LIMIT 10 OFFSET ?",
                (offset,),
            ).fetchall()

        heading = ("state", "offset", "blocks ms", "ratio", "OFFSET ms", "ratio")
        print("\n{:<8}{:>10}{:>12}{:>8}{:>12}{:>8}".format(*heading))
        for state in ("active", "all"):
            base_blocks = base_plain = 0.0
            for offset in (0, args.items // 2, int(args.items * 6 / 7) - 10):
                page = reads.page(INVENTORY_VIEW, Filters(state=state), offset, 10)
                assert [r.id for r in page.records] == [r[0] for r in plain(state, offset)]
                ms_blocks = timed(
                    lambda s=state, o=offset: reads.page(INVENTORY_VIEW, Filters(state=s), o, 10),
                    args.repeat,
                )
                ms_plain = timed(lambda s=state, o=offset: plain(s, o), args.repeat)
                if offset == 0:
                    base_blocks, base_plain = ms_blocks, ms_plain
                print(
                    f"{state:<8}{offset:>10,}{ms_blocks:>12.3f}{ms_blocks / base_blocks:>8.1f}"
                    f"{ms_plain:>12.3f}{ms_plain / base_plain:>8.1f}"
                )


if __name__ == "__main__":
    main()
