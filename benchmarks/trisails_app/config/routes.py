routes = {"GET /bench/echo": "bench.echo"}
