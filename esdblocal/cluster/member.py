"""One node's membership of a local cluster: gossip, elections, replication, majorities.

It follows the real server's shape, simplified to what a test double needs:

- **Gossip.** Every member exchanges its state with every other twice a second; a member
  whose call fails is marked dead at once (a killed process refuses connections), and
  shows its last state until an election is done (``GossipServiceBase``).
- **Elections.** With no live leader, and a majority of members alive, the best candidate
  asks for votes: the member with the latest epoch, then the longest log (writer
  checkpoint), then the lowest node number (``ElectionsService.GetBestLeaderCandidate``
  orders the same way, ending on priority and instance id). A member votes once per term,
  only for a log at least as advanced as its own, and never while its leader is alive.
  A majority of votes makes a leader: it writes a ``$epoch-information`` event, the first
  record of its epoch, as the real ``EpochManager`` does.
- **Replication.** A follower subscribes with where its log ends and its last epochs; the
  leader finds the last epoch both logs share (``GetValidLogPosition``) and either streams
  every record from there, verbatim (positions, ids, timestamps), with its projection
  checkpoints, or tells the follower to truncate. Truncation is offline, as the real
  server's: the member leaves a truncate marker and exits; the supervisor starts it again,
  and it cuts its log before opening it.
- **Majorities.** The leader answers a write (and shows its events to subscriptions) once
  a majority of members hold it: itself and, in a cluster of three, one follower that has
  written and fsync'd it. Without a majority within the commit timeout the write ends with
  the real server's commit timeout; its events may still be committed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import grpc

from esdblocal.cluster import wire
from esdblocal.cluster.errors import CommitTimeout, NotLeader, NotReady
from esdblocal.cluster.hooks import Deliver, MemberView
from esdblocal.cluster.interceptor import ClusterInterceptor
from esdblocal.cluster.log import (
    EPOCH_EVENT_TYPE,
    EPOCH_STREAM,
    LogReader,
    Persisted,
    epoch_event_data,
    request_truncation,
    valid_position,
)
from esdblocal.store import (
    ANY,
    INITIAL_METADATA,
    Outcome,
    Proposed,
    Recorded,
    now_ticks,
    record_size,
)

if TYPE_CHECKING:
    from esdblocal.server import Node

log = logging.getLogger(__name__)

GOSSIP_INTERVAL = 0.5
GOSSIP_TIMEOUT = 0.5
VOTE_TIMEOUT = 0.5
# How long a member waits for the best candidate to win before it stands itself.
CANDIDATE_WAIT = 0.8
# A follower that heard from its leader this recently votes for no one else.
LEADER_LEASE = 1.0
HEARTBEAT = 0.5
# The real server's --commit-timeout-ms default.
COMMIT_TIMEOUT = 2.0
# Exit code of a member that must be started again at once (truncation, a newer leader).
RESTART = 75

LEADING = frozenset({"Leader"})
FOLLOWING = frozenset({"PreReplica", "CatchingUp", "Follower"})


@dataclass(frozen=True)
class Address:
    index: int
    host: str  # what clients dial (advertised)
    port: int
    http_port: int | None
    dial: str = "127.0.0.1"  # what the other members dial


@dataclass
class _View:
    state: wire.State
    alive: bool
    heard: float  # time.time() of the last exchange that worked


@dataclass
class _Held:
    """A group durable on the leader, waiting for a majority."""

    needed: int  # every record up to here must be on a majority
    outcomes: list[tuple[Any, Outcome]]
    records: list[Recorded]
    deliver: Deliver
    since: float = field(default_factory=time.monotonic)


class Member:
    def __init__(
        self,
        index: int,
        size: int,
        data_dir: Path,
        db_file: str,
        commit_timeout: float = COMMIT_TIMEOUT,
        announce: Callable[[dict[str, Any]], None] | None = None,
        peer_ca: bytes | None = None,
    ) -> None:
        self.index = index
        self._peer_ca = peer_ca  # a secure cluster's CA: members dial each other over TLS
        self.size = size
        self.quorum = size // 2 + 1
        self.data_dir = data_dir
        self.commit_timeout = commit_timeout
        self.instance_id = str(uuid4())
        self._started = time.time()
        self._announce = announce or (lambda message: None)
        self._persisted = Persisted.load(data_dir)
        self._reader = LogReader(data_dir / db_file)
        self._state = "Unknown"
        self._leader = -1
        self._me: Address | None = None
        self._peers: dict[int, wire.Peer] = {}
        self._addresses: dict[int, Address] = {}
        self._views: dict[int, _View] = {}
        self._node: Node | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._chaser, self._writer = -1, 0
        self._epoch: wire.Epoch | None = None
        self._committed = -1
        self._acks: dict[int, int] = {}
        self._pending: deque[_Held] = deque()
        self._appended = asyncio.Event()
        self._leader_heard = 0.0
        self._exit: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ the node's hooks

    @property
    def state(self) -> str:
        return self._state

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return ClusterInterceptor(self.refusal, self.leader_channel)

    def register(self, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(
            (wire.handler(self._gossip_call, self._vote_call, self._replicate_call),)
        )

    def leader_channel(self) -> grpc.aio.Channel | None:
        """A channel to the leader while this member follows one (None otherwise)."""
        if self._state not in FOLLOWING:
            return None
        peer = self._peers.get(self._leader)
        return peer.channel if peer is not None else None

    def refusal(self) -> BaseException | None:
        if self._state in LEADING:
            return None
        leader = self._addresses.get(self._leader)
        if self._state in FOLLOWING and leader is not None:
            return NotLeader(leader.host, leader.port, leader.http_port)
        return NotReady()

    def committed(
        self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded], deliver: Deliver
    ) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._locally_committed, outcomes, records, deliver)

    def members(self) -> list[MemberView]:
        views = [self._view_of_me()]
        leader_known = self._state in LEADING or any(
            view.alive and view.state.state == "Leader" for view in self._views.values()
        )
        for _, view in sorted(self._views.items()):
            state = view.state
            shown = state.state
            if not view.alive and leader_known:
                shown = "Unknown"  # ElectionsDone: the dead are no one's leader
            views.append(_member_view(state, shown, view.alive, int(view.heard * 10_000_000)))
        return sorted(views, key=lambda view: view.index)

    # ------------------------------------------------------------ setting up

    def attach(self, node: Node) -> None:
        """Called once the node is built, inside its loop."""
        self._node = node
        self._loop = asyncio.get_running_loop()
        self._chaser, self._writer = self._reader.ends()
        epochs = self._reader.epochs(1)
        self._epoch = epochs[0] if epochs else None
        self._committed = -1
        node.store.refusal = self.refusal

    def set_addresses(self, addresses: list[Address]) -> None:
        for address in addresses:
            self._addresses[address.index] = address
            if address.index == self.index:
                self._me = address
            elif address.index not in self._peers:
                self._peers[address.index] = wire.Peer(
                    address.index, address.dial, address.port, self._peer_ca
                )

    async def run(self) -> int:
        """Take part until told to stop; the exit code (RESTART: start me again)."""
        self._exit = asyncio.get_running_loop().create_future()
        self._spawn(self._gossip_loop())
        self._spawn(self._roles())
        self._spawn(self._timeouts())
        try:
            return await self._exit
        finally:
            for task in self._tasks:
                task.cancel()
            for peer in self._peers.values():
                await peer.close()

    def stop(self, code: int = 0) -> None:
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(code)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster task failed", exc_info=task.exception())
            print(f"esdblocal: node {self.index}: {task.exception()!r}", file=sys.stderr)
            self.stop(RESTART)

    def _set_state(self, state: str, leader: int) -> None:
        if (state, leader) == (self._state, self._leader):
            return
        self._state = state
        self._leader = leader
        self._announce(
            {
                "state": state,
                "leader": leader,
                "term": self._persisted.term,
                "epoch": self._epoch.number if self._epoch is not None else -1,
            }
        )

    # ------------------------------------------------------------ gossip

    def _my_state(self) -> wire.State:
        me = self._me
        assert me is not None
        return wire.State(
            index=self.index,
            instance_id=self.instance_id,
            state=self._state,
            term=self._persisted.term,
            leader=self._leader,
            epoch=self._epoch,
            writer=self._writer,
            chaser=self._chaser,
            committed=self._committed,
            host=me.host,
            port=me.port,
            http_port=me.http_port,
            started=self._started,
        )

    def _view_of_me(self) -> MemberView:
        return _member_view(self._my_state(), self._state, True, now_ticks())

    async def _gossip_call(
        self, state: wire.State, context: grpc.aio.ServicerContext
    ) -> wire.State:
        self._heard(state)
        return self._my_state()

    def _heard(self, state: wire.State) -> None:
        self._views[state.index] = _View(state, True, time.time())
        if self._state in LEADING and state.state == "Leader" and state.term > self._persisted.term:
            self._step_down(f"node {state.index} leads term {state.term}")

    async def _gossip_loop(self) -> None:
        while True:
            await self._gossip_round()
            await asyncio.sleep(GOSSIP_INTERVAL)

    async def _gossip_round(self) -> None:
        if self._me is None:
            return
        await asyncio.gather(*(self._exchange(peer) for peer in self._peers.values()))

    async def _exchange(self, peer: wire.Peer) -> None:
        try:
            state = await peer.gossip(self._my_state(), timeout=GOSSIP_TIMEOUT)
        except grpc.aio.AioRpcError:
            view = self._views.get(peer.index)
            if view is not None:
                view.alive = False
            return
        self._heard(state)

    def _live_leader(self) -> int | None:
        """A member alive and leading a term at least ours (or we do)."""
        if self._state in LEADING:
            return self.index
        for index, view in self._views.items():
            if (
                view.alive
                and view.state.state == "Leader"
                and view.state.term >= self._persisted.term
            ):
                return index
        return None

    # ------------------------------------------------------------ roles

    async def _roles(self) -> None:
        while self._me is None:
            await asyncio.sleep(0.05)
        while True:
            leader = await self._find_leader()
            if leader == self.index:
                await self._lead()
                return
            await self._follow(leader)

    async def _find_leader(self) -> int:
        self._set_state("Unknown", -1)
        waited: dict[int, int] = {}
        while True:
            await self._gossip_round()
            leader = self._live_leader()
            if leader is not None:
                return leader
            alive = [self.index] + [i for i, view in self._views.items() if view.alive]
            if len(alive) < self.quorum:
                await asyncio.sleep(0.3)
                continue
            best = max(alive, key=self._rank)
            if best == self.index or waited.get(best, 0) >= 2:
                if await self._campaign(alive):
                    return self.index
            else:
                waited[best] = waited.get(best, 0) + 1
                deadline = time.monotonic() + CANDIDATE_WAIT
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    leader = self._live_leader()
                    if leader is not None:
                        return leader
            await asyncio.sleep(random.uniform(0.05, 0.2))

    def _rank(self, index: int) -> tuple[int, int, int]:
        if index == self.index:
            epoch, writer = self._epoch, self._writer
        else:
            state = self._views[index].state
            epoch, writer = state.epoch, state.writer
        return (epoch.number if epoch is not None else -1, writer, -index)

    async def _campaign(self, alive: list[int]) -> bool:
        terms = [view.state.term for view in self._views.values()]
        self._persisted.term = max([self._persisted.term, *terms]) + 1
        self._persisted.voted_for = self.index
        self._persisted.save(self.data_dir)
        epoch = self._epoch.number if self._epoch is not None else -1
        request = wire.VoteRequest(self._persisted.term, self.index, epoch, self._writer)
        voters = [self._peers[i] for i in alive if i != self.index]
        replies = await asyncio.gather(
            *(peer.vote(request, timeout=VOTE_TIMEOUT) for peer in voters),
            return_exceptions=True,
        )
        granted = 1
        for reply in replies:
            if isinstance(reply, wire.VoteReply):
                if reply.term > self._persisted.term:
                    self._persisted.term = reply.term
                    self._persisted.voted_for = -1
                    self._persisted.save(self.data_dir)
                    return False
                granted += reply.granted
        return granted >= self.quorum

    async def _vote_call(
        self, request: wire.VoteRequest, context: grpc.aio.ServicerContext
    ) -> wire.VoteReply:
        persisted = self._persisted
        if request.term < persisted.term or self._state in LEADING:
            return wire.VoteReply(persisted.term, False)
        if (
            self._state in FOLLOWING
            and time.monotonic() - self._leader_heard < LEADER_LEASE
            and request.candidate != self._leader
        ):
            return wire.VoteReply(persisted.term, False)  # our leader is alive
        epoch = self._epoch.number if self._epoch is not None else -1
        if request.term > persisted.term:
            persisted.term, persisted.voted_for = request.term, -1
        granted = (request.epoch_number, request.writer) >= (epoch, self._writer) and (
            persisted.voted_for in (-1, request.candidate)
        )
        if granted:
            persisted.voted_for = request.candidate
        persisted.save(self.data_dir)
        return wire.VoteReply(persisted.term, granted)

    # ------------------------------------------------------------ leading

    async def _lead(self) -> None:
        node = self._node
        assert node is not None
        previous = self._epoch
        epoch = wire.Epoch(
            previous.number + 1 if previous is not None else 0,
            self._writer,
            str(uuid4()),
            self.index,
        )
        fresh = self._chaser < 0
        self._acks = {}
        self._committed = -1
        self._epoch = epoch
        self._set_state("Leader", self.index)
        # The epoch's record comes first: nothing can be queued before it (clients were
        # refused until the line above, and this runs on without yielding).
        data = epoch_event_data(epoch, previous, self.instance_id)
        written = self._append(
            EPOCH_STREAM, Proposed(str(uuid4()), EPOCH_EVENT_TYPE, "application/json", data, b"")
        )
        if fresh:  # a new cluster: the system streams' metadata, as a new node writes
            for stream, metadata in INITIAL_METADATA:
                body = json.dumps(metadata, separators=(",", ":")).encode()
                self._append(
                    stream, Proposed(str(uuid4()), "$metadata", "application/json", body, b"")
                )
        self._appended.set()
        await asyncio.gather(self._gossip_round(), return_exceptions=True)
        # Persistent subscriptions and projections run on the leader only (as on a real
        # cluster): built again from what this log holds now.
        await node.persistent.subsystem.restart()
        await node.projections.start()
        with contextlib.suppress(CommitTimeout):  # committed later, when a follower catches up
            await written
        await asyncio.Event().wait()  # leads until the process ends

    def _append(self, stream: str, event: Proposed) -> asyncio.Future[Any]:
        node = self._node
        assert node is not None and self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        node.store.submit("append", stream, ANY, [event], future)
        return future

    def _step_down(self, why: str) -> None:
        print(f"esdblocal: node {self.index} steps down: {why}", file=sys.stderr, flush=True)
        self._set_state("ShuttingDown", -1)
        self.stop(RESTART)

    def _locally_committed(
        self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded], deliver: Deliver
    ) -> None:
        if records:
            last = records[-1]
            self._chaser = last.position
            self._writer = last.position + record_size(last.stream, last)
        if self._state not in LEADING:  # a follower's own writes: its leader's records
            deliver(outcomes, records)
            return
        self._pending.append(_Held(self._chaser, outcomes, records, deliver))
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()
        self._release()

    def _majority(self) -> int:
        positions = [self._chaser] + [self._acks.get(i, -1) for i in self._peers]
        positions.sort(reverse=True)
        return positions[self.quorum - 1]

    def _release(self) -> None:
        committed = self._majority()
        if committed > self._committed:
            self._committed = committed
        pending = self._pending
        while pending and pending[0].needed <= committed:
            held = pending.popleft()
            held.deliver(held.outcomes, held.records)

    async def _timeouts(self) -> None:
        """Writes no majority acknowledged in time end with the commit timeout."""
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for held in self._pending:
                if now - held.since < self.commit_timeout:
                    break
                if held.outcomes:
                    held.deliver([(token, CommitTimeout()) for token, _ in held.outcomes], [])
                    held.outcomes = []

    async def _replicate_call(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        iterator = requests.__aiter__()
        subscribe = await anext(iterator, None)
        if not isinstance(subscribe, wire.Subscribe):
            return
        if self._state not in LEADING:
            yield wire.Refused("not the leader")
            return
        if subscribe.term > self._persisted.term:
            yield wire.Refused(f"term {subscribe.term} is newer")
            return
        leader_epochs = await self._run(self._reader.epochs, 10_000)
        valid = valid_position(subscribe.writer, subscribe.epochs, leader_epochs, self._writer)
        if valid < subscribe.writer:
            print(
                f"esdblocal: node {self.index}: node {subscribe.index} diverged; it truncates"
                f" from {valid} (its log ends at {subscribe.writer})",
                file=sys.stderr,
                flush=True,
            )
            yield wire.Truncate(valid)
            return
        follower = subscribe.index

        async def read_acks() -> None:
            async for message in iterator:
                if isinstance(message, wire.Ack) and message.position > self._acks.get(
                    follower, -1
                ):
                    self._acks[follower] = message.position
                    self._release()

        acks = asyncio.ensure_future(read_acks())
        position, inclusive = valid, True
        sent_checkpoints: dict[str, int] | None = None
        first = True
        try:
            while not acks.done():
                appended = self._appended
                rows, checkpoints, head = await self._run(self._reader.batch, position, inclusive)
                if checkpoints is not None and checkpoints == sent_checkpoints:
                    checkpoints = None
                elif checkpoints is not None:
                    sent_checkpoints = checkpoints
                if rows or checkpoints is not None or first:
                    first = False
                    yield wire.Batch(
                        [tuple(row) for row in rows], checkpoints, head, self._committed
                    )
                    if rows:
                        position, inclusive = rows[-1].position, False
                    continue
                try:
                    await asyncio.wait_for(appended.wait(), HEARTBEAT)
                except TimeoutError:
                    yield wire.Batch([], None, head, self._committed)
        finally:
            acks.cancel()

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        node = self._node
        assert node is not None
        return await asyncio.get_running_loop().run_in_executor(node.readers, function, *args)

    # ------------------------------------------------------------ following

    async def _follow(self, leader: int) -> None:
        node = self._node
        assert node is not None
        self._set_state("PreReplica", leader)
        self._leader_heard = time.monotonic()
        peer = self._peers[leader]
        call = peer.replicate()
        try:
            epochs = await self._run(self._reader.epochs)
            await call.write(wire.Subscribe(self.index, self._persisted.term, self._writer, epochs))
            acked = False
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                if isinstance(message, wire.Refused):
                    await asyncio.sleep(0.2)
                    return
                if isinstance(message, wire.Truncate):
                    request_truncation(self.data_dir, message.position)
                    print(
                        f"esdblocal: node {self.index}: offline truncation from"
                        f" {message.position} (the log ends at {self._writer}); restarting",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._set_state("ShuttingDown", -1)
                    self.stop(RESTART)
                    await asyncio.Event().wait()
                assert isinstance(message, wire.Batch)
                self._leader_heard = time.monotonic()
                if self._state == "PreReplica":
                    self._set_state("CatchingUp", leader)
                    view = self._views.get(leader)
                    if view is not None and view.state.term > self._persisted.term:
                        self._persisted.term = view.state.term
                        self._persisted.save(self.data_dir)
                if message.rows or message.checkpoints is not None:
                    records = [Recorded._make(row) for row in message.rows]
                    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                    node.store.submit_replicated(records, message.checkpoints, future)
                    await future
                    if records:
                        last = records[-1]
                        if last.type == EPOCH_EVENT_TYPE and last.stream == EPOCH_STREAM:
                            self._epoch = _epoch_of(last) or self._epoch
                        else:
                            for record in reversed(records):
                                if record.stream == EPOCH_STREAM:
                                    self._epoch = _epoch_of(record) or self._epoch
                                    break
                        await call.write(wire.Ack(last.position))
                        acked = True
                if not acked:
                    await call.write(wire.Ack(self._chaser))
                    acked = True
                self._committed = max(self._committed, message.committed)
                if self._chaser >= message.head and self._state == "CatchingUp":
                    self._set_state("Follower", leader)
        except grpc.aio.AioRpcError:
            return
        finally:
            call.cancel()


def _epoch_of(record: Recorded) -> wire.Epoch | None:
    try:
        body = json.loads(record.data)
        return wire.Epoch(
            int(body["epochNumber"]),
            record.position,
            str(body["epochId"]),
            int(body.get("esdblocalNode", -1)),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _member_view(state: wire.State, shown: str, alive: bool, heard: int) -> MemberView:
    epoch = state.epoch
    return MemberView(
        index=state.index,
        instance_id=state.instance_id,
        state=shown,
        alive=alive,
        host=state.host,
        port=state.port,
        http_port=state.http_port,
        time_stamp=heard,
        writer=state.writer,
        chaser=state.chaser,
        committed=state.committed,
        epoch_number=epoch.number if epoch is not None else -1,
        epoch_position=epoch.position if epoch is not None else -1,
        epoch_id=epoch.id if epoch is not None else "00000000-0000-0000-0000-000000000000",
    )
