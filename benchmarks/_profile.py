"""``--profile``: py-spy attached to the trisails server over a scenario's measured window.

py-spy records collapsed stacks (``--format raw --function``: one line per distinct stack, frames as
``function (file:first line)``); from them this module writes, under ``benchmarks/.peers/profiles/``:

- ``<label>.txt``: py-spy's collapsed stacks (for flamegraph.pl, inferno, speedscope.app's import);
- ``<label>.svg``: a flame graph (open in a browser; hover for a frame's samples);
- ``<label>.speedscope.json``: the same samples for speedscope;
- ``<label>.summary.txt``: the top functions by self and by total time, as shares of the busy samples
  (samples whose innermost frame is a thread waiting — trio's epoll wait, an idle worker thread — are
  counted apart as idle).
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter, defaultdict
from html import escape
from pathlib import Path

from . import _peers
from ._procs import LOGS, PEERS, spawn, stop

PROFILES = PEERS / "profiles"
RATE = 250  # samples per second

#: innermost frames that mean "this thread is waiting, not working"
IDLE_LEAVES = (
    "EpollIOManager.get_events",
    "WorkerThread._work",
    "Condition.wait",
    "Event.wait",
    "Thread._wait_for_tstate_lock",
    "select (",
    "poll (",
)


class Recorder:
    def __init__(self, pid: int, label: str) -> None:
        self.pid = pid
        self.label = label
        PROFILES.mkdir(parents=True, exist_ok=True)
        self.raw = PROFILES / f"{label}.txt"

    def start(self) -> None:
        self.raw.unlink(missing_ok=True)
        argv = [str(_peers.py_spy()), "record", "--pid", str(self.pid), "--rate", str(RATE), "--format", "raw",
                "--function", "--output", str(self.raw)]
        self.proc = spawn(argv, log=LOGS / f"py-spy-{self.label}.log")
        time.sleep(0.5)  # py-spy needs a moment to attach

    def finish(self) -> list[str]:
        stop(self.proc, grace=20.0, sig=signal.SIGINT)
        if not self.raw.exists():
            return []
        stacks = read(self.raw)
        files = [self.raw]
        svg = PROFILES / f"{self.label}.svg"
        svg.write_text(flamegraph(stacks, self.label))
        files.append(svg)
        speed = PROFILES / f"{self.label}.speedscope.json"
        speed.write_text(json.dumps(speedscope(stacks, self.label)))
        files.append(speed)
        summary_file = PROFILES / f"{self.label}.summary.txt"
        summary_file.write_text(summary(stacks, self.label))
        files.append(summary_file)
        return [str(f.relative_to(_peers.REPO)) for f in files]


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _idle(frames: list[str]) -> bool:
    return any(frames[-1].startswith(leaf) or leaf in frames[-1] for leaf in IDLE_LEAVES)


def _short(frame: str) -> str:
    # "send (trisails/realtime/connection.py:312)" stays; long site-packages paths are trimmed
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def summary(stacks: list[tuple[list[str], int]], label: str, top: int = 30) -> str:
    total = sum(c for _, c in stacks)
    busy_stacks = [(f, c) for f, c in stacks if not _idle(f)]
    busy = sum(c for _, c in busy_stacks)
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    for frames, count in busy_stacks:
        short = [_short(f) for f in frames]
        self_time[short[-1]] += count
        for name in set(short):
            total_time[name] += count
        where = short[-1].partition(" (")[2].rstrip(")").split(":")[0]
        modules[where] += count
    lines = [f"profile {label}: {total} samples at {RATE}/s, {busy} busy ({busy / max(total, 1):.0%}), "
             f"{total - busy} idle (waiting in epoll or an idle thread)", "",
             f"top {top} by self time (share of busy samples):"]
    for name, count in self_time.most_common(top):
        lines.append(f"  {count / max(busy, 1):6.1%}  {name}")
    lines += ["", f"top {top} by total time (inclusive, share of busy samples; the frames under which "
                  "everything runs left out):"]
    for name, count in [(n, c) for n, c in total_time.most_common() if c < 0.98 * busy][:top]:
        lines.append(f"  {count / max(busy, 1):6.1%}  {name}")
    lines += ["", "self time by file:"]
    for name, count in modules.most_common(20):
        lines.append(f"  {count / max(busy, 1):6.1%}  {name}")
    return "\n".join(lines) + "\n"


def top_self(path: Path, top: int = 12) -> list[tuple[str, float]]:
    stacks = [(f, c) for f, c in read(path) if not _idle(f)]
    busy = sum(c for _, c in stacks) or 1
    counter: Counter[str] = Counter()
    for frames, count in stacks:
        counter[_short(frames[-1])] += count
    return [(name, count / busy) for name, count in counter.most_common(top)]


def speedscope(stacks: list[tuple[list[str], int]], label: str) -> dict:
    index: dict[str, int] = {}
    frames: list[dict[str, str]] = []
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, count in stacks:
        ids = []
        for frame in stack:
            if frame not in index:
                index[frame] = len(frames)
                name, _, where = frame.partition(" (")
                frames.append({"name": name, "file": where.rstrip(")")})
            ids.append(index[frame])
        samples.append(ids)
        weights.append(count)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [{"type": "sampled", "name": label, "unit": "none", "startValue": 0,
                      "endValue": sum(weights), "samples": samples, "weights": weights}],
        "name": label,
        "exporter": "trisails benchmarks",
    }


def flamegraph(stacks: list[tuple[list[str], int]], label: str, width: int = 1600) -> str:
    """A plain SVG flame graph (root at the bottom), one rectangle per frame, a title tooltip each."""
    tree: dict = {"children": defaultdict(dict), "count": 0}

    def node(parent: dict, name: str) -> dict:
        children = parent["children"]
        if name not in children:
            children[name] = {"children": defaultdict(dict), "count": 0}
        return children[name]

    depth_max = 0
    for frames, count in stacks:
        tree["count"] += count
        current = tree
        for frame in frames:
            current = node(current, frame)
            current["count"] += count
        depth_max = max(depth_max, len(frames))
    total = max(tree["count"], 1)
    row = 16
    height = (depth_max + 2) * row + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
             f'font-size="11">',
             f'<text x="4" y="14">{escape(label)}: {total} samples (hover a frame)</text>']

    def draw(current: dict, x: float, depth: int) -> None:
        for name, child in sorted(current["children"].items()):
            w = child["count"] / total * width
            if w >= 0.3:
                y = height - (depth + 1) * row
                hue = 20 + (hash(name.split(" (")[-1]) % 40)
                share = child["count"] / total
                parts.append(f'<g><title>{escape(_short(name))}: {child["count"]} samples, {share:.2%}</title>'
                             f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" '
                             f'fill="hsl({hue},85%,{55 + depth % 3 * 5}%)"/>')
                chars = int(w / 6.6)
                if chars >= 4:
                    text = _short(name)
                    text = text if len(text) <= chars else text[: chars - 2] + ".."
                    parts.append(f'<text x="{x + 2:.2f}" y="{y + row - 4}">{escape(text)}</text>')
                parts.append("</g>")
                draw(child, x, depth + 1)
            x += w

    draw(tree, 0.0, 0)
    parts.append("</svg>")
    return "\n".join(parts)


__all__ = ["Recorder", "summary", "top_self", "PROFILES"]
