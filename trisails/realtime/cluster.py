"""Several trisails processes as one: rooms and broadcasts carried between them by Redis.

Each process keeps the rooms of its own sockets in memory (the :class:`RedisAdapter` is a
:class:`~trisails.realtime.rooms.MemoryAdapter` that also talks to the others), and Redis pub/sub
carries what the others must do:

* a broadcast is delivered here at once, and published once for the other processes, which deliver it
  to their own members; every socket lives in exactly one process, so each member gets it once;
* an operation on sockets this process may not hold (``join`` of a socket id that lives elsewhere,
  ``add_room_members_to_rooms``, ``remove_room_members_from_rooms``, ``leave_all``) is done here and
  published for the others to do on theirs;
* a question (how many sockets are in a room, cluster-wide) is published, and every process answers on
  the asker's own channel; the asker knows how many answers to wait for from Redis (``PUBSUB NUMSUB``).
  A question may have several answers per process (:meth:`RedisBus.request`): a broadcast with acks is
  answered first with the sockets each process reached, then with each socket's ack as it comes;
* Socket.IO's server API across processes (broadcasts with acks, ``fetch_sockets``, ``sockets_join``
  and the like, ``server_side_emit``) travels as the kinds in :data:`SERVED`: the adapter only carries
  them, and the namespace (its :attr:`RedisAdapter.serve`) says what they mean. A process without the
  namespace answers ``{"none": true}`` at once, so nobody waits for it.

Nothing about membership is stored in Redis, so a process that dies takes its sockets' memberships with
it: there are no phantom members to clean up.

Redis going away never takes a process down. Local delivery goes on; messages for the other processes
are dropped (and counted) while Redis is unreachable; the link reconnects with backoff, logs the outage
and its end, and :attr:`RedisBus.connected` (reported by the health endpoint) says how it is. A watchdog
sends a ping through Redis to this process every second, so a subscription that silently died is
noticed and rebuilt, whatever the client library did about it.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import trio

from ..protocol import engineio as eio
from ..protocol.engineio import Envelope
from .connection import new_id
from .rooms import MemoryAdapter, Serve

__all__ = ["RedisAdapter", "RedisBus"]

log = logging.getLogger("trisails.cluster")

#: Messages waiting to be published; past this, new ones are dropped (and counted) rather than queued.
QUEUE_SIZE = 10_000
#: Seconds to connect and subscribe before an attempt counts as failed.
CONNECT_TIMEOUT = 3.0
#: At most this many messages go to Redis in one pipeline.
BATCH = 512
#: Seconds between watchdog pings, and how long a ping may take before the link counts as broken.
PING_EVERY = 1.0
PING_TIMEOUT = 3.0
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
#: Kinds of message a namespace handles itself (:attr:`RedisAdapter.serve`): the Socket.IO server API
#: across processes.
SERVED = ("broadcast_ack", "fetch_sockets", "sockets", "server_side")


class RedisBus:
    """This process's link to the others: publish without waiting, receive, ask and gather answers."""

    def __init__(self, url: str, *, key: str = "trisails") -> None:
        self.url = url
        self.key = key
        self.uid = new_id()
        """This process's id on the bus."""
        self.all_channel = f"{key}:all"
        self.own_channel = f"{key}:to:{self.uid}"
        self.connected = False
        """Whether the link to Redis works right now."""
        self.down_since: float | None = None
        self.dropped = 0
        """Messages for the other processes lost because Redis was unreachable (or the queue was full)."""
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        """What to do with each kind of message from the other processes."""
        # (channel, message) to publish, or ("", write) for a write(pipe) that adds its own commands
        self._send, self._queue = trio.open_memory_channel[tuple[str, Any]](QUEUE_SIZE)
        self._client: Any = None
        self._link = trio.CancelScope()
        self._asks: dict[str, Callable[[dict[str, Any]], None]] = {}  # question id -> what takes its answers
        self._last_ping = 0.0

    @property
    def client(self) -> Any:
        """The Redis client while the link is up (other parts, such as the session store, borrow it)."""
        return self._client if self.connected else None

    # ----------------------------------------------------------------------------------------- sending
    def publish(self, kind: str, body: dict[str, Any], *, to: str | None = None) -> None:
        """Queue a message for every other process (or the one ``to``); never waits."""
        if not self.connected:
            if kind != "ping":
                self.dropped += 1
            return
        message = orjson.dumps({"kind": kind, "from": self.uid, **body})
        channel = f"{self.key}:to:{to}" if to else self.all_channel
        try:
            self._send.send_nowait((channel, message))
        except trio.WouldBlock:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("Redis link: publish queue full, %d messages dropped so far", self.dropped)

    def store(self, write: Callable[[Any], None]) -> None:
        """Queue ``write(pipeline)``, which adds commands (a stream entry, a key) to the next pipeline,
        in order with the messages published; never waits. Dropped (and counted) while Redis is down."""
        if not self.connected:
            self.dropped += 1
            return
        try:
            self._send.send_nowait(("", write))
        except trio.WouldBlock:
            self.dropped += 1

    async def others(self, timeout: float = 1.0) -> int:
        """How many other processes listen on the bus now (Redis ``PUBSUB NUMSUB``); 0 while the link is
        down, or when Redis does not say within ``timeout``."""
        if not self.connected or self._client is None:
            return 0
        subscribers: dict[Any, Any] = {}
        try:
            with trio.move_on_after(timeout):
                subscribers = await self._client.pubsub_numsub(self.all_channel)
        except Exception as error:  # Redis went away between two checks: nobody to ask
            log.debug("Redis link: cannot count processes: %s", error)
            return 0
        return max(0, int(next(iter(subscribers.values()), 0)) - 1)

    def request(self, kind: str, body: dict[str, Any], on_answer: Callable[[dict[str, Any]], None]) -> str | None:
        """Publish a question to every other process; each of their answers (any number per process)
        goes to ``on_answer`` until :meth:`end_request`. Returns the question's id, or None while the
        link is down (nobody will answer)."""
        if not self.connected:
            return None
        ask_id = new_id()
        self._asks[ask_id] = on_answer
        self.publish(kind, {**body, "ask": ask_id})
        return ask_id

    def end_request(self, ask_id: str | None) -> None:
        """Forget a question: answers that come later are dropped."""
        if ask_id is not None:
            self._asks.pop(ask_id, None)

    async def gather(self, kind: str, body: dict[str, Any], timeout: float = 1.0) -> tuple[list[dict[str, Any]], int]:
        """Ask every other process; return their answers (one each, those that came within
        ``timeout``) and how many processes were asked."""
        answers: list[dict[str, Any]] = []
        others = 0
        with trio.move_on_after(timeout):
            others = await self.others(timeout)
            if others == 0:
                return [], 0
            all_in = trio.Event()

            def on_answer(answer: dict[str, Any]) -> None:
                answers.append(answer)
                if len(answers) >= others:
                    all_in.set()

            ask_id = self.request(kind, body, on_answer)
            if ask_id is None:
                return [], 0
            try:
                await all_in.wait()
            finally:
                self.end_request(ask_id)
        return answers[:others], others

    async def ask(self, kind: str, body: dict[str, Any], timeout: float = 1.0) -> list[dict[str, Any]]:
        """Ask every other process and return their answers (those that came within ``timeout``)."""
        answers, _ = await self.gather(kind, body, timeout)
        return answers

    def answer(self, question: dict[str, Any], body: dict[str, Any]) -> None:
        """Reply to a question from another process."""
        self.publish("answer", {**body, "ask": question["ask"]}, to=question["from"])

    # ----------------------------------------------------------------------------------------- running
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the link up until cancelled: connect, subscribe, publish, reconnect after an outage.

        ``task_status.started()`` comes once the first attempt has connected or failed (within
        :data:`CONNECT_TIMEOUT`), so an app serves with its link up whenever Redis is.
        """
        import coredis

        backoff = BACKOFF_FIRST
        started = False
        while True:
            self._link = link = trio.CancelScope(deadline=trio.current_time() + CONNECT_TIMEOUT)
            try:
                with link:
                    client = coredis.Redis.from_url(self.url)
                    async with client, trio.open_nursery() as nursery:
                        await nursery.start(self._subscribe, client)
                        await client.ping()
                        link.deadline = math.inf  # connected: from now on the watchdog judges the link
                        self._client = client
                        self._up()
                        backoff = BACKOFF_FIRST
                        if not started:
                            started = True
                            task_status.started()
                        nursery.start_soon(self._publisher)
                        nursery.start_soon(self._watchdog)
                if link.cancelled_caught and self.connected:
                    self._down(ConnectionError(f"no answer from Redis within {CONNECT_TIMEOUT:.0f} s"))
                elif link.cancelled_caught and self.down_since is None:
                    self._down(ConnectionError(f"cannot reach Redis at {self.url} within {CONNECT_TIMEOUT:.0f} s"))
            except Exception as error:  # an outage, whatever shape the client library gave it
                self._down(_cause(error))
            self._client = None
            if not started:
                started = True
                task_status.started()
            await trio.sleep(backoff)
            backoff = min(BACKOFF_MAX, backoff * 2)

    async def _subscribe(self, client: Any, *, task_status: trio.TaskStatus[None]) -> None:
        async with client.pubsub(channels=[self.all_channel, self.own_channel]) as subscription:
            task_status.started()
            async for message in subscription:
                if message.get("type") == "message":
                    self._receive(message["data"])

    async def _publisher(self) -> None:
        async for first in self._queue:
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, message in batch:
                        if channel:
                            pipe.publish(channel, message)
                        else:
                            message(pipe)
            except Exception:
                self.dropped += len(batch)
                raise

    async def _watchdog(self) -> None:
        """Ping this process through Redis; no echo within PING_TIMEOUT means the link is broken: it is
        marked down at once (so nothing waits on it any more) and torn down, hung commands included."""
        self._last_ping = time.monotonic()
        while True:
            await trio.sleep(PING_EVERY)
            if time.monotonic() - self._last_ping > PING_TIMEOUT:
                self._down(ConnectionError(f"no ping came back through Redis within {PING_TIMEOUT:.0f} s"))
                self._link.cancel()
                return
            self.publish("ping", {}, to=self.uid)

    def _receive(self, data: bytes | str) -> None:
        try:
            message = orjson.loads(data)
            kind = message["kind"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("Redis link: ignored a message that is not ours: %r", data[:200])
            return
        if kind == "ping":
            self._last_ping = time.monotonic()
            return
        if kind == "answer":
            taker = self._asks.get(message.get("ask", ""))
            if taker is not None:
                try:
                    taker(message)
                except Exception:
                    log.exception("Redis link: taking an answer failed")
            return
        if message.get("from") == self.uid:
            return  # our own broadcast or operation, already done here
        handler = self.handlers.get(kind)
        if handler is None:
            log.debug("Redis link: no handler for %r messages", kind)
            return
        try:
            handler(message)
        except Exception:
            log.exception("Redis link: handling a %r message failed", kind)

    def _up(self) -> None:
        if self.down_since is not None:
            log.warning("Redis link restored after %.1f s (%d messages dropped)", time.monotonic() - self.down_since, self.dropped)
        self.connected = True
        self.down_since = None

    def _down(self, error: BaseException) -> None:
        if self.connected or self.down_since is None:
            log.error("Redis link down (%s): local delivery goes on; reconnecting with backoff", error)
            self.down_since = time.monotonic()
        self.connected = False

    def statistics(self) -> dict[str, Any]:
        """How the link is, for the health endpoint."""
        return {
            "connected": self.connected,
            "down_for": None if self.down_since is None else math.floor(time.monotonic() - self.down_since),
            "dropped": self.dropped,
        }


class RedisAdapter(MemoryAdapter):
    """Rooms of this process's sockets, with broadcasts and operations shared through a :class:`RedisBus`."""

    def __init__(self, deliver: Callable[[str, Envelope], object], bus: RedisBus, namespace: str) -> None:
        super().__init__(deliver)
        self.bus = bus
        self.namespace = namespace
        self.apply: Callable[[str, dict[str, Any]], None] | None = None
        """Does an operation another process sent on this process's sockets (set by the app)."""
        self.serve: Serve | None = None
        """Does what another process asks of this namespace's sockets here (set by the namespace)."""

    def broadcast(self, envelope: Envelope, rooms: Iterable[str] = (), exclude: Iterable[str] = ()) -> int:
        """Deliver here, and publish once for the other processes; returns the deliveries made here."""
        rooms, exclude = list(rooms), list(exclude)
        count = super().broadcast(envelope, rooms, exclude)
        body: dict[str, Any] = {"ns": self.namespace, "rooms": rooms, "exclude": exclude, "parts": _parts(envelope)}
        if envelope.volatile:
            body["volatile"] = True
        self.bus.publish("broadcast", body)
        return count

    def forward(self, operation: str, args: dict[str, Any]) -> None:
        """Have the other processes do ``operation`` (already done here) on their sockets."""
        self.bus.publish("operation", {"ns": self.namespace, "operation": operation, "args": args})

    async def count(self, rooms: Iterable[str]) -> int:
        """How many sockets are in any of ``rooms`` in the whole cluster (a question to every process)."""
        rooms = list(rooms)
        answers = await self.bus.ask("count", {"ns": self.namespace, "rooms": rooms})
        return len(self.sockets(rooms)) + sum(int(a.get("count", 0)) for a in answers)

    def publish(self, kind: str, body: dict[str, Any]) -> None:
        """Tell the other processes' namespaces ``kind`` (their :attr:`serve` does it); never waits."""
        self.bus.publish(kind, {**body, "ns": self.namespace})

    async def others(self) -> int:
        """How many other processes there are now (0 while Redis is unreachable)."""
        return await self.bus.others()

    def request(self, kind: str, body: dict[str, Any], on_answer: Callable[[dict[str, Any]], None]) -> str | None:
        """Ask the other processes' namespaces; their answers go to ``on_answer`` until :meth:`end_request`."""
        return self.bus.request(kind, {**body, "ns": self.namespace}, on_answer)

    def end_request(self, ask_id: str | None) -> None:
        self.bus.end_request(ask_id)

    async def ask(self, kind: str, body: dict[str, Any], timeout: float) -> tuple[list[dict[str, Any]], int]:
        """One answer from each other process's namespace (those in time), and how many were asked."""
        return await self.bus.gather(kind, {**body, "ns": self.namespace}, timeout)

    # ----------------------------------------------------------------------------------------- receiving
    def on_request(self, message: dict[str, Any]) -> None:
        """Hand a question or an operation from another process to the namespace."""
        reply = _replier(self.bus, message)
        if self.serve is None:
            if reply is not None:
                reply({"none": True})
            return
        self.serve(message["kind"], message, reply)

    def on_broadcast(self, message: dict[str, Any]) -> None:
        envelope = _envelope(message["parts"])
        envelope.volatile = bool(message.get("volatile"))
        MemoryAdapter.broadcast(self, envelope, message["rooms"], message["exclude"])

    def on_operation(self, message: dict[str, Any]) -> None:
        if self.apply is not None:
            self.apply(message["operation"], message["args"])

    def on_count(self, message: dict[str, Any]) -> None:
        self.bus.answer(message, {"count": len(self.sockets(message["rooms"]))})


def _replier(bus: RedisBus, message: dict[str, Any]) -> Callable[[dict[str, Any]], None] | None:
    """How to answer ``message`` (any number of times), or None when its sender wants no answer."""
    if "ask" not in message:
        return None
    return lambda body: bus.answer(message, body)


def _parts(envelope: Envelope) -> list[Any]:
    """An envelope's Engine.IO messages as JSON: text as it is, binary as ``{"b": base64}``."""
    parts: list[Any] = []
    for packet in envelope.packets:
        data = packet.data
        parts.append({"b": base64.b64encode(data).decode()} if isinstance(data, (bytes, bytearray)) else data)
    return parts


def _envelope(parts: list[Any]) -> Envelope:
    return Envelope(
        [eio.Packet(eio.PacketType.MESSAGE, base64.b64decode(p["b"]) if isinstance(p, dict) else p) for p in parts]
    )


def route(bus: RedisBus, adapters: Callable[[str], RedisAdapter | None]) -> None:
    """Send each kind of message from the other processes to the adapter of its namespace."""

    def by_namespace(method: str) -> Callable[[dict[str, Any]], None]:
        def handle(message: dict[str, Any]) -> None:
            adapter = adapters(message.get("ns", "/"))
            if adapter is not None:
                getattr(adapter, method)(message)
            else:  # no such namespace here: nothing of it to do, and an asker should not wait for us
                reply = _replier(bus, message)
                if reply is not None:
                    reply({"none": True, "count": 0})

        return handle

    bus.handlers.update(
        {"broadcast": by_namespace("on_broadcast"), "operation": by_namespace("on_operation"), "count": by_namespace("on_count")}
    )
    bus.handlers.update({kind: by_namespace("on_request") for kind in SERVED})


def _cause(error: BaseException) -> BaseException:
    """The one error inside nested single-error exception groups, for a log line that says something."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
