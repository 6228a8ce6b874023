"""Processes of a benchmark run: servers, load-generator workers, /proc readings, and cleaning up.

Every process is started in a session of its own and remembered, so that :func:`kill_all` ends each
of them (and its children) by process group id, at the end of a run and on any failure.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
PEERS = ROOT / ".peers"
LOGS = PEERS / "logs"
TICKS = os.sysconf("SC_CLK_TCK")

_started: list[subprocess.Popen[Any]] = []


class BenchError(Exception):
    """A scenario could not run (a server that did not start, a worker that failed, a timeout)."""


def spawn(argv: list[str], *, log: Path, cwd: Path | None = None, env: dict[str, str] | None = None,
          stdin: Any = subprocess.DEVNULL, stdout: Any = None) -> subprocess.Popen[Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log, "ab")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=stdin,
        stdout=stdout if stdout is not None else handle,
        stderr=handle,
        start_new_session=True,
    )
    handle.close()
    _started.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """End one process we started (and its group): ``sig``, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
    else:  # the leader is gone; its group may still hold children
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc in _started:
        _started.remove(proc)


def kill_all() -> None:
    for proc in list(_started):
        stop(proc, grace=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with status {proc.returncode}; see {log}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"the server did not listen on port {port} within {timeout} s; see {log}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until the machine is busy less than ``threshold`` cores over a second;
    return the load seen last, in cores. Other people's work on a shared machine skews every figure."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = machine_busy(), time.monotonic()
        time.sleep(1.0)
        load = (machine_busy() - b0) / (time.monotonic() - t0)
        if load < threshold or time.monotonic() >= deadline:
            return load


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


class Worker:
    """One Node load-generator process, spoken to in lines."""

    def __init__(self, script: Path, config: dict[str, Any], log: Path) -> None:
        self.config = config
        self.log = log
        self.proc = spawn(["node", str(script), json.dumps(config)], cwd=script.parent, log=log,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.events.put(json.loads(raw))
            except ValueError:
                with open(self.log, "ab") as f:
                    f.write(raw)
        self.events.put({"event": "exited"})

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"worker {self.config['mode']}: no {event!r} within {timeout:.0f} s; see {self.log}")
            try:
                message = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if message.get("event") == event:
                return message
            if message.get("event") in ("error", "exited"):
                raise BenchError(f"worker {self.config['mode']}: {message.get('error', 'exited')}; see {self.log}\n"
                                 f"{tail(self.log)}")

    def try_expect(self, event: str, timeout: float) -> dict[str, Any] | None:
        try:
            return self.expect(event, timeout)
        except BenchError:
            return None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        self.send("exit")
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            pass
        stop(self.proc, grace=1.0)


def workers_cpu(workers: list[Worker]) -> float:
    total = 0.0
    for worker in workers:
        try:
            total += cpu_seconds(worker.pid)
        except OSError:
            pass
    return total
