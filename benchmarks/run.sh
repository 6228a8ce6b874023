#!/usr/bin/env bash
# trisails against Sails and python-socketio; see benchmarks/README.md.
#   bash benchmarks/run.sh                                   # everything, twice; rewrites benchmarks/RESULTS.md
#   bash benchmarks/run.sh --only trisails,fanout --quick    # trisails alone, smaller counts
#   bash benchmarks/run.sh --only trisails,rtt-virtual --profile   # py-spy flame graphs
# Installs what it needs first: Node.js (Debian's package) if missing, the project's .venv if missing, and
# the peers (Sails, python-socketio, the load generator's npm packages) into benchmarks/.peers/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "bench: installing Node.js and npm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -c 'import trisails' 2>/dev/null || .venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/python -m benchmarks "$@"
