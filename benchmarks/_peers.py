"""The servers under test, and the installation of the peers into ``benchmarks/.peers/``.

- ``.peers/sails_app``: a copy of ``benchmarks/peers/sails_app`` with its node_modules (``npm ci`` from
  its package-lock.json: sails 1.5.18, sails-hook-sockets 3.0.2, sails-hook-orm, sails-disk);
- ``.peers/loadgen``: ``benchmarks/loadgen`` with its node_modules (sails.io.js 1.2.1, socket.io-client
  2.0.3 and 4.8);
- ``.peers/pyvenv``: a virtualenv with ``benchmarks/peers/pysio/requirements.txt`` (python-socketio
  5.18.1, uvicorn 0.54.0 with uvloop, httptools and websockets, py-spy 0.4.3).

Each is reinstalled when its lock file changes (a stamp of the lock file sits next to what it installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._procs import LOGS, PEERS, ROOT, BenchError, free_port, spawn, stop, wait_for_port

SAILS_SRC = ROOT / "peers" / "sails_app"
SAILS_DIR = PEERS / "sails_app"
LOADGEN_SRC = ROOT / "loadgen"
LOADGEN_DIR = PEERS / "loadgen"
PYSIO_SRC = ROOT / "peers" / "pysio"
PYVENV = PEERS / "pyvenv"
TRISAILS_APP = ROOT / "trisails_app"
REPO = ROOT.parent


def _stamp(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sync(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules", ".tmp"))


def _npm_ci(src: Path, dst: Path) -> None:
    _sync(src, dst)
    stamp = _stamp(src / "package-lock.json")
    marker = dst / "node_modules" / ".bench-installed"
    if marker.exists() and marker.read_text() == stamp:
        return
    print(f"bench: npm ci in {dst.relative_to(REPO)}", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dst, check=True)
    marker.write_text(stamp)


def install() -> None:
    """Install (or update) every peer; quick when nothing changed."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise BenchError("node and npm are needed (apt-get install nodejs npm)")
    PEERS.mkdir(exist_ok=True)
    _npm_ci(SAILS_SRC, SAILS_DIR)
    _npm_ci(LOADGEN_SRC, LOADGEN_DIR)
    requirements = PYSIO_SRC / "requirements.txt"
    marker = PYVENV / ".bench-installed"
    if not (marker.exists() and marker.read_text() == _stamp(requirements)):
        print(f"bench: python-socketio, uvicorn and py-spy into {PYVENV.relative_to(REPO)}", flush=True)
        if not (PYVENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(PYVENV)], check=True)
        subprocess.run([str(PYVENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(requirements)], check=True)
        marker.write_text(_stamp(requirements))


def py_spy() -> Path:
    return PYVENV / "bin" / "py-spy"


# ------------------------------------------------------------------------------------------- servers
@dataclass
class Running:
    name: str
    port: int
    proc: subprocess.Popen[Any]
    log: Path
    cleanup: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.proc, grace=8.0)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


SERVERS = ("trisails", "sails", "pysio")
LABELS = {"trisails": "trisails", "sails": "Sails", "pysio": "python-socketio"}


def start(name: str, *, ping_interval: int | None = None, ping_timeout: int | None = None, tag: str = "",
          sessions: bool = True) -> Running:
    """Start one server on 127.0.0.1 and a free port; return once it accepts connections."""
    port = free_port()
    log = LOGS / f"{name}{tag}.log"
    log.unlink(missing_ok=True)
    env: dict[str, str] = {}
    if ping_interval:
        env["BENCH_PING_INTERVAL"] = str(ping_interval)
        env["BENCH_PING_TIMEOUT"] = str(ping_timeout or ping_interval)
    if not sessions:
        env["BENCH_SESSIONS"] = "off"
    cleanup: list[Path] = []
    if name == "trisails":
        scratch = Path(tempfile.mkdtemp(prefix="trisails-bench-"))
        cleanup.append(scratch)
        env["TRISAILS_DATABASE_URL"] = f"sqlite:///{scratch / 'bench.sqlite'}"
        argv = [sys.executable, "-m", "trisails", str(TRISAILS_APP), "--prod", "--port", str(port),
                "--log-level", "warning"]
        proc = spawn(argv, cwd=REPO, env=env, log=log)
    elif name == "sails":
        shutil.rmtree(SAILS_DIR / ".tmp", ignore_errors=True)
        _sync(SAILS_SRC, SAILS_DIR)
        env.update(PORT=str(port), NODE_ENV="production")
        proc = spawn(["node", "app.js"], cwd=SAILS_DIR, env=env, log=log)
    elif name == "pysio":
        argv = [str(PYVENV / "bin" / "python"), str(PYSIO_SRC / "server.py"), "--port", str(port)]
        if ping_interval:
            argv += ["--ping-interval", str(ping_interval), "--ping-timeout", str(ping_timeout or ping_interval)]
        proc = spawn(argv, cwd=PYSIO_SRC, log=log)
    else:
        raise BenchError(f"unknown server {name!r}")
    running = Running(name, port, proc, log, cleanup)
    try:
        wait_for_port(port, proc, 60.0, log)
    except BaseException:
        running.stop()
        raise
    return running


# ------------------------------------------------------------------------------------------- facts
def _node_version(directory: Path, package: str) -> str:
    try:
        return str(json.loads((directory / "node_modules" / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def _py_version(package: str) -> str:
    try:
        out = subprocess.run([str(PYVENV / "bin" / "python"), "-c",
                              f"import importlib.metadata as m; print(m.version({package!r}))"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _own_version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "trisails"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        "git": git + (" with uncommitted changes under trisails/" if dirty else ""),
    }


def versions() -> dict[str, str]:
    return {
        "trisails": _own_version("trisails"),
        "trio": _own_version("trio"),
        "wsproto": _own_version("wsproto"),
        "orjson": _own_version("orjson"),
        "sails": _node_version(SAILS_DIR, "sails"),
        "sails-hook-sockets": _node_version(SAILS_DIR, "sails-hook-sockets"),
        "socket.io (in Sails)": _node_version(SAILS_DIR, "socket.io"),
        "sails-hook-orm": _node_version(SAILS_DIR, "sails-hook-orm"),
        "sails-disk": _node_version(SAILS_DIR, "sails-disk"),
        "python-socketio": _py_version("python-socketio"),
        "python-engineio": _py_version("python-engineio"),
        "uvicorn": _py_version("uvicorn"),
        "websockets": _py_version("websockets"),
        "uvloop": _py_version("uvloop"),
        "sails.io.js": _node_version(LOADGEN_DIR, "sails.io.js"),
        "socket.io-client (v2)": _node_version(LOADGEN_DIR, "socket.io-client-v2"),
        "socket.io-client (v4)": _node_version(LOADGEN_DIR, "socket.io-client"),
        "py-spy": _py_version("py-spy"),
    }
