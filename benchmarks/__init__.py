"""trisails' benchmarks: ``python -m benchmarks`` (or ``bash benchmarks/run.sh``); see README.md here."""
