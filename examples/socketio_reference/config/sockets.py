"""The settings of the Socket.IO protocol test-suite's reference server."""

ping_interval = 300
ping_timeout = 200
max_payload = 1_000_000
connect_timeout = 1000
transports = ["polling", "websocket"]
