"""The arena's rules, with no I/O at all: dots steered around a box, collecting items.

A :class:`Match` is advanced by :meth:`Match.step` with the time that passed, takes player input with
:meth:`Match.steer`, and describes itself with :meth:`Match.snapshot`. It never looks at a clock or a
socket, so it is tested without either, and the server decides when time passes (the tick loop in
``matches.py``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

WIDTH, HEIGHT = 800, 600
SPEED = 200.0  # pixels per second at full stick
RADIUS = 10.0
ITEMS = 8


@dataclass
class Player:
    id: str
    name: str
    x: float
    y: float
    dx: float = 0.0
    dy: float = 0.0
    score: int = 0


@dataclass
class Match:
    """One match: its players, the items on the floor, and how many ticks it has run."""

    id: str
    seed: int = 0
    players: dict[str, Player] = field(default_factory=dict)
    items: list[tuple[float, float]] = field(default_factory=list)
    ticks: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        while len(self.items) < ITEMS:
            self.items.append(self._spot())

    def _spot(self) -> tuple[float, float]:
        return (self._random.uniform(RADIUS, WIDTH - RADIUS), self._random.uniform(RADIUS, HEIGHT - RADIUS))

    def add(self, player_id: str, name: str) -> Player:
        x, y = self._spot()
        player = self.players[player_id] = Player(player_id, name, x, y)
        return player

    def remove(self, player_id: str) -> None:
        self.players.pop(player_id, None)

    def steer(self, player_id: str, dx: float, dy: float) -> None:
        """Point a player's stick; the direction is clamped to length 1, anything else is ignored."""
        player = self.players.get(player_id)
        if player is None or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (dx, dy)):
            return
        length = math.hypot(dx, dy)
        if length > 1:
            dx, dy = dx / length, dy / length
        player.dx, player.dy = float(dx), float(dy)

    def step(self, seconds: float) -> None:
        """Move everyone by ``seconds`` of time and let them pick up what they touch."""
        self.ticks += 1
        for player in self.players.values():
            player.x = min(max(player.x + player.dx * SPEED * seconds, RADIUS), WIDTH - RADIUS)
            player.y = min(max(player.y + player.dy * SPEED * seconds, RADIUS), HEIGHT - RADIUS)
            for index, (ix, iy) in enumerate(self.items):
                if math.hypot(player.x - ix, player.y - iy) < 2 * RADIUS:
                    player.score += 1
                    self.items[index] = self._spot()

    def snapshot(self, now_ms: int) -> dict[str, object]:
        """What every player is sent each tick: small, flat, and the same for all of them."""
        return {
            "match": self.id,
            "tick": self.ticks,
            "t": now_ms,
            "players": [
                {"id": p.id, "name": p.name, "x": round(p.x, 1), "y": round(p.y, 1), "score": p.score}
                for p in self.players.values()
            ],
            "items": [[round(x, 1), round(y, 1)] for x, y in self.items],
        }
