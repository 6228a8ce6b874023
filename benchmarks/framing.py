"""Websocket framing micro-benchmark: trisails.protocol.websocket against wsproto 1.3.2, no network.

    .venv/bin/python benchmarks/framing.py            # or: python -m benchmarks.framing [--quick]

It times, per frame, the two things a websocket server does most:

* **receive**: one masked client text frame fed as one read (``receive_data``) and its events drained,
  for a 60-byte payload (a typical Socket.IO event) and a 4 KiB one;
* **build**: one unmasked 60-byte server text frame (what every broadcast member costs), with our
  ``encode_frame``, ``ServerConnection.send_message``
  and wsproto's ``send(TextMessage(...))``.

Each case runs a fixed number of iterations, five times, and keeps the best run (the least disturbed by
other work on the machine). Loops are bounded: the whole script takes a few seconds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from trisails.protocol.websocket import ServerConnection, encode_frame  # noqa: E402

KEY = b"\x37\xfa\x21\x3d"
UPGRADE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(payload: bytes) -> bytes:
    """A masked, unfragmented client text frame."""
    length = len(payload)
    head = bytes((0x81, 0x80 | length)) if length < 126 else bytes((0x81, 0xFE)) + length.to_bytes(2, "big")
    return head + KEY + bytes(byte ^ KEY[i % 4] for i, byte in enumerate(payload))


def wsproto_server() -> WSConnection:
    """A wsproto server connection past its handshake."""
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(UPGRADE)
    assert isinstance(next(ws.events()), Request)
    ws.send(AcceptConnection())
    return ws


def best_of(run: Callable[[int], None], iterations: int, repeats: int = 5) -> float:
    """The best time per iteration, in seconds, over ``repeats`` runs of ``iterations``."""
    run(min(iterations, 1000))  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(iterations)
        best = min(best, (time.perf_counter() - start) / iterations)
    return best


def receive_ours(frame: bytes, expected: str) -> Callable[[int], None]:
    connection = ServerConnection()

    def run(iterations: int) -> None:
        receive_data, events = connection.receive_data, connection.events
        for _ in range(iterations):
            receive_data(frame)
            for event in events():
                pass
        assert event.data == expected  # type: ignore[attr-defined]

    return run


def receive_wsproto(frame: bytes, expected: str) -> Callable[[int], None]:
    ws = wsproto_server()

    def run(iterations: int) -> None:
        receive_data, events = ws.receive_data, ws.events
        for _ in range(iterations):
            receive_data(frame)
            for event in events():
                pass
        assert event.data == expected  # type: ignore[attr-defined]

    return run


def build(make: Callable[[str], bytes], text: str) -> Callable[[int], None]:
    def run(iterations: int) -> None:
        for _ in range(iterations):
            make(text)

    return run


def main() -> None:
    quick = "--quick" in sys.argv
    scale = 10 if quick else 1
    small = '42["chat",{"from":"alice","text":"hello, how is it going?"}]'.ljust(60, " ")
    large = ("x" * 63 + "\n") * 64
    assert len(small.encode()) == 60 and len(large.encode()) == 4096

    connection = ServerConnection()
    ws = wsproto_server()
    cases: list[tuple[str, str, Callable[[int], None], int]] = [
        ("receive 60 B text", "trisails", receive_ours(client_frame(small.encode()), small), 200_000),
        ("receive 60 B text", "wsproto", receive_wsproto(client_frame(small.encode()), small), 50_000),
        ("receive 4 KiB text", "trisails", receive_ours(client_frame(large.encode()), large), 50_000),
        ("receive 4 KiB text", "wsproto", receive_wsproto(client_frame(large.encode()), large), 20_000),
        ("build 60 B frame", "trisails encode_frame", build(encode_frame, small), 500_000),
        ("build 60 B frame", "trisails send_message", build(connection.send_message, small), 500_000),
        ("build 60 B frame", "wsproto", build(lambda s: ws.send(TextMessage(data=s)), small), 100_000),
    ]
    print(f"Python {sys.version.split()[0]}, best of 5 runs per case{' (quick)' if quick else ''}\n")
    print(f"{'case':<20} {'implementation':<24} {'µs/frame':>9} {'frames/s':>12} {'vs wsproto':>10}")
    reference: dict[str, float] = {}
    results = [(case, name, best_of(run, iterations // scale)) for case, name, run, iterations in cases]
    for case, name, seconds in results:
        if name == "wsproto":
            reference[case] = seconds
    for case, name, seconds in results:
        speedup = reference[case] / seconds
        print(f"{case:<20} {name:<24} {seconds * 1e6:>9.2f} {1 / seconds:>12,.0f} {speedup:>9.1f}×")


if __name__ == "__main__":
    main()
