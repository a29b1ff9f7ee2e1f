#!/usr/bin/env bash
# Runs every test: Rust unit and black-box tests, then the official-SDK client suite.
# Usage: scripts/test.sh        (from anywhere; installs missing system packages first)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo test --workspace --locked
bash scripts/test-python.sh
