"""Turn the results of a run into Markdown: the comparison section of benchmarks/RESULTS.md."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from . import _profile
from ._peers import LABELS, REPO
from ._scenarios import CLIENT_LABELS

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
KEEP_FROM = "## Arena"

#: the issue author's figures for the peers, measured on this kind of machine
REFERENCE = {  # the figures of the speed issue (#13), measured by its author on this machine
    "virtual": "Sails 517–553 µs/request",
    "echo": "Sails 69–74 µs",
    "fanout": "Sails 24–33 µs/delivery",
    "pubsub": "Sails 46.8–54.7 µs/delivery",
    "idle": "Sails 13.7–14.0 KB/connection",
    "connect": "Sails 1,132 µs/connection",
}


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def one_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return "FAILED: " + r["error"]
    text = (f"{_f(r.get('cpu_us_per_op'))} µs server CPU/{r.get('op_unit')}, {_f(r.get('throughput'))} "
            f"{r.get('throughput_unit')}, p50/p99 {_f(r.get('p50_ms'), 2)}/{_f(r.get('p99_ms'), 2)} ms, "
            f"{r.get('delivered')}/{r.get('expected')}, server CPU {_pct(r.get('server_cpu_share'))}, "
            f"load generator {_pct(r.get('client_cpu_share'))}, other work {_pct(r.get('other_cpu_share'))}")
    if r["scenario"] == "idle":
        text = (f"{r['count']:,} sockets: {_f(r.get('kb_per_connection'))} KB/connection ({_f(r.get('kb_per_connection_after_hold'))} after "
                f"the hold), {_f(r.get('cpu_us_per_op'))} µs server CPU/connection, {_f(r.get('throughput'))} "
                f"connections/s, {r.get('still_connected')}/{r.get('expected')} still connected and "
                f"{r.get('heartbeating')} with a heartbeat in the last {_f(r.get('hold_s'))} s, server CPU {_pct(r.get('server_cpu_share'))} while connecting, "
                f"other work {_pct(r.get('other_cpu_share'))}")
    if r.get("profile_files"):
        text += " [profiled: " + ", ".join(p for p in r["profile_files"] if p.endswith("summary.txt")) + "]"
    return text


def _ok(results: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in results if "error" not in r and all(r.get(k) == v for k, v in where.items())]


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def _runs(rows: list[dict[str, Any]], key: str, digits: int = 1) -> str:
    return " / ".join(_f(r.get(key), digits) for r in rows) or "–"


# ------------------------------------------------------------------------------------------- targets
def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the speed issue (#13: "Raw events, new connections and idle sockets at Node's cost
    or less"), with trisails' and the reference's figures of this run, and a verdict: virtual requests
    at most 0.45 of Sails' CPU, raw echo, new connections and idle memory at most Sails', fan-out at
    most 0.6 of Sails' CPU with a p99 no worse, pub-sub at most 0.5."""
    out = []

    def pair(scenario: str, client: str, key: str = "cpu_us_per_op", count: int = 0,
             ref_client: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        extra = {"count": count} if count else {}
        tri = _ok(results, server="trisails", scenario=scenario, client=client, **extra)
        ref = _ok(results, server="sails", scenario=scenario, client=ref_client or client, **extra)
        return tri, ref

    have_sails_v4 = bool(_ok(results, server="sails", client="v4"))

    def verdict(tri: list[dict[str, Any]], ref: list[dict[str, Any]], ok: bool | None) -> str:
        if not tri or not ref:
            return "not measured"
        return "**met**" if ok else "**missed**"

    def cpu(key: str, target: str, unit: str, tri: list[dict[str, Any]], ref: list[dict[str, Any]],
            share: float = 1.0, complete: bool = True) -> dict[str, Any]:
        """A target on server CPU per operation: trisails' at most ``share`` of Sails'."""
        t, s = _mean(tri, "cpu_us_per_op"), _mean(ref, "cpu_us_per_op")
        bound = f" ({share:g} of it: {_f(s * share if s else None)})" if share != 1.0 else ""
        return {
            "ref": key,
            "target": target,
            "trisails": f"{_runs(tri, 'cpu_us_per_op')} µs/{unit}",
            "reference": f"Sails {_runs(ref, 'cpu_us_per_op')} µs/{unit}{bound}",
            "verdict": verdict(tri, ref, t is not None and s is not None and t <= s * share and complete),
            "ratio": t / s if t and s else None,
        }

    out.append(cpu("virtual", "virtual request CPU ≤ 0.45 of Sails'", "request", *pair("rtt-virtual", "sails"), share=0.45))
    for client in ("v2", "v4") if have_sails_v4 else ("v2",):
        out.append(cpu("echo", f"raw echo CPU ≤ Sails' ({CLIENT_LABELS[client]} on both)", "echo", *pair("rtt-echo", client)))
    for client in ("v2", "v4") if have_sails_v4 else ("v2",):
        tri, ref = pair("fanout", client)
        t, s = _mean(tri, "cpu_us_per_op"), _mean(ref, "cpu_us_per_op")
        tp, sp = _mean(tri, "p99_ms"), _mean(ref, "p99_ms")
        complete = all(r["delivered"] == r["expected"] for r in tri)
        out.append({
            "ref": "fanout",
            "target": f"fan-out CPU per delivery ≤ 0.6 of Sails' and p99 no worse ({CLIENT_LABELS[client]} on both)",
            "trisails": f"{_runs(tri, 'cpu_us_per_op')} µs/delivery, p99 {_runs(tri, 'p99_ms')} ms",
            "reference": f"Sails {_runs(ref, 'cpu_us_per_op')} µs/delivery, p99 {_runs(ref, 'p99_ms')} ms",
            "verdict": verdict(tri, ref, None not in (t, s, tp, sp) and t <= s * 0.6 and tp <= sp and complete),  # type: ignore[operator]
            "ratio": t / s if t and s else None,
        })
    tri, ref = pair("pubsub", "sails")
    out.append(cpu("pubsub", "pub-sub CPU per delivery ≤ 0.5 of Sails'", "delivery", tri, ref, share=0.5,
                   complete=all(r["delivered"] == r["expected"] for r in tri)))
    counts = sorted({r["count"] for r in results if r.get("scenario") == "idle" and r.get("count")})
    if counts:
        n = counts[-1]
        for client in ("v2", "v4"):
            tri, ref = pair("idle", client, count=n, ref_client="v2")
            t, s = _mean(tri, "kb_per_connection"), _mean(ref, "kb_per_connection")
            held = all(r["still_connected"] == n and r["heartbeating"] == n for r in tri)
            out.append({
                "ref": "idle",
                "target": f"idle memory per connection ≤ Sails' with {n:,} sockets held, heartbeats running "
                          f"(trisails with {CLIENT_LABELS[client]}, Sails with {CLIENT_LABELS['v2']})",
                "trisails": f"{_runs(tri, 'kb_per_connection')} KB/connection; still connected "
                            f"{_runs(tri, 'still_connected', 0)}, with a heartbeat in the hold "
                            f"{_runs(tri, 'heartbeating', 0)}",
                "reference": f"Sails {_runs(ref, 'kb_per_connection')} KB/connection",
                "verdict": verdict(tri, ref, t is not None and s is not None and t <= s and held),
                "ratio": t / s if t and s else None,
            })
        out.append(cpu("connect", f"server CPU per new connection ≤ Sails' (the {n:,}-socket stage, "
                       f"{CLIENT_LABELS['v2']} on both)", "connection", *pair("idle", "v2", count=n)))
    return out


def targets_text(results: list[dict[str, Any]]) -> str:
    lines = ["targets (trisails vs Sails, this run):"]
    for t in targets(results):
        lines.append(f"  {t['verdict'].strip('*'):>12}  {t['target']}: {t['trisails']} vs {t['reference']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- tables
def _case_rows(results: list[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    order = {"trisails": 0, "sails": 1, "pysio": 2}
    rows = [r for r in results if r.get("scenario") == scenario]
    return sorted(rows, key=lambda r: (r.get("count", 0), order[r["server"]], r["client"], r["run"]))


def _who(r: dict[str, Any]) -> str:
    return f"{LABELS[r['server']]} | {CLIENT_LABELS[r['client']]}"


def table(results: list[dict[str, Any]], scenario: str) -> str:
    rows = _case_rows(results, scenario)
    if not rows:
        return "_not run_\n"
    if scenario == "idle":
        head = ("| sockets | server | client | run | KB/connection (settled / after hold) | server CPU µs/connection "
                "| connections/s | failed to connect | still connected / with a heartbeat in the hold | server CPU while connecting "
                "| heartbeat CPU µs each "
                "| other work |\n"
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
        body = ""
        for r in rows:
            if "error" in r:
                body += f"| {r['count']:,} | {_who(r)} | {r['run']} | failed: {r['error'].splitlines()[0]} | | | | | |\n"
                continue
            body += (f"| {r['count']:,} | {_who(r)} | {r['run']} | {_f(r['kb_per_connection'])} / "
                     f"{_f(r['kb_per_connection_after_hold'])} | {_f(r['cpu_us_per_op'])} | {_f(r['throughput'])} | "
                     f"{r['failed']:,}{' (' + '; '.join(r['connect_errors']) + ')' if r.get('connect_errors') else ''} | "
                     f"{r['still_connected']:,} / {r['heartbeating']:,} of {r['expected']:,} | "
                     f"{_pct(r['server_cpu_share'])} | {_f(r['cpu_us_per_heartbeat'])} | "
                     f"{_pct(r.get('other_cpu_share'))} |\n")
        return head + body
    unit = {"rtt-virtual": "request", "rtt-echo": "echo", "fanout": "delivery", "pubsub": "delivery"}[scenario]
    rate = {"rtt-virtual": "requests/s", "rtt-echo": "echoes/s", "fanout": "deliveries/s",
            "pubsub": "deliveries/s"}[scenario]
    got = {"rtt-virtual": "answered", "rtt-echo": "acked", "fanout": "delivered", "pubsub": "delivered"}[scenario]
    head = (f"| server | client | run | **server CPU µs/{unit}** | {rate} | p50 / p99 ms | {got}/expected "
            f"| server CPU (of one core) | load generator CPU (processes) | other work |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    body = ""
    for r in rows:
        if "error" in r:
            body += f"| {_who(r)} | {r['run']} | failed: {r['error'].splitlines()[0]} | | | | | |\n"
            continue
        body += (f"| {_who(r)} | {r['run']} | **{_f(r['cpu_us_per_op'])}** | {_f(r['throughput'])} | "
                 f"{_f(r['p50_ms'], 2)} / {_f(r['p99_ms'], 2)} | {r['delivered']:,}/{r['expected']:,} | "
                 f"{_pct(r['server_cpu_share'])} | {_pct(r['client_cpu_share'])} ({r['client_processes']}) | "
                 f"{_pct(r.get('other_cpu_share'))} |\n")
    return head + body


def _state(r: dict[str, Any]) -> str:
    server, client, other = r["server_cpu_share"], r["client_cpu_share"], r.get("other_cpu_share", 0.0)
    if server >= 0.9:
        return "saturated"
    if server + client + other >= 1.7:
        return "starved (machine full)"
    return "not saturated"


def saturation(results: list[dict[str, Any]]) -> str:
    lines = ["| scenario | server | client | run | server CPU | load generator | other work | server was |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for scenario in ("rtt-virtual", "rtt-echo", "fanout", "pubsub", "idle"):
        for r in _case_rows(results, scenario):
            if "error" in r:
                continue
            name = scenario + (f" {r['count']:,}" if r.get("count") else "")
            lines.append(f"| {name} | {_who(r)} | {r['run']} | {_pct(r['server_cpu_share'])} | "
                         f"{_pct(r['client_cpu_share'])} | {_pct(r.get('other_cpu_share'))} | {_state(r)} |")
    notes = []
    for scenario in ("rtt-virtual", "rtt-echo", "fanout", "pubsub", "idle"):
        for server in ("trisails", "sails", "pysio"):
            rows = [r for r in results if r.get("scenario") == scenario and r.get("server") == server
                    and "error" not in r]
            if rows and all(r["server_cpu_share"] < 0.9 and r["client_cpu_share"] > r["server_cpu_share"]
                            for r in rows):
                notes.append(f"`{scenario}` on {LABELS[server]}")
    if notes:
        lines += ["", "Where the server was not saturated and the load generator used more CPU than the server "
                  "(" + ", ".join(notes) + "), the clients (Node decoding every message) set the pace on this "
                  "2-core machine: throughput and latency there say as much about the load generator as about "
                  "the server. CPU per operation is the server's own and holds regardless."]
    return "\n".join(lines) + "\n"


def comparison(facts: dict[str, Any], results: list[dict[str, Any]]) -> str:
    m, v, s = facts["machine"], facts["versions"], facts["sizes"]
    runs = facts["runs"]
    kind = "a full run" if not (facts["only"] or facts["quick"] or facts["profile"]) else (
        f"a partial run (--only {facts['only']}{' --quick' if facts['quick'] else ''}"
        f"{' --profile' if facts['profile'] else ''})")
    md = [
        "# Benchmark results",
        "",
        "## Comparison with Sails and python-socketio",
        "",
        f"Measured on {facts['date']} by `bash benchmarks/run.sh` ({kind}, every case {runs} time(s), "
        f"{facts.get('duration_s', 0) // 60} min in all), on this project's development machine: "
        f"{m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}, Node {m['node']}, "
        f"Python {m['python']}; trisails at {m['git']}. The machine is shared, so absolute figures move "
        "between runs; compare servers within one run.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "### Targets",
        "",
        "Each target of the speed issue (#13), judged on the mean of this run's figures (both runs shown, "
        "separated by /). The issue author's own figures for Sails are in the reference column, for scale.",
        "",
        "| target | trisails | reference, this run | verdict | trisails / Sails |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in targets(results):
        ref = REFERENCE[t["ref"]]
        md.append(f"| {t['target']} | {t['trisails']} | {t['reference']} (issue: {ref}) | {t['verdict']} | "
                  f"{_f(t['ratio'], 2)} |")
    md += [
        "",
        "### How it was measured",
        "",
        "- Every server runs alone on 127.0.0.1, started fresh for each case (server, scenario, client) and "
        "given both runs of it, the first after a longer warm-up (Node's JIT needs thousands of requests); "
        "`idle` starts a fresh server for each run. All run in production "
        "mode with logs quiet, websocket transport only, no compression: trisails "
        "(`benchmarks/trisails_app`, `python -m trisails --prod`, SQLite in a fresh temporary file, the "
        "socket request limiter set out of the way), Sails (`benchmarks/peers/sails_app`, `NODE_ENV=production`, "
        "no grunt, sails-disk in a fresh folder, the memory session store), python-socketio "
        "(`benchmarks/peers/pysio/server.py`, an ASGI app under uvicorn with uvloop, httptools and websockets). "
        "The three answer the same raw events (`echo`, `join`, `fanout`); trisails and Sails also have the "
        "same `User` model with blueprints and `GET /bench/echo`, and both keep sessions on, their default "
        "(Sails with its memory store), so every virtual request loads its session; `--no-sessions` turns "
        "them off in both, for comparison.",
        "- The load comes from Node processes (`benchmarks/loadgen/worker.js`), several per case, with one "
        "client stack for every server: sails.io.js 1.2.1 (over socket.io-client 2.0.3) for virtual requests and "
        "pub-sub, socket.io-client 2.0.3 (Engine.IO 3) or 4.8 (Engine.IO 4) for raw events. Sails' "
        "sails-hook-sockets 3.0.2 runs socket.io 4.8 with `allowEIO3`, so it answers both clients; the "
        "like-for-like Sails comparison is the one with the same client on both sides.",
        "- **Server CPU per operation** is the comparison figure: utime + stime of the server process "
        "(/proc/<pid>/stat, every thread) over the measured window, divided by the requests, deliveries or "
        "connections of the window. The window opens once every socket is connected (and has made one warm-up "
        "request) and closes when the last answer or delivery arrived. The server's CPU share is that CPU time "
        "over the window's wall time (100% = one core saturated); the load generator's share is the same "
        "for all its processes together, and `other work` is what the rest of the machine used meanwhile "
        "(/proc/stat, in cores): the machine is shared with other people's test runs. Before each run the "
        "harness waits (up to 10 s) for the machine to be idle. The machine has 2 cores: a server at about "
        "100% is saturated; one well below that while other work takes the rest is starved, not idle.",
        f"- `rtt`: {s['rtt_sockets']} sockets in {s['rtt_workers']} processes, each a loop of one operation at "
        f"a time for {s['rtt_seconds']:g} s: `GET /bench/echo?x=1` over sails.io.js (virtual requests), or a raw "
        "`echo` event `{x: 1}` with an ack. Latency is per operation.",
        f"- `fanout`: {s['fanout_sockets']:,} sockets in {s['workers']} processes join one room; a separate "
        f"socket sends {s['fanout_broadcasts']} `fanout` events with a {s['payload_bytes']}-byte payload, each "
        "after the previous one's ack, and the server broadcasts each to the room. Every delivery is counted and "
        "timed from the send time in the payload (`performance.timeOrigin + performance.now()`, comparable "
        "across processes). Throughput is deliveries over the time from the first send to the last delivery.",
        f"- `pubsub`: {s['pubsub_watchers']} sails.io.js sockets (in {s['workers']} processes) `GET /user`, "
        f"which subscribes them to the model's creations; {s['pubsub_posters']} other sockets then "
        f"`POST /user` {s['pubsub_posts']} records between them, one at a time each. Every `user` "
        "`created` message is counted and timed from the time in the record's name.",
        f"- `idle`: on one fresh server per run, {s['idle_counts'][0]:,} sockets connect, then more up to "
        f"{s['idle_counts'][-1]:,} ({s['workers']} processes, 50 handshakes in flight each, after "
        f"{s['idle_warmup']} warm-up connections made and closed), each stage measured and held idle. Memory per "
        "connection is the server's resident memory (VmRSS) 2 s after the stage's last connection, minus before "
        "the first connection of all, divided by the sockets connected; it is also shown at the "
        f"end of the hold. The heartbeat is set to {s['ping_interval']} ms (ping timeout "
        f"{s['ping_timeout']} ms) on every server; the sockets are then held {s['hold_seconds']:g} s, more "
        "than one ping interval, and at the end the clients count those still connected and those that saw "
        "a heartbeat during the hold (a ping from an Engine.IO 4 server; the pong to an Engine.IO 3 "
        "client's own ping). Server CPU per connection and connections/s cover the stage's new connections "
        "(9,000 for the second stage) and the time the clients took to make them; heartbeat CPU is the "
        "server's CPU during the hold over the heartbeats due in it.",
        "",
        "### Figures",
        "",
        "#### Virtual requests (`rtt`, `GET /bench/echo?x=1` over sails.io.js)",
        "",
        table(results, "rtt-virtual"),
        "#### Raw echo (`rtt`, `echo` event with an ack)",
        "",
        table(results, "rtt-echo"),
        "#### Fan-out (`fanout`, one room, a broadcast after each ack)",
        "",
        table(results, "fanout"),
        "#### Pub-sub (`pubsub`, blueprint `created` messages)",
        "",
        table(results, "pubsub"),
        "#### Idle connections (`idle`)",
        "",
        table(results, "idle"),
        "### Was the server saturated?",
        "",
        "CPU over each measured window, as shares of one core (the machine has 2): the server's, the "
        "load generator's (all its processes), and the rest of the machine's. `saturated`: the server used "
        "90% of a core or more; `starved`: it used less, but the machine as a whole was full (server + load "
        "generator + other work ≥ 170%), so it got what was left; `not saturated`: neither. For `idle` the "
        "window is the connecting phase.",
        "",
        saturation(results),
    ]
    profiles = [r for r in results if r.get("profile_files")]
    if profiles:
        md += ["### Profiles (py-spy, trisails)", "",
               "These runs had py-spy attached, so their CPU figures are a little high. Top functions by self "
               "time, as shares of the busy samples:", ""]
        for r in profiles:
            raw = next(p for p in r["profile_files"] if p.endswith(".txt") and not p.endswith("summary.txt"))
            tops = _profile.top_self(REPO / raw, 8)
            md.append(f"- `{r['case']}` run {r['run']} (`{raw}`): " + "; ".join(f"{name} {share:.0%}"
                                                                             for name, share in tops))
        md.append("")
    return "\n".join(md) + "\n"


def write_results(comparison_md: str) -> None:
    """Replace everything before the arena section of RESULTS.md with the comparison."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    kept = old[old.index(KEEP_FROM):] if KEEP_FROM in old else ""
    RESULTS.write_text(comparison_md.rstrip() + "\n\n" + kept)
