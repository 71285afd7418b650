#!/usr/bin/env bash
# Installs everything the test suite needs (Python packages, the MCP Inspector from npm) and runs it all.
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

INSPECTOR_VERSION=0.15.0
export ANSF_NODE_PREFIX="$PWD/.cache/node"
if [ ! -x "$ANSF_NODE_PREFIX/node_modules/.bin/mcp-inspector" ]; then
  command -v npm >/dev/null || { echo "npm is required for the MCP Inspector tests" >&2; exit 1; }
  mkdir -p "$ANSF_NODE_PREFIX"
  npm install --prefix "$ANSF_NODE_PREFIX" --no-audit --no-fund --silent \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
fi

.venv/bin/ruff check .
export ANSF_REQUIRE_ALL=1
exec .venv/bin/python -m pytest "$@"
