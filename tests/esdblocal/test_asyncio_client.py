"""The asyncio client against the same server: appends, reads, subscriptions, races."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from esdbclient import AsyncEventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound, WrongCurrentVersion

pytestmark = pytest.mark.asyncio


async def connect(uri: str) -> AsyncEventStoreDBClient:
    client = AsyncEventStoreDBClient(uri)
    await client.connect()
    return client


async def test_append_read_and_wrong_version(esdb_uri: str) -> None:
    client = await connect(esdb_uri)
    stream = f"test-{uuid4()}"
    try:
        position = await client.append_to_stream(
            stream, current_version=StreamState.NO_STREAM, events=[NewEvent(type="A", data=b"{}")]
        )
        recorded = await client.get_stream(stream)
        assert [(e.type, e.commit_position) for e in recorded] == [("A", position)]
        with pytest.raises(WrongCurrentVersion):
            await client.append_to_stream(
                stream, current_version=StreamState.NO_STREAM, events=NewEvent(type="B", data=b"")
            )
        with pytest.raises(NotFound):
            await client.get_stream(f"test-{uuid4()}")
    finally:
        await client.close()


async def test_live_subscription_receives_events_from_other_clients(esdb_uri: str) -> None:
    reader, writers = await connect(esdb_uri), [await connect(esdb_uri) for _ in range(4)]
    stream_prefix = f"async{uuid4().hex}-"
    try:
        subscription = await reader.subscribe_to_all(
            from_end=True, filter_include=[stream_prefix + ".*"], filter_by_stream_name=True
        )

        async def write(index: int) -> None:
            for n in range(5):
                await writers[index].append_to_stream(
                    f"{stream_prefix}{index}",
                    current_version=StreamState.ANY,
                    events=NewEvent(type=f"W{index}N{n}", data=b"{}"),
                )

        async def receive() -> list[str]:
            types = []
            async for event in subscription:
                types.append(event.type)
                if len(types) == 20:
                    break
            return types

        received, *_ = await asyncio.wait_for(
            asyncio.gather(receive(), *(write(i) for i in range(4))), timeout=20
        )
        assert sorted(received) == sorted(f"W{i}N{n}" for i in range(4) for n in range(5))
        for index in range(4):  # each writer's events arrive in its order
            mine = [t for t in received if t.startswith(f"W{index}N")]
            assert mine == [f"W{index}N{n}" for n in range(5)]
        await subscription.stop()
    finally:
        for client in (reader, *writers):
            await client.close()


async def test_concurrent_writers_on_one_version(esdb_uri: str) -> None:
    clients = [await connect(esdb_uri) for _ in range(16)]
    stream = f"test-{uuid4()}"
    try:
        results = await asyncio.gather(
            *(
                c.append_to_stream(
                    stream,
                    current_version=StreamState.NO_STREAM,
                    events=NewEvent(type=f"C{i}", data=b""),
                )
                for i, c in enumerate(clients)
            ),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, int)]
        losers = [r for r in results if isinstance(r, WrongCurrentVersion)]
        assert (len(winners), len(losers)) == (1, 15)
        assert len(await clients[0].get_stream(stream)) == 1
    finally:
        for client in clients:
            await client.close()
