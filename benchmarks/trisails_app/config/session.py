import os as _os

secret = "trisails-benchmarks-not-a-secret-0123456789abcdef"
enabled = _os.environ.get("BENCH_SESSIONS", "on") != "off"  # python -m benchmarks --no-sessions
