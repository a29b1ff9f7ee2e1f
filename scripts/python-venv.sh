#!/usr/bin/env bash
# Creates (or refreshes) the Python venv for the official-SDK client tests at <repo>/.venv and
# installs tests/python/requirements.txt into it. Idempotent and quiet: a venv whose stamp
# matches the requirements file and the interpreter is left untouched.
# Prints nothing on success; prints the venv's python path with --print-python.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."

repo="$(pwd)"
venv="${EZROUTER_VENV:-$repo/.venv}"
reqs="$repo/tests/python/requirements.txt"
stamp="$venv/.ezrouter-requirements.stamp"
python="${PYTHON:-python3}"

command -v "$python" >/dev/null 2>&1 || { echo "python-venv: $python not found" >&2; exit 1; }

# What the venv must match: the interpreter's version and path, and the requirements text.
want="$("$python" -c 'import sys; print(sys.version.split()[0], sys.executable)') $(sha256sum "$reqs" | cut -d' ' -f1)"

fresh() {
  [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("openai", "anthropic", "pytest", "pytest_timeout")))' >/dev/null 2>&1
}

install_venv_package() {
  # Debian splits venv/ensurepip out of python3; install it only when creation failed.
  local ver sudo=""
  ver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  command -v apt-get >/dev/null 2>&1 || { echo "python-venv: '$python -m venv' fails and apt-get is unavailable" >&2; exit 1; }
  echo "python-venv: installing python3-venv" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "python$ver-venv" >/dev/null
}

if ! fresh; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    install_venv_package
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs"
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--print-python" ]; then
  echo "$venv/bin/python"
fi
