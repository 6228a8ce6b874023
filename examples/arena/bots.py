"""Bots for the arena, and the load tool that measures how the server holds up.

    python -m examples.arena.bots --players 100 --seconds 30            # starts its own server
    python -m examples.arena.bots --url http://127.0.0.1:1337 --players 50

Run them from the repository's root after a plain install (``pip install -e .``): they need nothing
beyond trisails itself (the standard library's ``urllib`` waits for the server to start).

Each bot is a :mod:`trisails.client` connection that joins a match, steers at random four times a
second and records every snapshot: when it arrived and how old it was (the server stamps each one).
The report says whether the tick rate held for every bot, the snapshot latency p50/p99, and the server's
CPU time per second of play (read from ``/arena/status`` before and after, so it is the server's own).
All bots run as tasks of one nursery; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

import trisails.client

ARENA = Path(__file__).resolve().parent


@dataclass
class Bot:
    name: str
    snapshots: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    matches: set[str] = field(default_factory=set)
    joined: bool = False


@dataclass
class Report:
    players: int
    seconds: float
    tick_rate: float
    rates: list[float]
    latency_p50_ms: float
    latency_p99_ms: float
    server_cpu_per_second: float
    jitter_ms: dict[str, Any]

    @property
    def slowest_rate(self) -> float:
        return min(self.rates) if self.rates else 0.0

    def held(self, tolerance: float = 0.1) -> bool:
        """Whether every bot got snapshots at the tick rate, give or take ``tolerance`` (a fraction)."""
        return bool(self.rates) and self.slowest_rate >= self.tick_rate * (1 - tolerance)

    def text(self) -> str:
        return "\n".join(
            [
                f"arena: {self.players} bots for {self.seconds:.0f} s at {self.tick_rate:g} Hz",
                f"  snapshots per bot per second: slowest {self.slowest_rate:.1f}, "
                f"median {sorted(self.rates)[len(self.rates) // 2]:.1f} "
                f"({'held' if self.held() else 'NOT held'} within 10%)",
                f"  snapshot latency: p50 {self.latency_p50_ms:.1f} ms, p99 {self.latency_p99_ms:.1f} ms",
                f"  server CPU: {self.server_cpu_per_second * 100:.0f}% of one core",
                f"  tick jitter (ms): {json.dumps(self.jitter_ms)}",
            ]
        )


def _percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _play(url: str, bot: Bot, seconds: float, started: trio.Event) -> None:
    async with trisails.client.connect(url, reconnection=False) as io:

        def snapshot(data: dict[str, Any]) -> None:
            if not started.is_set():
                return
            bot.snapshots += 1
            bot.matches.add(data["match"])
            bot.latencies_ms.append(time.time() * 1000 - data["t"])

        io.on("snapshot", snapshot)
        _, jwr = await io.post("/arena/join", {"name": bot.name})
        jwr.raise_for_status()
        bot.joined = True
        await started.wait()
        with trio.move_on_after(seconds):
            while True:
                await io.emit("input", {"dx": random.uniform(-1, 1), "dy": random.uniform(-1, 1)})
                await trio.sleep(0.25)


async def run_bots(url: str, players: int, seconds: float) -> Report:
    """Play ``players`` bots against the arena at ``url`` for ``seconds`` and measure."""
    bots = [Bot(f"bot-{n}") for n in range(players)]
    started = trio.Event()
    # the status is read over a socket of its own, as a socket request (GET /arena/status)
    async with trisails.client.connect(url, reconnection=False) as observer:
        with trio.fail_after(seconds + 60):
            async with trio.open_nursery() as nursery:
                for bot in bots:
                    nursery.start_soon(_play, url, bot, seconds, started)
                while not all(bot.joined for bot in bots):
                    await trio.sleep(0.05)
                before, _ = await observer.get("/arena/status")
                t0 = time.monotonic()
                started.set()
            elapsed = time.monotonic() - t0
            after, _ = await observer.get("/arena/status")
    latencies = [latency for bot in bots for latency in bot.latencies_ms]
    first_match = next(iter(after["matches"].values()), {"jitter_ms": {}})
    return Report(
        players=players,
        seconds=seconds,
        tick_rate=float(before.get("tick_rate", 20)),
        rates=[bot.snapshots / seconds for bot in bots],
        latency_p50_ms=_percentile(latencies, 0.5),
        latency_p99_ms=_percentile(latencies, 0.99),
        server_cpu_per_second=(after["cpu_seconds"] - before["cpu_seconds"]) / elapsed,
        jitter_ms=first_match["jitter_ms"],
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.arena.bots", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an arena server to play against (default: start one)")
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    server = None
    url = args.url
    if url is None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "trisails", str(ARENA), "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/arena/status", timeout=1):
                    break
            except OSError:  # not listening yet (URLError is an OSError)
                if time.monotonic() > deadline or server.poll() is not None:
                    server.kill()
                    print("the arena server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
    try:
        report = trio.run(run_bots, url, args.players, args.seconds)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    print(report.text())
    return 0 if report.held() else 1


if __name__ == "__main__":
    sys.exit(main())
