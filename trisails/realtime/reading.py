"""One task that waits for input on every idle websocket at once, and serves what arrives in place.

Why: a connection task that waits for its own descriptor (``trio.lowlevel.wait_readable``) pays, for
every message, a re-arm of trio's one-shot epoll registration (a system call) and a trip through the
scheduler to resume the task, even when all the message asks for is a plain handler and its ack. A
:class:`SharedReader` registers each descriptor once, in an epoll set of its own that trio watches for
it, and serves every socket that is ready in one wake-up: a busy server takes one scheduler trip for
many messages, as Node's event loop does.

Who owns what is unchanged. A connection's task still owns its connection: it parks in
:meth:`SharedReader.wait`, and the reader calls the ``serve`` it was given (synchronous: read, decode,
hand the message upward) when the descriptor is readable. Whenever the connection needs awaited work
(a control frame to answer, the peer closing, a write that must wait), ``serve`` says so and the reader
hands the connection back to its task, which carries on as if it had waited itself. An exception that
``serve`` raises is raised in the connection's task, as if it had happened there. Cancelling that task
(its session ends) takes its descriptor out of the set first, and when the reader itself stops (the
app lowers) it hands every parked task back, so no task is left waiting on a reader that is gone.

Only plain TCP websockets use it, on systems with epoll (Linux); elsewhere, and over TLS or in-memory
streams, a connection waits in its own task as before.
"""

from __future__ import annotations

import functools
import logging
import select
from collections.abc import Callable

import outcome
import trio

__all__ = ["SharedReader"]

log = logging.getLogger("trisails.realtime")

#: Descriptors served per wake-up at most: the rest wait for the next round, so that a burst of
#: thousands of ready sockets still lets the other tasks run between rounds.
_BATCH = 128


class SharedReader:
    """The readers of an endpoint's idle websockets, as one task (:meth:`run`).

    ``serve`` (see :meth:`wait`) returns True to stay parked, False to have its task handed back.
    """

    __slots__ = ("_epoll", "_parked")

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._parked: dict[int, tuple[trio.lowlevel.Task, Callable[[], bool]]] = {}

    @property
    def running(self) -> bool:
        """Whether :meth:`wait` may be used: :meth:`run` is running (it never does without epoll)."""
        return self._epoll is not None

    async def run(self) -> None:
        """Serve parked connections until cancelled; then hand every parked task back to itself."""
        if not hasattr(select, "epoll"):
            return
        epoll = self._epoll = select.epoll()
        parked = self._parked
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _ in epoll.poll(0, _BATCH):
                    entry = parked.get(fd)
                    if entry is None:  # let go of between the poll and now
                        continue
                    try:
                        stay = entry[1]()
                    except Exception as error:  # the connection's, not ours: raise it in its task
                        if parked.get(fd) is entry:
                            self._forget(fd)
                            trio.lowlevel.reschedule(entry[0], outcome.Error(error))
                        else:
                            log.exception("error while serving a websocket whose task had already left")
                        continue
                    if not stay and parked.get(fd) is entry:
                        self._forget(fd)
                        trio.lowlevel.reschedule(entry[0])
        finally:
            self._epoll = None
            for fd, (task, _) in list(parked.items()):
                self._forget(fd, epoll)
                trio.lowlevel.reschedule(task)
            epoll.close()

    async def wait(self, fd: int, serve: Callable[[], bool]) -> None:
        """Park the calling task until ``serve`` (called by the reader whenever ``fd`` is readable) returns
        False, or raises: then that exception is raised here. Returns at once, doing nothing, if the
        reader is not running (wait in the task itself then)."""
        epoll = self._epoll
        if epoll is None:
            return
        if fd in self._parked:  # a descriptor number reused behind our back: its old task must not hang
            self.release(fd)
        epoll.register(fd, select.EPOLLIN)
        self._parked[fd] = (trio.lowlevel.current_task(), serve)
        await trio.lowlevel.wait_task_rescheduled(functools.partial(self._abort, fd))

    def release(self, fd: int) -> None:
        """Hand the task parked on ``fd`` back to itself, if there is one: its websocket is being closed
        (call this before closing the descriptor)."""
        entry = self._parked.get(fd)
        if entry is not None:
            self._forget(fd)
            trio.lowlevel.reschedule(entry[0])

    def _abort(self, fd: int, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._forget(fd)
        return trio.lowlevel.Abort.SUCCEEDED

    def _forget(self, fd: int, epoll: select.epoll | None = None) -> None:
        del self._parked[fd]
        epoll = epoll or self._epoll
        if epoll is not None:
            try:
                epoll.unregister(fd)
            except (OSError, ValueError):  # already closed (epoll dropped it itself)
                pass
