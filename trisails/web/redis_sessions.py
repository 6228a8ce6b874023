"""Sessions in Redis, so that every process of an app sees the same ones (a reconnect through another
process keeps its session). Used automatically when the app runs with a Redis URL.

The store borrows the Redis connection of the app's :class:`~trisails.realtime.cluster.RedisBus`, which
the app keeps open for its whole life. While Redis is unreachable, loading and saving raise
:class:`SessionStoreUnavailable`; requests then go on with a fresh, unsaved session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import trio

from .sessions import SessionStoreUnavailable

if TYPE_CHECKING:
    from ..realtime.cluster import RedisBus

__all__ = ["RedisStore"]

#: Seconds a session load or save may take before Redis counts as unreachable for that request.
TIMEOUT = 1.0


class RedisStore:
    """A :class:`~trisails.web.sessions.SessionStore` on Redis: one key per session, expiring on its own."""

    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus
        self.prefix = f"{bus.key}:sess:"

    def _client(self) -> Any:
        client = self.bus.client
        if client is None:
            raise SessionStoreUnavailable("Redis is unreachable: sessions cannot be loaded or saved right now")
        return client

    async def load(self, sid: str) -> dict[str, Any] | None:
        try:
            with trio.fail_after(TIMEOUT):
                data = await self._client().get(self.prefix + sid)
        except SessionStoreUnavailable:
            raise
        except Exception as error:
            raise SessionStoreUnavailable(f"Redis failed to load a session: {error}") from error
        if data is None:
            return None
        loaded: dict[str, Any] = orjson.loads(data)
        return loaded

    async def save(self, sid: str, data: dict[str, Any], ttl: float) -> None:
        try:
            with trio.fail_after(TIMEOUT):
                await self._client().set(self.prefix + sid, orjson.dumps(data, default=str), px=max(1, int(ttl * 1000)))
        except SessionStoreUnavailable:
            raise
        except Exception as error:
            raise SessionStoreUnavailable(f"Redis failed to save a session: {error}") from error

    async def destroy(self, sid: str) -> None:
        try:
            with trio.fail_after(TIMEOUT):
                await self._client().delete([self.prefix + sid])
        except SessionStoreUnavailable:
            raise
        except Exception as error:
            raise SessionStoreUnavailable(f"Redis failed to delete a session: {error}") from error
