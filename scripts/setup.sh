#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test ezrouter. Idempotent.
# - cmake: Pingora's zlib-ng (libz-ng-sys) builds with it.
# - python3-venv: the SDK client tests run in a venv (scripts/python-venv.sh).
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
[ "${EZROUTER_BENCH:-0}" = 1 ] && { command -v nginx >/dev/null 2>&1 || missing+=(nginx); command -v wrk >/dev/null 2>&1 || missing+=(wrk); }

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
