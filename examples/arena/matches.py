"""Matches as tasks: the part of the arena that lives on trio.

The task tree this module builds, under the app's own nursery (``app.start_soon``)::

    Arena.run                    the arena's nursery: one child per running match
    ├── MatchRunner.run  (a)     ticks match a at a fixed rate, broadcasts one snapshot per tick
    └── MatchRunner.run  (b)     ...

A match ends by leaving its task: when its time is up, or when it has stood empty for a while. Its
``finally`` block takes every player out of its room and forgets them, so nothing of a finished match
is left behind, and lowering the app cancels the arena and with it every match, mid-tick or not.

Each tick is a deadline, not a sleep: the loop sleeps until the next multiple of the tick interval and
records how late it woke (the jitter). A tick that overran is not made up for; the clock moves on, so a
slow moment never snowballs into a burst of catch-up ticks.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from .game import HEIGHT, WIDTH, Match

if TYPE_CHECKING:
    from trisails import App, Socket

__all__ = ["Arena", "MatchRunner"]


class MatchRunner:
    """One match and the task that ticks it."""

    def __init__(self, arena: Arena, match: Match) -> None:
        self.arena = arena
        self.match = match
        self.room = f"match:{match.id}"
        self.lateness: deque[float] = deque(maxlen=1000)  # seconds each tick woke after its deadline
        self.cancel_scope = trio.CancelScope()
        self.finished = False

    async def run(self) -> None:
        arena = self.arena
        interval = 1 / arena.tick_rate
        started = trio.current_time()
        empty_since: float | None = None
        try:
            with self.cancel_scope:
                next_tick = trio.current_time()
                while True:
                    next_tick += interval
                    await trio.sleep_until(next_tick)
                    now = trio.current_time()
                    self.lateness.append(now - next_tick)
                    if now - next_tick > interval:
                        next_tick = now  # overran: move on rather than catch up
                    self.match.step(interval)
                    arena.app.io.to(self.room).emit("snapshot", self.match.snapshot(int(time.time() * 1000)))
                    if not self.match.players:
                        empty_since = now if empty_since is None else empty_since
                        if now - empty_since >= arena.idle_seconds:
                            return
                    else:
                        empty_since = None
                    if now - started >= arena.match_seconds:
                        return
        finally:
            self._finish()

    def _finish(self) -> None:
        """Tell the players, take them out of the room, and forget the match."""
        self.finished = True
        sockets = self.arena.app.sockets
        scores = {p.name: p.score for p in self.match.players.values()}
        sockets.broadcast(self.room, "match-over", {"match": self.match.id, "scores": scores})
        sockets.remove_room_members_from_rooms(self.room, self.room)
        for player_id in list(self.match.players):
            self.arena._player_match.pop(player_id, None)
        self.match.players.clear()
        self.arena.matches.pop(self.match.id, None)

    def jitter(self) -> dict[str, float]:
        """How late ticks woke, in milliseconds (p50, p99, max) over the last thousand ticks."""
        if not self.lateness:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}
        ordered = sorted(self.lateness)
        return {
            "p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2),
        }


class Arena:
    """Every match of one app, and the player → match map that input and disconnects go through."""

    def __init__(
        self,
        app: App,
        *,
        tick_rate: float = 20,
        match_seconds: float = 300,
        idle_seconds: float = 10,
        max_players: int = 64,
    ) -> None:
        self.app = app
        self.tick_rate = tick_rate
        self.match_seconds = match_seconds
        self.idle_seconds = idle_seconds
        self.max_players = max_players
        self.matches: dict[str, MatchRunner] = {}
        self._player_match: dict[str, MatchRunner] = {}
        self._nursery: trio.Nursery | None = None
        self._ids = itertools.count(1)

    async def run(self) -> None:
        """The arena's own task: it holds the nursery every match runs in, until the app lowers."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def join(self, socket: Socket, name: str) -> dict[str, Any]:
        """Put ``socket``'s player in a match with room for it, starting a new match if none has."""
        if self._nursery is None:
            raise RuntimeError("the arena is not running")
        self.leave(socket.id)
        runner = next((m for m in self.matches.values() if len(m.match.players) < self.max_players), None)
        if runner is None:
            match_id = str(next(self._ids))
            runner = self.matches[match_id] = MatchRunner(self, Match(match_id, seed=int(match_id)))
            self._nursery.start_soon(runner.run, name=f"match {match_id}")
        player = runner.match.add(socket.id, name)
        self._player_match[socket.id] = runner
        socket.join(runner.room)
        return {
            "match": runner.match.id,
            "you": player.id,
            "tickRate": self.tick_rate,
            "width": WIDTH,
            "height": HEIGHT,
        }

    def leave(self, player_id: str) -> None:
        """Take a player out of its match and its room (on request, or when its socket goes away)."""
        runner = self._player_match.pop(player_id, None)
        if runner is not None:
            runner.match.remove(player_id)
            socket = self.app.io.sockets.get(player_id)
            if socket is not None:
                socket.leave(runner.room)

    def steer(self, player_id: str, dx: Any, dy: Any) -> None:
        runner = self._player_match.get(player_id)
        if runner is not None:
            runner.match.steer(player_id, dx, dy)

    def match_of(self, player_id: str) -> str | None:
        """The id of the match ``player_id`` plays in, if any."""
        runner = self._player_match.get(player_id)
        return runner.match.id if runner is not None else None

    def end(self, match_id: str) -> bool:
        """End a match now; False if no such match runs. Only its task's cancel scope is cancelled: the
        task leaves through its ``finally`` at its next ``await``, and the other matches go on."""
        runner = self.matches.get(match_id)
        if runner is None:
            return False
        runner.cancel_scope.cancel()
        return True

    def statistics(self) -> dict[str, Any]:
        """What is running: matches with their players and jitter, and every match room still known."""
        rooms = {room: n for room, n in self.app.io.main.adapter.rooms().items() if room.startswith("match:")}
        tasks = [task.name for task in (self._nursery.child_tasks if self._nursery else ())]
        return {
            "tick_rate": self.tick_rate,
            "matches": {
                runner.match.id: {
                    "players": len(runner.match.players),
                    "ticks": runner.match.ticks,
                    "jitter_ms": runner.jitter(),
                }
                for runner in self.matches.values()
            },
            "players": len(self._player_match),
            "match_rooms": rooms,
            "match_tasks": tasks,
            "cpu_seconds": round(time.process_time(), 3),
        }
