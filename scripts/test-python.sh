#!/usr/bin/env bash
# Runs the official-SDK client suite (tests/python) against the real binary.
# Usage: scripts/test-python.sh [pytest args...]   e.g. -k stream, -x, -v
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bins --quiet
python="$(bash scripts/python-venv.sh --print-python)"
export EZROUTER_BIN="${EZROUTER_BIN:-$(pwd)/target/debug/ezrouter}"
exec "$python" -m pytest tests/python -q -p no:cacheprovider "$@"
