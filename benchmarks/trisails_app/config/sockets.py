"""As the Sails app's config/sockets.js; the request limiter is set so high it never interferes."""

import os as _os

transports = ["websocket"]
only_allow_origins = ["http://127.0.0.1", "http://localhost"]  # Node clients send no Origin at all
ping_interval = int(_os.environ.get("BENCH_PING_INTERVAL", "25000"))
ping_timeout = int(_os.environ.get("BENCH_PING_TIMEOUT", "60000"))
request_rate = 1e6
request_burst = 1_000_000
max_connections = 30_000
max_connections_per_ip = 0  # every benchmark client comes from 127.0.0.1
