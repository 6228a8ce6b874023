#!/usr/bin/env bash
# Install everything the test suite needs and run it: the one test command (README, .ci/run).
#   bash scripts/test.sh [pytest args...]
# It installs the Python package with its test extras into .venv, the real JS clients from
# tests/js/package-lock.json with `npm ci`, checks/starts PostgreSQL and Redis, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "test: installing Node.js and npm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "test: installing Chromium (Debian's package) for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/services.sh

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/python -m pip check >/dev/null
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

exec .venv/bin/python -m pytest "$@"
