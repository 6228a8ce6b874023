"""The scenarios: each starts its server fresh, drives it with Node workers, and measures the server.

The comparison figure is the server's CPU time (utime + stime from /proc/<pid>/stat, every thread of
the process) over the measured window, divided by the operations of the window: requests, deliveries
or connections. The window starts once every socket is connected (and, for rtt, has made one warm-up
operation) and ends when the last operation was answered or delivered.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Iterator

from . import _peers, _profile
from ._procs import LOGS, BenchError, Worker, cpu_seconds, machine_busy, rss_kb, workers_cpu

WORKER = _peers.LOADGEN_DIR / "worker.js"


@dataclass
class Sizes:
    rtt_sockets: int = 10
    rtt_seconds: float = 10.0
    rtt_max_ops: int = 200_000  # per socket; the time bound comes first
    rtt_warmup_seconds: float = 5.0  # on a fresh server (Node's JIT needs thousands of requests)
    rtt_rewarm_seconds: float = 1.0  # before the next run on the same server
    sessions: bool = True  # --no-sessions: trisails and Sails without sessions (python-socketio has none)
    sails_v4: bool = False  # also Sails with socket.io-client 4 for raw events (it accepts both)
    fanout_sockets: int = 1000
    fanout_broadcasts: int = 100
    payload_bytes: int = 100
    fanout_warmup: int = 20  # broadcasts before the window, not counted
    pubsub_watchers: int = 200
    pubsub_posts: int = 200
    pubsub_posters: int = 4
    pubsub_warmup: int = 20  # posts before the window, not counted
    idle_counts: tuple[int, ...] = (1000, 10000)
    ping_interval: int = 10000  # ms, idle scenario only, the same on every server (Sails' default: 25000)
    ping_timeout: int = 10000
    hold_seconds: float = 12.0  # > ping_interval: every socket must see a heartbeat in it
    idle_warmup: int = 200  # connections made and closed before the baseline
    workers: int = 4  # load-generator processes for the many-socket scenarios
    rtt_workers: int = 2

    @classmethod
    def quick(cls) -> Sizes:
        return cls(rtt_seconds=3.0, rtt_warmup_seconds=2.0, fanout_sockets=200, fanout_broadcasts=30, pubsub_watchers=50,
                   pubsub_posts=50, idle_counts=(500, 2000), ping_interval=3000, ping_timeout=3000,
                   hold_seconds=4.0)


@dataclass(frozen=True)
class Case:
    server: str
    scenario: str  # rtt-virtual, rtt-echo, fanout, pubsub, idle
    client: str  # sails (sails.io.js), v2, v4
    count: int = 0  # idle results: how many sockets (the idle case itself runs every count in stages)

    @property
    def key(self) -> str:
        extra = f"-{self.count}" if self.count else ""
        return f"{self.scenario}{extra}/{self.server}/{self.client}"


CLIENT_LABELS = {"sails": "sails.io.js 1.2.1", "v2": "socket.io-client 2.0.3", "v4": "socket.io-client 4.8"}


def plan(sizes: Sizes) -> list[Case]:
    """Every case of a full run, in the order they run."""
    cases = [
        Case("trisails", "rtt-virtual", "sails"),
        Case("sails", "rtt-virtual", "sails"),
        Case("trisails", "rtt-echo", "v4"),
        Case("trisails", "rtt-echo", "v2"),
        Case("sails", "rtt-echo", "v2"),
        *([Case("sails", "rtt-echo", "v4")] if sizes.sails_v4 else []),
        Case("pysio", "rtt-echo", "v4"),
        Case("trisails", "fanout", "v4"),
        Case("trisails", "fanout", "v2"),
        Case("sails", "fanout", "v2"),
        *([Case("sails", "fanout", "v4")] if sizes.sails_v4 else []),
        Case("pysio", "fanout", "v4"),
        Case("trisails", "pubsub", "sails"),
        Case("sails", "pubsub", "sails"),
    ]
    cases += [  # each run connects the sizes.idle_counts in stages: 1,000, then up to 10,000
        Case("trisails", "idle", "v4"),
        Case("trisails", "idle", "v2"),
        Case("sails", "idle", "v2"),
        Case("pysio", "idle", "v4"),
    ]
    return cases


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass
class Window:
    """Server and load-generator CPU over a measured window."""

    server_pid: int
    workers: list[Worker]
    start: float = 0.0
    end: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0
    _s0: float = 0.0
    _c0: float = 0.0
    _m0: float = 0.0

    def open(self) -> None:
        self._s0 = cpu_seconds(self.server_pid)
        self._c0 = workers_cpu(self.workers)
        self._m0 = machine_busy()
        self.start = time.monotonic()

    def close(self) -> None:
        self.end = time.monotonic()
        self.server_cpu = cpu_seconds(self.server_pid) - self._s0
        self.client_cpu = workers_cpu(self.workers) - self._c0
        self.machine_cpu = machine_busy() - self._m0

    def figures(self) -> dict[str, Any]:
        wall = max(self.end - self.start, 1e-9)
        return {
            "wall_s": wall,
            "server_cpu_s": self.server_cpu,
            "server_cpu_share": self.server_cpu / wall,  # of one core
            "client_cpu_share": self.client_cpu / wall,  # all workers together, of one core
            "client_processes": len(self.workers),
            # everything else the machine did meanwhile (other people's work on a shared machine), in cores
            "other_cpu_share": max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu) / wall,
        }


class Run:
    """One run of one case: its server and its workers, all stopped at the end whatever happens."""

    def __init__(self, case: Case, index: int, sizes: Sizes, profile: bool) -> None:
        self.case = case
        self.index = index
        self.sizes = sizes
        self.profile = profile and case.server == "trisails"
        self.workers: list[Worker] = []
        self.server: _peers.Running | None = None
        self.profile_files: list[str] = []
        self.tag = f"-{case.scenario}{'-' + str(case.count) if case.count else ''}-{case.client}-run{index}"

    def worker(self, config: dict[str, Any], deadline: float) -> Worker:
        assert self.server is not None
        config = {"url": self.server.url, "client": self.case.client, "deadline": deadline, **config}
        name = f"worker{self.tag}-{len(self.workers)}.log"
        (LOGS / name).unlink(missing_ok=True)
        worker = Worker(WORKER, config, LOGS / name)
        self.workers.append(worker)
        return worker

    @contextlib.contextmanager
    def profiled(self) -> Iterator[None]:
        if not self.profile:
            yield
            return
        assert self.server is not None
        recorder = _profile.Recorder(self.server.pid, f"trisails{self.tag}")
        recorder.start()
        try:
            yield
        finally:
            self.profile_files = recorder.finish()

    def execute(self, server: _peers.Running | None = None) -> list[dict[str, Any]]:
        """Run once, on ``server`` if given (left running), else on a server of its own; the results of
        the run (one, or one per stage for ``idle``)."""
        case = self.case
        self.profile_files = []
        self.server = server
        try:
            if self.server is None:
                self.server = start_for(case, self.sizes, self.tag)
            result = getattr(self, "_" + case.scenario.replace("-", "_"))()
            if self.server.proc.poll() is not None:
                raise BenchError(f"the server died during the run; see {self.server.log}")
        finally:
            for worker in self.workers:
                worker.close()
            if self.server is not None and server is None:
                self.server.stop()
        results = result if isinstance(result, list) else [result]
        for r in results:
            count = r.get("count", 0)
            r.update(case=Case(case.server, case.scenario, case.client, count).key, server=case.server,
                     scenario=case.scenario, client=case.client, count=count, run=self.index, profiled=self.profile)
            if self.profile_files:
                r["profile_files"] = self.profile_files
        return results

    # --------------------------------------------------------------------------------------- rtt
    def _rtt(self, op: str) -> dict[str, Any]:
        s = self.sizes
        warmup = s.rtt_warmup_seconds if self.index == 1 else s.rtt_rewarm_seconds
        per = [s.rtt_sockets // s.rtt_workers + (1 if i < s.rtt_sockets % s.rtt_workers else 0)
               for i in range(s.rtt_workers)]
        workers = [self.worker({"mode": "rtt", "op": op, "sockets": n, "seconds": s.rtt_seconds,
                                "max_ops": s.rtt_max_ops, "warmup_seconds": warmup},
                               deadline=warmup + s.rtt_seconds + 90) for n in per if n]
        for w in workers:
            w.expect("ready", 60 + warmup)
        assert self.server is not None
        window = Window(self.server.pid, workers)
        with self.profiled():
            window.open()
            for w in workers:
                w.send("go")
            results = [w.expect("result", s.rtt_seconds + 60) for w in workers]
            window.close()
        latencies = [x for r in results for x in r["lat"]]
        ops = sum(r["ops"] for r in results)
        elapsed = max(r["elapsed"] for r in results)
        return {
            **window.figures(),
            "ops": ops,
            "errors": sum(r["errors"] for r in results),
            "disconnects": sum(r["disconnects"] for r in results),
            "throughput": ops / elapsed,
            "throughput_unit": "requests/s" if op == "virtual" else "echoes/s",
            "cpu_us_per_op": window.server_cpu / ops * 1e6 if ops else None,
            "op_unit": "request" if op == "virtual" else "echo",
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "delivered": ops - sum(r["errors"] for r in results),
            "expected": ops,
        }

    def _rtt_virtual(self) -> dict[str, Any]:
        return self._rtt("virtual")

    def _rtt_echo(self) -> dict[str, Any]:
        return self._rtt("echo")

    # --------------------------------------------------------------------------------------- deliveries
    def _deliveries(self, receivers: list[Worker], sender: Worker, expected: int, unit: str,
                    sender_timeout: float) -> dict[str, Any]:
        for w in receivers:
            ready = w.expect("ready", 120)
            if ready.get("failures"):
                raise BenchError(f"{ready['failures']} of {w.config['sockets']} sockets failed to connect "
                                 f"({ready.get('error')}); see {w.log}")
        sender.expect("ready", 60)
        sender.send("warmup")
        sender.expect("warmed", 120)
        time.sleep(1.0)  # the warm-up's deliveries drain
        assert self.server is not None
        window = Window(self.server.pid, receivers + [sender])
        with self.profiled():
            window.open()
            go_wall = time.time() * 1000
            sender.send("go")
            sent = sender.expect("result", sender_timeout)
            grace = 15.0
            results = []
            for w in receivers:
                got = w.try_expect("result", grace)
                if got is None:  # not all delivered within the grace period: take what arrived
                    w.send("finish")
                    got = w.expect("result", 10)
                results.append(got)
                grace = 0.5
            window.close()
        latencies = [x for r in results for x in r["lat"]]
        delivered = len(latencies)
        lasts = [r["last"] for r in results if r["last"] is not None]
        span = (max(lasts) - go_wall) / 1000 if lasts else None
        return {
            **window.figures(),
            "delivered": delivered,
            "expected": expected,
            "cpu_us_per_op": window.server_cpu / delivered * 1e6 if delivered else None,
            "op_unit": "delivery",
            "throughput": delivered / span if span else None,
            "throughput_unit": "deliveries/s",
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies) if latencies else None,
            "sender_ops": sent.get("sent", sent.get("ops")),
            "sender_elapsed_s": sent.get("elapsed"),
            "sender_p50_ms": percentile(sent["lat"], 50),
            "disconnects": sum(r["disconnects"] for r in results),
            "unit": unit,
        }

    def _split(self, total: int) -> list[int]:
        n = self.sizes.workers
        return [c for c in (total // n + (1 if i < total % n else 0) for i in range(n)) if c]

    def _fanout(self) -> dict[str, Any]:
        s = self.sizes
        room = "bench"
        receivers = [self.worker({"mode": "fanout-recv", "sockets": n, "room": room, "expected": s.fanout_broadcasts,
                                  "concurrency": 50}, deadline=240) for n in self._split(s.fanout_sockets)]
        sender = self.worker({"mode": "fanout-send", "room": room, "count": s.fanout_broadcasts,
                              "payload_bytes": s.payload_bytes, "warmup": s.fanout_warmup}, deadline=240)
        return self._deliveries(receivers, sender, s.fanout_sockets * s.fanout_broadcasts, "delivery", 150)

    def _pubsub(self) -> dict[str, Any]:
        s = self.sizes
        receivers = [self.worker({"mode": "pubsub-watch", "sockets": n, "expected": s.pubsub_posts, "concurrency": 50},
                                 deadline=240) for n in self._split(s.pubsub_watchers)]
        sender = self.worker({"mode": "pubsub-post", "sockets": s.pubsub_posters, "count": s.pubsub_posts,
                              "warmup": s.pubsub_warmup}, deadline=240)
        result = self._deliveries(receivers, sender, s.pubsub_watchers * s.pubsub_posts, "delivery", 150)
        result["posts"] = result.pop("sender_ops")
        result["post_p50_ms"] = result.pop("sender_p50_ms")
        return result

    # --------------------------------------------------------------------------------------- idle
    def _idle(self) -> list[dict[str, Any]]:
        """One server, connections in stages (1,000 then 10,000 in all): each stage is measured and held."""
        s = self.sizes
        assert self.server is not None
        stages = sorted(s.idle_counts)
        per_stage = [self._split(n) for n in stages]
        workers = [self.worker({"mode": "idle", "stages": [split[i] for split in per_stage], "concurrency": 50,
                                "warmup": s.idle_warmup if i == 0 else 0}, deadline=600)
                   for i in range(len(per_stage[0]))]
        for w in workers:
            w.expect("ready", 60)
        for w in workers:
            w.send("warmup")
        for w in workers:
            w.expect("warmed", 120)
        time.sleep(1.5)
        pid = self.server.pid
        rss0 = rss_kb(pid)
        results = []
        with self.profiled():
            for n in stages:
                window = Window(pid, workers)
                window.open()
                for w in workers:
                    w.send("go")
                connected = [w.expect("connected", 300) for w in workers]
                window.close()
                connected_at = time.monotonic()
                new = sum(c["ok"] for c in connected)
                total = sum(c["total"] for c in connected)
                failed = sum(c["failed"] for c in connected)
                time.sleep(2.0)
                rss1 = rss_kb(pid)
                for w in workers:
                    w.send("mark")
                for w in workers:
                    w.expect("marked", 30)
                c1, t1 = cpu_seconds(pid), time.monotonic()
                time.sleep(max(0.0, t1 + s.hold_seconds - time.monotonic()))
                c2, t2 = cpu_seconds(pid), time.monotonic()
                rss2 = rss_kb(pid)
                checks = []
                for w in workers:
                    w.send("check")
                    checks.append(w.expect("check", 30))
                held = time.monotonic() - connected_at
                still = sum(c["connected"] for c in checks)
                beating = sum(c["beating"] for c in checks)
                connect_span = max(c["elapsed"] for c in connected)
                heartbeats = still * (t2 - t1) / (s.ping_interval / 1000)
                results.append({
                    **window.figures(),
                    "count": n,
                    "connected": total,
                    "new_connections": new,
                    "failed": failed,
                    "connect_errors": sorted({c["error"] for c in connected if c.get("failed") and c.get("error")}),
                    "expected": n,
                    "delivered": still,  # still connected after the hold
                    "throughput": new / connect_span if connect_span else None,
                    "throughput_unit": "connections/s",
                    "cpu_us_per_op": window.server_cpu / new * 1e6 if new else None,
                    "op_unit": "connection",
                    "rss_before_kb": rss0,
                    "rss_after_kb": rss1,
                    "rss_after_hold_kb": rss2,
                    "kb_per_connection": (rss1 - rss0) / total if total else None,
                    "kb_per_connection_after_hold": (rss2 - rss0) / total if total else None,
                    "held_s": held,
                    "ping_interval_ms": s.ping_interval,
                    "ping_timeout_ms": s.ping_timeout,
                    "still_connected": still,
                    "heartbeating": beating,  # sockets that saw a heartbeat during the hold (> one ping interval)
                    "hold_s": t2 - t1,
                    "heartbeat_cpu_share": (c2 - c1) / max(t2 - t1, 1e-9),
                    "cpu_us_per_heartbeat": (c2 - c1) / heartbeats * 1e6 if heartbeats else None,
                })
        return results


def start_for(case: Case, sizes: Sizes, tag: str) -> _peers.Running:
    ping = {}
    if case.scenario == "idle":
        ping = {"ping_interval": sizes.ping_interval, "ping_timeout": sizes.ping_timeout}
    server = _peers.start(case.server, tag=tag, sessions=sizes.sessions, **ping)
    time.sleep(0.5)
    return server


def run_case(case: Case, runs: int, sizes: Sizes, profile: bool, before_run: Any = None) -> Iterator[dict[str, Any]]:
    """Every run of one case, one after the other on one server, which the runs after the first find warm;
    except ``idle``, whose every run has a fresh server (its memory before the connections is the baseline).
    A run that fails is yielded as ``{"error": ...}``."""
    server = None
    try:
        for index in range(1, runs + 1):
            load = before_run() if before_run else None
            run = Run(case, index, sizes, profile)
            try:
                if server is None and case.scenario != "idle":
                    server = start_for(case, sizes, run.tag)
                results = run.execute(server)
            except BenchError as error:
                results = [{"case": case.key, "server": case.server, "scenario": case.scenario,
                            "client": case.client, "count": case.count, "run": index, "error": str(error)}]
                if server is not None:
                    server.stop()
                    server = None
            for result in results:
                result["load_before"] = load
                yield result
    finally:
        if server is not None:
            server.stop()


def mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


__all__ = ["Case", "Run", "Sizes", "plan", "percentile", "mean", "run_case", "CLIENT_LABELS"]
