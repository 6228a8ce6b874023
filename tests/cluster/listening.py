"""What the clients of a cluster story hear, and how the processes say they are, waited for with bounds."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import httpx
import trio

from tests.cluster.processes import Process
from trisails.client import Client

#: Seconds a client is given to (not) hear a straggler once everything it should hear has arrived:
#: long enough for a message to go through Redis and another process on a busy machine.
QUIET = 0.4


class Heard:
    """Every message one client hears under some events, as ``(event, payload, trio time)``."""

    def __init__(self, client: Client, *events: str) -> None:
        self.client = client
        self.messages: list[tuple[str, Any, float]] = []
        self._arrived = trio.lowlevel.ParkingLot()
        for event in events:
            client.on(event, partial(self._hear, event))

    def _hear(self, event: str, payload: Any) -> None:
        self.messages.append((event, payload, trio.current_time()))
        self._arrived.unpark_all()

    def payloads(self, event: str | None = None) -> list[Any]:
        return [payload for name, payload, _ in self.messages if event is None or name == event]

    async def until(self, done: Callable[[list[Any]], bool]) -> list[Any]:
        """Wait until ``done(payloads)`` holds (the story bounds the wait); return the payloads."""
        while not done(self.payloads()):
            await self._arrived.park()
        return self.payloads()

    async def count(self, n: int) -> list[Any]:
        return await self.until(lambda payloads: len(payloads) >= n)

    def clear(self) -> None:
        self.messages.clear()


async def quiet() -> None:
    """Let stragglers (duplicates, messages that should never come) arrive before counting."""
    await trio.sleep(QUIET)


async def health(http: httpx.AsyncClient, process: Process) -> dict[str, Any]:
    """``GET /__health`` as a load balancer's probe does it: no cookie (the endpoint sets one; sent back,
    it would make the probe load a session from Redis, which is not what is being asked)."""
    http.cookies.clear()
    response = await http.get(process.url + "/__health")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def wait_health(
    http: httpx.AsyncClient, processes: Iterable[Process], check: Callable[[dict[str, Any]], bool], *, every: float = 0.05
) -> dict[str, dict[str, Any]]:
    """Poll ``/__health`` of each process until ``check(report)`` holds for all of them at once (the story
    bounds the wait); return the last reports by process name."""
    processes = list(processes)
    while True:
        reports = {p.name: await health(http, p) for p in processes}
        if all(check(report) for report in reports.values()):
            return reports
        await trio.sleep(every)


def linked(report: dict[str, Any]) -> bool:
    return report["status"] == "ok" and report["redis"]["connected"] is True


def degraded(report: dict[str, Any]) -> bool:
    return report["status"] == "degraded" and report["redis"]["connected"] is False


def assert_logs_clean(processes: Iterable[Process], *, allowed: Iterable[str] = ()) -> None:
    """No process crashed or logged an error or a traceback, apart from lines containing an ``allowed`` text."""
    allowed = tuple(allowed)
    for process in processes:
        assert process.alive, f"process {process.name} exited with {process.popen.returncode}:\n{process.log()}"
        bad = [
            line for line in process.log().splitlines()
            if any(word in line for word in (" ERROR ", " CRITICAL ", "Traceback")) and not any(a in line for a in allowed)
        ]
        assert not bad, f"process {process.name} logged errors:\n" + "\n".join(bad[:20])
