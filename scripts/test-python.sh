#!/usr/bin/env bash
# Runs the official-SDK client suite (tests/python) against the real binary.
# Usage: scripts/test-python.sh [pytest args...]   e.g. -k stream, -x, -v
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bins --quiet
python="$(bash scripts/python-venv.sh --print-python)"
target_dir="$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export EZROUTER_BIN="${EZROUTER_BIN:-$target_dir/debug/ezrouter}"
exec "$python" -m pytest tests/python -q -p no:cacheprovider "$@"
