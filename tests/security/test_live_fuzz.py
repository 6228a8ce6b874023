"""Live fuzz: many misbehaving clients at once, then the server must be exactly as good as new.

Several tasks throw random and malformed input at a lifted app for a bounded time and count: garbage
websocket frames after valid handshakes (Engine.IO 3 and 4), bytes that break the websocket framing,
random virtual requests (each of which must still be answered), random polling bodies for real and made
up sids, random handshake queries and methods, raw TCP garbage and HTTP heads that stop half-way. The
input comes from ``random.Random(seed)``; set ``TRISAILS_FUZZ_SEED`` to replay a run's input (the
interleaving of the tasks is up to the scheduler). Every assertion message carries the seed.

Afterwards the app must serve a normal client and a plain HTTP request, hold no Engine.IO session, have
logged no error (every ERROR record, such as "handler ... failed" or "session ... failed", is a crash of
some handler), and have answered no HTTP request with a 5xx.

Memory is measured with tracemalloc over two rounds of the same size: the first warms every cache
(hypercorn's, quart's, the regex and urllib caches, trio's), the second must add less than
:data:`GROWTH_BOUND`. See its comment for why that bound is what it is.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import httpx
import orjson
import trio

import trisails.client
from tests.support.fuzz import (
    CONTENT_TYPES,
    NETWORK_ERRORS,
    SDK,
    VALID_REQUEST,
    RawWS,
    broken_framing,
    fuzz_frame,
    garbage_head,
    random_body,
    random_query,
    random_text,
    virtual_request,
)
from trisails import App, Settings, SocketSettings
from trisails.protocol import engineio as eio

SEED = int(os.environ.get("TRISAILS_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
TASKS = 16
EPISODES_PER_TASK = 12  # per round; each task stops early at the round's deadline
ROUND_SECONDS = 1.0  # no new episode after this; with the ones in flight, about 3 s for both rounds
MAX_PAYLOAD = SocketSettings().max_payload  # the default, 1 MB: big frames are where leaks would show
WAIT = 5.0  # the bound on anything the server must answer
# Why 5 MB. A healthy server's second round grows traced memory by -0.2 to +0.6 MB (measured over ~30
# runs: trio's lazily pruned deadline heap, allocator free lists, one-time caches the warm-up round happened
# to miss), so 5 MB leaves ample room for noise. Each round sends at least TASKS // 2 messages of nearly
# max_payload (1 MB) that the server decodes, plus ~10-30 MB more in all: a server that kept the payloads
# it decodes (or buffers it reads them into) grows by more than 8 MB per round and fails here; one that
# kept every session of a round would grow by only ~0.5 MB (~15-25 KB each, measured), so session leaks
# are left to the session count checked after each round.
GROWTH_BOUND = 5_000_000


@dataclass
class Fuzz:
    """What the fuzz tasks share: where the server is, and what went wrong."""

    url: str
    host: str
    port: int
    http: httpx.AsyncClient = field(init=False, repr=False)  # one per round: see fuzz_round
    failures: list[str] = field(default_factory=list)
    episodes: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0  # bytes of websocket frames and polling bodies sent

    def fail(self, what: str) -> None:
        self.failures.append(what)

    def count(self, response: httpx.Response, what: str) -> httpx.Response:
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            self.fail(f"{what}: HTTP {response.status_code} {response.text[:200]!r}")
        return response


# --- episodes: one misbehaving client each ------------------------------------------------------------


async def websocket_garbage(fuzz: Fuzz, rng: random.Random) -> None:
    """A valid websocket handshake, then garbage frames (and now and then broken framing)."""
    revision = rng.choice((3, 4))
    ws = await RawWS.connect(fuzz.host, fuzz.port)
    try:
        if not await ws.handshake(f"/socket.io/?EIO={revision}&transport=websocket&{SDK}", WAIT):
            fuzz.fail(f"a valid EIO={revision} websocket handshake was refused")
            return
        opening = await ws.message(WAIT)
        if not (isinstance(opening, str) and opening.startswith("0{")):
            fuzz.fail(f"expected the open packet, got {opening!r}")
            return
        if rng.random() < 0.8:
            await ws.send("40")
        for _ in range(rng.randint(1, 8)):
            roll = rng.random()
            if roll < 0.08:
                await ws.send_raw(broken_framing(rng))
            elif roll < 0.12:  # half a frame, then nothing more
                frame = ws.encoded(fuzz_frame(rng, revision, MAX_PAYLOAD))
                await ws.send_raw(frame[: rng.randint(0, len(frame) - 1)])
                break
            else:
                await ws.send(fuzz_frame(rng, revision, MAX_PAYLOAD))
            if ws.broken:
                break
        if rng.random() < 0.5:
            await ws.close()
        await ws.drain(0.1)
    finally:
        fuzz.sent += ws.sent
        await ws.aclose()


async def big_frames(fuzz: Fuzz, rng: random.Random) -> None:
    """Messages close to max_payload (text, and binary attachments), then usually one over it (1009)."""
    revision = rng.choice((3, 4))
    ws = await RawWS.connect(fuzz.host, fuzz.port)
    try:
        if not await ws.handshake(f"/socket.io/?EIO={revision}&transport=websocket&{SDK}", WAIT):
            fuzz.fail(f"a valid EIO={revision} websocket handshake was refused")
            return
        await ws.message(WAIT)
        await ws.send("40")
        for _ in range(rng.randint(1, 3)):
            size = rng.randint(MAX_PAYLOAD - 1000, MAX_PAYLOAD - 100)
            if rng.random() < 0.5:
                await ws.send('42["big","' + "x" * size + '"]')
            else:  # a binary event and its attachment, or an attachment nobody announced
                if rng.random() < 0.8:
                    await ws.send('451-["big",{"_placeholder":true,"num":0}]')
                await ws.send((b"\x04" if revision == 3 else b"") + bytes(size))
        if rng.random() < 0.7:
            await ws.send("4" + "y" * (MAX_PAYLOAD + rng.randint(1, 1000)))
        await ws.drain(0.1)
    finally:
        fuzz.sent += ws.sent
        await ws.aclose()


async def virtual_requests(fuzz: Fuzz, rng: random.Random) -> None:
    """Random sails.io.js requests on a connected socket: every one with an ack id must be answered."""
    revision = rng.choice((3, 4))
    ws = await RawWS.connect(fuzz.host, fuzz.port)
    try:
        if not await ws.handshake(f"/socket.io/?EIO={revision}&transport=websocket&{SDK}", WAIT):
            fuzz.fail(f"a valid EIO={revision} websocket handshake was refused")
            return
        await ws.message(WAIT)
        await ws.send("40")
        connected = await receive(ws, revision, WAIT)
        if not (isinstance(connected, str) and connected.startswith("40")):
            fuzz.fail(f"expected the namespace connect, got {connected!r}")
            return
        count = rng.randint(1, 6)
        frames = [virtual_request(rng, ack_id) for ack_id in range(count)]
        frames.append(f"42{count}" + VALID_REQUEST[2:])
        for frame in frames:
            await ws.send(frame)
        waiting = set(range(count + 1))
        with trio.move_on_after(WAIT):
            while waiting:
                message = await receive(ws, revision, WAIT)
                if message is None:
                    break
                if isinstance(message, str) and message.startswith("43"):
                    digits = message[2:].split("[", 1)[0]
                    waiting.discard(int(digits) if digits.isdigit() else -1)
        if waiting:
            fuzz.fail(f"virtual requests never answered (EIO={revision}): {[frames[i] for i in sorted(waiting)]}")
        await ws.close()
        await ws.drain(0.1)
    finally:
        await ws.aclose()


async def receive(ws: RawWS, revision: int, timeout: float) -> str | bytes | None:
    """The next message that is not a heartbeat, keeping the session alive meanwhile (a revision 3 client
    pings; a revision 4 client answers the server's pings), as a real client does however slow things get."""
    deadline = trio.current_time() + timeout
    while trio.current_time() < deadline:
        message = await ws.message(min(0.5, deadline - trio.current_time()))
        if message is None:
            if ws.broken:
                return None
            if revision == 3:
                await ws.send("2")
        elif message == "2" and revision == 4:
            await ws.send("3")
        elif message != "3":
            return message
    return None


async def polling_garbage(fuzz: Fuzz, rng: random.Random) -> None:
    """A real polling session gets random bodies, overlapping polls and a botched upgrade; then closes."""
    revision = rng.choice((3, 4))
    query = f"EIO={revision}&transport=polling&{SDK}" + ("&b64=1" if rng.random() < 0.3 else "")
    response = fuzz.count(await fuzz.http.get(f"{fuzz.url}/socket.io/?{query}"), "polling handshake")
    if response.status_code != 200:
        fuzz.fail(f"a valid polling handshake got {response.status_code}")
        return
    opening = eio.decode_payload(response.content, revision, content_type=response.headers.get("content-type"))[0]
    sid = orjson.loads(opening.data)["sid"]
    endpoint = f"{fuzz.url}/socket.io/?{query}&sid={sid}"
    try:
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            if roll < 0.55:
                content_type = rng.choice(CONTENT_TYPES)
                headers = {b"content-type": content_type.encode("latin-1")} if content_type else {}
                if rng.random() < 0.15:
                    await oversize_post(fuzz, endpoint)
                    continue
                body = random_body(rng)
                fuzz.sent += len(body)
                response = await fuzz.http.post(endpoint, content=body, headers=headers)
                fuzz.count(response, f"POST {body[:60]!r} ({content_type})")
            elif roll < 0.7:  # a valid message among the garbage
                body = b"2:40" if revision == 3 else b"40"
                fuzz.count(await fuzz.http.post(endpoint, content=body), "POST 40")
            elif roll < 0.85:  # a long-poll given up early: the next one overlaps it
                with trio.move_on_after(0.2):
                    fuzz.count(await fuzz.http.get(endpoint), "GET poll")
            else:  # an upgrade that goes wrong
                ws = await RawWS.connect(fuzz.host, fuzz.port)
                try:
                    if await ws.handshake(f"/socket.io/?EIO={revision}&transport=websocket&sid={sid}", WAIT):
                        for _ in range(rng.randint(0, 3)):
                            await ws.send(rng.choice(["2probe", "5", "6", "1", "4x", random_text(rng)]))
                        await ws.drain(0.1)
                finally:
                    await ws.aclose()
    finally:
        close = b"1:1" if revision == 3 else b"1"
        with trio.move_on_after(WAIT):
            fuzz.count(await fuzz.http.post(endpoint, content=close), "POST close")


async def oversize_post(fuzz: Fuzz, endpoint: str) -> None:
    """A POST body over max_payload, sent on a raw stream: the server may answer 413 and hang up before
    it is all sent, which httpx would turn into a ResourceWarning of its own."""
    target = endpoint.removeprefix(fuzz.url)
    head = f"POST {target} HTTP/1.1\r\nHost: {fuzz.host}\r\nContent-Length: {MAX_PAYLOAD + 1}\r\n\r\n".encode()
    stream = await trio.open_tcp_stream(fuzz.host, fuzz.port)
    try:
        reply = b""
        with trio.move_on_after(WAIT):
            await stream.send_all(head + bytes(MAX_PAYLOAD + 1))
            fuzz.sent += MAX_PAYLOAD + 1
            while b"\r\n" not in reply:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                reply += chunk
        if reply.startswith(b"HTTP/1.1 5"):  # 413, or 400 for a session an earlier POST closed
            fuzz.fail(f"a body over max_payload was answered {reply[:60]!r}")
    except NETWORK_ERRORS:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def made_up_sids(fuzz: Fuzz, rng: random.Random) -> None:
    """Polling requests for sessions that do not exist."""
    sid = rng.choice(["", "x", "A" * 20, random_text(rng, 30), "%00", "é"])
    method = rng.choice(["GET", "POST", "PUT", "DELETE"])
    revision = rng.choice(("3", "4", "9", ""))
    response = await fuzz.http.request(
        method, f"{fuzz.url}/socket.io/", params={"EIO": revision, "transport": "polling", "sid": sid},
        content=random_body(rng) if method != "GET" else None,
    )
    fuzz.count(response, f"{method} sid={sid!r}")
    if response.status_code == 200 and b'"sid":"' in response.content:
        await close_opened(fuzz, response, "4" if response.content.startswith(b"0{") else "3")


async def random_handshakes(fuzz: Fuzz, rng: random.Random) -> None:
    """Engine.IO requests with random queries, methods and paths; any session they open is closed again."""
    query = random_query(rng)
    method = rng.choice(["GET", "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"])
    path = rng.choice(["/socket.io/", "/socket.io", "/socket.io/x", "/socket.iox", "/socket.io//"])
    content = random_body(rng) if method in ("POST", "PUT", "PATCH") else None
    response = await fuzz.http.request(method, f"{fuzz.url}{path}?{query}", content=content)
    fuzz.count(response, f"{method} {path}?{query}")
    if response.status_code == 200 and b'"sid":"' in response.content:
        await close_opened(fuzz, response, "4" if response.content.startswith(b"0{") else "3")


async def close_opened(fuzz: Fuzz, response: httpx.Response, revision: str) -> None:
    """Close a polling session a fuzz request happened to open, so it is not left to time out."""
    start = response.content.find(b'"sid":"') + 7
    sid = response.content[start : start + 20].decode()
    body = b"1" if revision == "4" else b"1:1"
    response = await fuzz.http.post(f"{fuzz.url}/socket.io/?EIO={revision}&transport=polling&sid={sid}", content=body)
    fuzz.count(response, "POST close")


async def tcp_garbage(fuzz: Fuzz, rng: random.Random) -> None:
    """Raw bytes on a new connection: garbage, half a head, huge heads, short bodies; then hang up."""
    stream = await trio.open_tcp_stream(fuzz.host, fuzz.port)
    try:
        data = garbage_head(rng, f"{fuzz.host}:{fuzz.port}")
        if rng.random() < 0.3:  # in little pieces
            for start in range(0, len(data), 7):
                await stream.send_all(data[start : start + 7])
        else:
            await stream.send_all(data)
        reply = b""
        with trio.move_on_after(0.1):
            while len(reply) < 65536:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                reply += chunk
        if reply.startswith(b"HTTP/1.1 5"):
            fuzz.fail(f"{data[:80]!r} was answered {reply[:60]!r}")
    except NETWORK_ERRORS:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def plain_http(fuzz: Fuzz, rng: random.Random) -> None:
    """The HTTP side: random methods, paths, queries, bodies and content types to the router."""
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    path = rng.choice(["/say/hello", "/say/hello/", "/", "/nowhere", "/say", "/csrfToken", "/js/dependencies/sails.io.js",
                       "/" + random_text(rng, 20).replace("?", "").replace("#", "")])
    headers = {"content-type": rng.choice([c for c in CONTENT_TYPES if c is not None and c.isascii()])}
    if rng.random() < 0.3:  # cookies that are not sessions, escapes and non-ASCII signatures included
        headers["cookie"] = rng.choice(
            ["sails.sid=s:abc.def", "sails.sid=", "a=b; sails.sid=s:x.y", 'sails.sid="x"', "sails.sid=s:0.%80",
             "sails.sid=s%3Aabc.%C3%A9"]
        )
    if rng.random() < 0.2:
        headers["origin"] = rng.choice(["http://evil.example", "null", "file://"])
    if rng.random() < 0.2:
        headers["access-control-request-method"] = "POST"
    content = (random_body(rng) if rng.random() < 0.5 else random_text(rng, 100).encode()) if method != "GET" else None
    response = await fuzz.http.request(
        method, fuzz.url + path, params={"q": random_text(rng, 10)} if rng.random() < 0.5 else None,
        headers=headers, content=content,
    )
    fuzz.count(response, f"{method} {path} {headers} {content!r:.80}")


EPISODES: list[tuple[Callable[[Fuzz, random.Random], Awaitable[None]], int]] = [
    (websocket_garbage, 5),
    (big_frames, 2),
    (virtual_requests, 2),
    (polling_garbage, 3),
    (made_up_sids, 1),
    (random_handshakes, 2),
    (tcp_garbage, 3),
    (plain_http, 2),
]


async def fuzz_task(fuzz: Fuzz, rng: random.Random, deadline: float, *, big_first: bool) -> None:
    kinds = [episode for episode, weight in EPISODES for _ in range(weight)]
    for number in range(EPISODES_PER_TASK):
        if trio.current_time() >= deadline:
            return
        episode = big_frames if big_first and number == 0 else rng.choice(kinds)
        fuzz.episodes[episode.__name__] = fuzz.episodes.get(episode.__name__, 0) + 1
        try:
            with trio.fail_after(3 * WAIT):
                await episode(fuzz, rng)
        except trio.TooSlowError:
            fuzz.fail(f"{episode.__name__} hung for {3 * WAIT} s")
        except (httpx.TransportError, *NETWORK_ERRORS):
            pass  # the server hung up on a misbehaving client: that is its right
        except httpx.InvalidURL:
            pass  # a url even httpx will not send
        except Exception:
            fuzz.fail(f"{episode.__name__} raised:\n{traceback.format_exc()}")


async def fuzz_round(fuzz: Fuzz, round_number: int) -> int:
    """One round of the fuzz, with its own HTTP client (its keep-alive connections end with the round).
    Half the tasks start with big frames, so every round sends at least TASKS // 2 MB. Returns the
    bytes sent."""
    sent = fuzz.sent
    deadline = trio.current_time() + ROUND_SECONDS
    async with httpx.AsyncClient(timeout=WAIT) as fuzz.http, trio.open_nursery() as nursery:
        for task in range(TASKS):
            rng = random.Random(f"{SEED}-{round_number}-{task}")
            nursery.start_soon(partial(fuzz_task, fuzz, rng, deadline, big_first=task < TASKS // 2))
    return fuzz.sent - sent


# --- the test -----------------------------------------------------------------------------------------


class ErrorRecords(logging.Handler):
    """Keeps every ERROR (or worse) record from any logger: each one is something that crashed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def summary(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else f"{r.name}: {r.getMessage()}"
                for r in self.records]


@contextmanager
def errors_only() -> Iterator[ErrorRecords]:
    """Collect ERROR records; keep the fuzz's thousands of expected warnings ("closing session ...: parse
    error") from being made at all, so pytest's log capture does not hold them (and skew the memory)."""
    handler = ErrorRecords()
    root = logging.getLogger()
    quiet = [logging.getLogger(name) for name in ("trisails", "hypercorn", "quart")]
    levels = [logger.level for logger in quiet]
    root.addHandler(handler)
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def fuzz_app() -> App:
    # A short heartbeat bounds how long a session whose client vanished mid-way (a long-poll given up,
    # an upgrade left hanging) could outlive it: 2 s + 2 s, not Sails' 25 s + 60 s. (The fuzz clients
    # close what they open, so the sessions are usually gone the moment a round ends.)
    app = App(Settings(sockets=SocketSettings(ping_interval=2000, ping_timeout=2000)))
    app.action("say/hello", lambda req, res: res.ok("hello"))
    return app


async def sessions_drained(app: App) -> int:
    """Wait (bounded) for the app to hold no Engine.IO session; return how many are left."""
    with trio.move_on_after(3 * WAIT):
        while app.statistics()["sessions"]:
            await trio.sleep(0.05)
    return int(app.statistics()["sessions"])


async def served_normally(url: str) -> str | None:
    """None if a normal client and a plain HTTP GET are served right; else what went wrong."""
    try:
        with trio.fail_after(2 * WAIT):
            async with trisails.client.connect(url, reconnection=False, connect_timeout=WAIT) as io:
                body, jwr = await io.get("/say/hello")
            async with httpx.AsyncClient() as http:
                response = await http.get(url + "/say/hello")
                client = await http.get(url + "/js/dependencies/sails.io.js")  # static files: warms mimetypes
    except Exception as error:  # noqa: BLE001 - reported below, with the seed
        return f"a normal client failed: {error!r}"
    if (jwr.status_code, body) != (200, "hello"):
        return f"the socket request got {jwr.status_code} {body!r}"
    if (response.status_code, response.text) != (200, "hello"):
        return f"the HTTP request got {response.status_code} {response.text!r}"
    if client.status_code != 200:
        return f"the browser client got {client.status_code}"
    return None


def traced_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_random_and_malformed_input_from_many_clients_leaves_the_server_as_good_as_new() -> None:
    note = f"TRISAILS_FUZZ_SEED={SEED}"
    app = fuzz_app()
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        with errors_only() as errors:
            async with app.lifted() as url:
                host, port = url.removeprefix("http://").split(":")
                fuzz = Fuzz(url, host, int(port))
                before = await served_normally(url)

                sent_first = await fuzz_round(fuzz, 1)  # warm-up: fills the caches of the server and the clients
                left_after_first = await sessions_drained(app)
                warm = traced_bytes()
                first_round = sum(fuzz.episodes.values())

                sent_second = await fuzz_round(fuzz, 2)
                left_after_second = await sessions_drained(app)
                grown = traced_bytes() - warm

                after = await served_normally(url)  # the lift nursery is alive and well...
                second_client = await served_normally(url)  # ...for a second client too
                still_lifted = app.url == url
    finally:
        if not was_tracing:
            tracemalloc.stop()
    second_round = sum(fuzz.episodes.values()) - first_round
    rounds = (
        f"{first_round} + {second_round} episodes {fuzz.episodes}, {sent_first / 1e6:.1f} + {sent_second / 1e6:.1f} MB "
        f"sent, HTTP statuses {fuzz.statuses}; {note}"
    )
    assert before is None, f"{before} ({note})"
    assert not fuzz.failures, f"{len(fuzz.failures)} failures ({rounds}):\n" + "\n".join(fuzz.failures[:10])
    assert not errors.records, f"errors were logged ({rounds}):\n" + "\n".join(errors.summary()[:20])
    assert (left_after_first, left_after_second) == (0, 0), f"sessions outlived their clients ({rounds})"
    assert (after, second_client, still_lifted) == (None, None, True), f"after the fuzz: {after}, {second_client} ({rounds})"
    assert second_round >= first_round // 2, f"the rounds differ too much to compare ({rounds})"
    assert sent_second >= TASKS // 2 * (MAX_PAYLOAD - 1000), f"the second round was too small to measure ({rounds})"
    assert grown < GROWTH_BOUND, f"memory grew by {grown / 1e6:.2f} MB over the second round ({rounds})"
