#!/usr/bin/env bash
# Runs the gateway (release build) on its built-in defaults, or on a config: scripts/run.sh [-c FILE]
# Installs missing system packages first (cmake for Pingora's zlib-ng).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked --bin ezrouter
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/release/ezrouter" serve "$@"
