"""``python -m benchmarks``: trisails against Sails and python-socketio (see benchmarks/README.md).

    .venv/bin/python -m benchmarks                      # everything, twice; writes benchmarks/RESULTS.md
    .venv/bin/python -m benchmarks --only trisails      # trisails alone (all its scenarios)
    .venv/bin/python -m benchmarks --only trisails,fanout,rtt-virtual --quick
    .venv/bin/python -m benchmarks --only trisails,fanout:v2 --profile   # py-spy flame graphs
"""

from __future__ import annotations

import argparse
import atexit
import json
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from . import _peers, _report
from ._procs import PEERS, kill_all, wait_for_quiet
from ._scenarios import Case, Sizes, plan, run_case


def _matches(case: Case, token: str) -> bool:
    names = {case.scenario, case.scenario.split("-")[0]}
    return token in names or token in {f"{n}:{case.client}" for n in names}


def select(cases: list[Case], only: str | None) -> list[Case]:
    if not only:
        return cases
    tokens = [t.strip() for t in only.split(",") if t.strip()]
    servers = set(_peers.SERVERS)
    chosen_servers = [t for t in tokens if t in servers or t == "all"]
    scenarios = [t for t in tokens if t not in servers and t != "all"]
    if not chosen_servers:
        chosen_servers = ["all"]
    picked = [c for c in cases if ("all" in chosen_servers or c.server in chosen_servers)
              and (not scenarios or any(_matches(c, t) for t in scenarios))]
    if not picked:
        raise SystemExit(f"--only {only!r} selects nothing; servers are {', '.join(_peers.SERVERS)}; scenarios are "
                         "rtt (rtt-virtual, rtt-echo), fanout, pubsub, idle; add :v2, :v4 or :sails to pick a "
                         "client (fanout:v2)")
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", metavar="SERVER[,SCENARIO...]",
                        help="run only these: a server (trisails, sails, pysio, all) and/or scenarios "
                             "(rtt, rtt-virtual, rtt-echo, fanout, pubsub, idle; SCENARIO:CLIENT "
                             "with CLIENT sails, v2 or v4)")
    parser.add_argument("--quick", action="store_true", help="smaller counts and one run, for iterating")
    parser.add_argument("--runs", type=int, help="runs of each case (default 2, or 1 with --quick)")
    parser.add_argument("--profile", action="store_true",
                        help="record the trisails server with py-spy over each measured window "
                             "(flame graphs and summaries in benchmarks/.peers/profiles/)")
    parser.add_argument("--quiet-wait", type=float, default=10.0, metavar="SECONDS",
                        help="before each run, wait up to this long for the machine to be idle (other work "
                             "on a shared machine skews the figures; default 10)")
    parser.add_argument("--sails-v4", action="store_true",
                        help="also drive Sails with socket.io-client 4 for raw echo and fan-out (it accepts "
                             "Engine.IO 4 too); off by default to keep a full run under 15 minutes")
    parser.add_argument("--report", metavar="RESULTS_JSON",
                        help="only rewrite the Markdown from a saved run (benchmarks/.peers/results/<time>.json): "
                             "RESULTS.md for a full run (or with --write), else latest.md")
    parser.add_argument("--no-sessions", action="store_true",
                        help="run trisails and Sails with sessions off (an experiment: the default keeps both "
                             "apps' default, sessions on)")
    parser.add_argument("--setup", action="store_true", help="install the peers into benchmarks/.peers and stop")
    parser.add_argument("--write", action="store_true",
                        help="write benchmarks/RESULTS.md even for a partial run (a full run always does)")
    parser.add_argument("--no-write", action="store_true", help="never write benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    if args.report:
        saved = json.loads(open(args.report).read())
        markdown = _report.comparison(saved["facts"], saved["results"])
        (PEERS / "results").mkdir(parents=True, exist_ok=True)
        (PEERS / "results" / "latest.md").write_text(markdown)
        old = saved["facts"]
        full = not old["only"] and not old["quick"] and not old["profile"] and old["runs"] >= 2
        if (full or args.write) and not args.no_write:
            _report.write_results(markdown)
            print("bench: wrote benchmarks/RESULTS.md")
        print(_report.targets_text(saved["results"]))
        return 0

    atexit.register(kill_all)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    _peers.install()
    if args.setup:
        print("bench: peers installed in", PEERS)
        return 0

    sizes = Sizes.quick() if args.quick else Sizes()
    sizes.sails_v4 = args.sails_v4
    sizes.sessions = not args.no_sessions
    runs = args.runs or (1 if args.quick else 2)
    cases = select(plan(sizes), args.only)
    full = not args.only and not args.quick and not args.profile and runs >= 2 and not args.no_sessions
    started = datetime.now(timezone.utc)
    facts = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": _peers.machine(),
             "versions": _peers.versions(), "sizes": sizes.__dict__, "runs": runs, "quick": args.quick,
             "profile": args.profile, "only": args.only}
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()
    print(f"bench: {len(cases)} cases x {runs} runs", flush=True)
    try:
        for case in cases:
            def before_run() -> float | None:
                return wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else None

            print(f"[{time.monotonic() - t0:6.0f}s] {case.key}", flush=True)
            for result in run_case(case, runs, sizes, args.profile, before_run):
                print(f"  run {result['run']}: {_report.one_line(result)}", flush=True)
                results.append(result)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping every process", flush=True)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        kill_all()
    facts["duration_s"] = round(time.monotonic() - t0)
    out_dir = PEERS / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"{stamp}.json").write_text(json.dumps({"facts": facts, "results": results}, indent=1))
    markdown = _report.comparison(facts, results)
    (out_dir / "latest.md").write_text(markdown)
    if (full or args.write) and not args.no_write:
        _report.write_results(markdown)
        print("bench: wrote benchmarks/RESULTS.md", flush=True)
    print(f"bench: results in {out_dir / (stamp + '.json')} and {out_dir / 'latest.md'}; "
          f"{facts['duration_s']} s in all", flush=True)
    print(_report.targets_text(results), flush=True)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
