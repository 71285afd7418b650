#!/usr/bin/env bash
# Installs everything the test suite needs (Python packages, the MCP Inspector from npm, Debian's chromium, gopls
# and postgresql) and runs it all.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned in pyproject.toml to a CPU build that installs from a local wheel on these machines.
.venv/bin/python -m pip install -q -e ".[test]"

# Headless Chromium for the dashboard's browser tests (Playwright drives it; its own download is not used).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
  else
    echo "Install Debian's chromium (sudo apt-get install chromium) for the dashboard tests" >&2
    exit 1
  fi
fi

# Go: Debian's gopls and the go command it drives (the Go semantic tests run against them).
if ! command -v gopls >/dev/null || ! command -v go >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gopls golang-go) >&2
  else
    echo "Install Debian's gopls and golang-go (sudo apt-get install gopls golang-go) for the Go tests" >&2
    exit 1
  fi
fi

# PostgreSQL: the store's second engine. The tests start a throw-away cluster of their own (initdb into a
# temporary folder, a loopback port, run as the postgres user); Debian's package provides the binaries.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  else
    echo "Install Debian's postgresql (sudo apt-get install postgresql) for the store's PostgreSQL tests" >&2
    exit 1
  fi
fi

INSPECTOR_VERSION=0.15.0
export ANSF_NODE_PREFIX="$PWD/.cache/node"
if [ ! -x "$ANSF_NODE_PREFIX/node_modules/.bin/mcp-inspector" ]; then
  if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >&2
  fi
  command -v npm >/dev/null || { echo "Node.js and npm are required (MCP Inspector, TypeScript language server)" >&2; exit 1; }
  mkdir -p "$ANSF_NODE_PREFIX"
  npm install --prefix "$ANSF_NODE_PREFIX" --no-audit --no-fund --silent \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
fi

.venv/bin/ruff check .
export ANSF_REQUIRE_ALL=1
# Line coverage of ansf_mcp (tools/ and semantic/ included), subprocess servers too (pyproject: [tool.coverage]).
# An absolute data file: servers started in other folders write beside it. CI adds the gate (.ci/run).
rm -rf .cache/coverage && mkdir -p .cache/coverage
export COVERAGE_FILE="$PWD/.cache/coverage/data"
# One worker per logical core (at most 4), whole files per worker (module fixtures such as a language server or a browser
# start once): most of the suite waits on servers, language servers and PostgreSQL, so two cores halve its time.
# `-n 0` runs it in one process.
exec .venv/bin/python -m pytest -n logical --maxprocesses 4 --dist loadfile --cov --cov-report=term "$@"
