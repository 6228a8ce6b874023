"""Two trisails processes sharing a room over Redis: fan-out across processes.

``.venv/bin/python -m benchmarks.cluster`` (after ``bash benchmarks/run.sh --setup``, which installs the
load generator's npm packages). It starts two processes of ``benchmarks/trisails_app`` with ``--redis``
(the Redis on 127.0.0.1:6379, with the default key: run nothing else on it meanwhile), connects 1,000 sockets, half to each, in one
room, and has a controller on the first process broadcast 100 payloads of about 100 bytes, each after the
previous one's ack. It prints, and appends to ``benchmarks/.peers/results/cluster.md``, the deliveries,
p50/p99 delivery latency, and the CPU per delivery of each server and of both together, twice.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = ROOT / "benchmarks" / "trisails_app"
SOCKETS, ROUNDS, RUNS = 1000, 100, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, database: str) -> subprocess.Popen[bytes]:
    """One process of the bench app, on the shared Redis (its default key: run nothing else on it)."""
    env = {
        **os.environ,
        "TRISAILS_DATABASE_URL": database,
        "TRISAILS_REDIS_URL": "redis://127.0.0.1:6379/0",
        "TRISAILS_SESSION_SECRET": "benchmark secret " * 4,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trisails", str(APP), "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if b"Ctrl-C to stop" in line:
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"the trisails server on port {port} did not start")


def one_run(run: int) -> dict[str, float]:
    database = f"sqlite:///{tempfile.mkdtemp(prefix='trisails-cluster-db-')}/db.sqlite"
    ports = [free_port(), free_port()]
    servers = [start_server(port, database) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        client = subprocess.Popen(
            ["node", str(HERE / "fanout.js"), *urls, str(SOCKETS), str(ROUNDS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert client.stdout is not None and client.stdin is not None
        if client.stdout.readline().strip() != "READY":
            raise SystemExit("the load generator did not connect")
        before = [cpu_seconds(s.pid) for s in servers]
        client.stdin.write("go\n")
        client.stdin.flush()
        result = json.loads(client.stdout.readline())
        after = [cpu_seconds(s.pid) for s in servers]
        client.wait(timeout=10)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    delivered = max(1, result["delivered"])
    cpu = [a - b for a, b in zip(after, before)]
    return {
        "run": run,
        "delivered": result["delivered"],
        "expected": result["expected"],
        "p50_ms": result["p50"],
        "p99_ms": result["p99"],
        "cpu_a_us": 1e6 * cpu[0] / delivered,
        "cpu_b_us": 1e6 * cpu[1] / delivered,
        "cpu_us": 1e6 * sum(cpu) / delivered,
        "seconds": result["ms"] / 1000,
    }


def main() -> None:
    rows = [one_run(run) for run in range(1, RUNS + 1)]
    lines = [
        f"Two trisails processes over Redis, {SOCKETS} sockets (half on each) in one room, {ROUNDS} broadcasts "
        "from the first, each after the previous one's ack; CPU per delivery is per delivery in the whole "
        "cluster (A: the process that broadcasts; B: the other).",
        "",
        "| run | delivered / expected | p50 / p99 (ms) | CPU per delivery: A + B = both (µs) |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['delivered']} / {r['expected']} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | "
            f"{r['cpu_a_us']:.1f} + {r['cpu_b_us']:.1f} = {r['cpu_us']:.1f} |"
        )
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / ".peers" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
