"""Redis goes away under load, and comes back: the processes keep serving their own sockets.

Two processes of the quickstart's room actions (``/rooms/invite``, ``/rooms/shout``, no models) share
a ``redis-server`` this module owns, on a port of its own. On each process a speaker shouts to the room
``load`` about every 20 ms (each shout numbered) and a listener in that room counts what it hears, by
process. Then Redis stops, as in a crash or a restart, and starts again on the same port; or it
freezes (SIGSTOP: connections stay open and nothing answers, as with a hung server or a network that
silently drops everything) and thaws.

What the cluster module promises: local delivery goes on while Redis is unreachable, messages for the
other processes are dropped and counted, ``/__health`` says ``degraded`` with the link down (a frozen
Redis is noticed by the self-ping watchdog), the link comes back on its own, and nothing crashes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from tests.cluster.listening import Heard, assert_logs_clean, degraded, health, linked, wait_health
from tests.cluster.processes import Process, RedisServer, copy_app, launch, stop_all, wait_serving
from trisails.client import Client, connect

#: A speaker shouts this often, at most this many times (the story stops it well before).
SHOUT_EVERY, MAX_SHOUTS = 0.02, 3000
#: The longest a listener may go without hearing its own process's speaker, outage or not (generous:
#: two servers, a Redis and this test share a busy machine).
LOCAL_GAP = 1.5
#: What the outage story may take in all.
WAIT = 30.0
#: Errors the processes are expected to log while Redis is away: the link, and each request's session.
OUTAGE_LOG_LINES = ("Redis link down", "session store unavailable")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outage")


@pytest.fixture(scope="module")
def redis(work: Path) -> Iterator[RedisServer]:
    server = RedisServer(work)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def processes(work: Path, redis: RedisServer) -> Iterator[list[Process]]:
    """Processes A and B, for the whole module: each story starts once both links are up."""
    folder, _ = copy_app(work / "app", with_models=False)
    started = [launch(name, folder, work, redis_url=redis.url) for name in "AB"]
    try:
        wait_serving(started)
        yield started
    finally:
        stop_all(started)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@dataclass
class Shouts:
    """What one listener heard: by speaking process, the shout numbers and when each arrived."""

    heard: Heard
    by: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))

    def take(self) -> None:
        for _, payload, arrived in self.heard.messages[sum(len(v) for v in self.by.values()):]:
            name, seq = payload["text"].split(":")
            self.by[name].append((int(seq), arrived))

    def last(self, name: str) -> int:
        self.take()
        return self.by[name][-1][0] if self.by[name] else -1

    async def wait_beyond(self, name: str, seq: int) -> None:
        """Until this listener hears a shout of ``name`` numbered above ``seq``."""
        await self.heard.until(lambda payloads: any(_shout(p)[0] == name and _shout(p)[1] > seq for p in payloads))


def _shout(payload: dict[str, str]) -> tuple[str, int]:
    name, seq = payload["text"].split(":")
    return name, int(seq)


class Load:
    """On each process, a speaker shouting to ``load`` every :data:`SHOUT_EVERY` seconds and a listener in
    ``load``; every shout must be answered within ``answer_within`` seconds, outage or not."""

    def __init__(self, processes: list[Process], *, answer_within: float) -> None:
        self.processes = processes
        self.names = [p.name for p in processes]
        self.answer_within = answer_within
        self.speakers: dict[str, Client] = {}
        self.listeners: dict[str, Shouts] = {}
        self.sent: dict[str, list[int]] = {name: [] for name in self.names}
        self.slowest = 0.0
        """The longest a shout waited for its answer."""
        self.stop = trio.Event()

    async def connect(self, stack: AsyncExitStack) -> None:
        for process in self.processes:
            self.speakers[process.name] = await stack.enter_async_context(connect(process.url))
            listener = await stack.enter_async_context(connect(process.url))
            self.listeners[process.name] = Shouts(Heard(listener, "shout"))
            _, jwr = await listener.post("/rooms/invite", {"socket": listener.id, "room": "load"})
            assert jwr.status_code == 200

    def start(self, nursery: trio.Nursery) -> None:
        for name, speaker in self.speakers.items():
            nursery.start_soon(self._speak, speaker, name)

    async def _speak(self, speaker: Client, name: str) -> None:
        for seq in range(MAX_SHOUTS):
            if self.stop.is_set():
                return
            began = trio.current_time()
            with trio.move_on_after(self.answer_within) as waiting:
                _, jwr = await speaker.post("/rooms/shout", {"room": "load", "text": f"{name}:{seq}"})
            assert not waiting.cancelled_caught, f"process {name} did not answer a shout within {self.answer_within} s"
            assert jwr.status_code == 200
            self.slowest = max(self.slowest, trio.current_time() - began)
            self.sent[name].append(seq)
            await trio.sleep(SHOUT_EVERY)

    async def everyone_hears_everyone(self, beyond: dict[str, int] | None = None) -> None:
        """Until every listener heard a shout of every speaker numbered above ``beyond`` (default: any)."""
        for shouts in self.listeners.values():
            for name in self.names:
                await shouts.wait_beyond(name, (beyond or {}).get(name, -1))

    def marks(self) -> dict[str, int]:
        """How many shouts each speaker has had answered so far."""
        return {name: len(self.sent[name]) for name in self.names}

    def assert_local_heard_since(self, marks: dict[str, int]) -> None:
        for name, shouts in self.listeners.items():
            assert shouts.last(name) >= marks[name], f"{name}'s listener heard nothing from its own process since {marks[name]}"

    def assert_local_never_interrupted(self) -> None:
        """Nothing local was lost, duplicated or reordered, and no listener went long without its own
        speaker; nothing from another process came twice or out of order."""
        for name, shouts in self.listeners.items():
            shouts.take()
            local = shouts.by[name]
            seqs = [seq for seq, _ in local]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{name}'s listener missed local shouts: {seqs}"
            gaps = [b - a for (_, a), (_, b) in zip(local, local[1:], strict=False)]
            assert max(gaps) < LOCAL_GAP, f"{name}'s listener waited {max(gaps):.2f} s for a local shout"
            for other in self.names:
                heard = [seq for seq, _ in shouts.by[other]]
                assert len(heard) == len(set(heard)), f"{name}'s listener heard some of {other}'s shouts twice"
                assert heard == sorted(heard), f"{name}'s listener heard {other}'s shouts out of order"


async def test_an_outage_stops_only_the_cross_process_messages_and_the_cluster_heals_when_redis_is_back(
    processes: list[Process], redis: RedisServer, http: httpx.AsyncClient
) -> None:
    load = Load(processes, answer_within=2.0)
    redis.ensure_up()
    with trio.fail_after(15):
        await wait_health(http, processes, linked)
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            await load.connect(stack)
            async with trio.open_nursery() as nursery:
                load.start(nursery)
                with trio.fail_after(10):  # all is well: every listener hears every speaker
                    await load.everyone_hears_everyone()

                # Redis dies: each process notices and says so; none of them goes down
                redis.stop()
                with trio.fail_after(10):
                    await wait_health(http, processes, degraded)
                outage = load.marks()
                await trio.sleep(1.0)  # a second of outage under load
                for process in processes:
                    assert process.alive, process.log()
                load.assert_local_heard_since(outage)  # each listener went on hearing its own process
                for process in processes:
                    report = await health(http, process)
                    assert degraded(report), report
                    assert report["redis"]["down_for"] >= 1, report
                    assert report["redis"]["dropped"] > 0, report  # the shouts for the other processes, counted

                # Redis is back on the same port: every link comes back on its own, within ten seconds
                redis.start()
                with trio.fail_after(10):
                    await wait_health(http, processes, linked)
                with trio.fail_after(10):  # ... and fresh shouts cross processes again: A's reach B, B's A
                    await load.everyone_hears_everyone(beyond=load.marks())
                load.stop.set()

    load.assert_local_never_interrupted()
    for process in processes:
        log = process.log()
        assert "Redis link down" in log and "Redis link restored" in log, log
    assert_logs_clean(processes, allowed=OUTAGE_LOG_LINES)


async def test_a_frozen_redis_is_noticed_by_the_watchdog_and_requests_keep_being_answered(
    processes: list[Process], redis: RedisServer, http: httpx.AsyncClient
) -> None:
    """Redis stops answering but keeps its connections open (a hung server, or a network that drops
    everything silently): no error tells the processes, only the self-ping watchdog can notice."""
    load = Load(processes, answer_within=2.0)
    redis.ensure_up()
    with trio.fail_after(15):
        await wait_health(http, processes, linked)
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            await load.connect(stack)
            async with trio.open_nursery() as nursery:
                load.start(nursery)
                with trio.fail_after(10):
                    await load.everyone_hears_everyone()

                redis.freeze()
                frozen = load.marks()
                # the watchdog's ping does not come back within 3 s: every process says it is degraded
                with trio.fail_after(8):
                    await wait_health(http, processes, degraded)
                await trio.sleep(1.0)
                load.assert_local_heard_since(frozen)
                for process in processes:
                    assert process.alive, process.log()

                redis.thaw()
                with trio.fail_after(10):
                    await wait_health(http, processes, linked)
                with trio.fail_after(10):
                    await load.everyone_hears_everyone(beyond=load.marks())
                load.stop.set()

    load.assert_local_never_interrupted()
    for process in processes:  # (coredis logs its own tracebacks for a frozen server: logs are not checked)
        assert process.alive, process.log()
