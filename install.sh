#!/usr/bin/env bash
# Install everything tickrelay and its tests need, on Debian with Python >= 3.11:
# the Debian packages the tests drive for real (nats-server, chromium, promtool)
# and tickrelay with its dev extras, into the project virtualenv .venv (Debian's
# own Python is externally managed: pip refuses to install into it).
# PYTHON=/path/to/python3 picks the interpreter the virtualenv is made from.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || {
    echo "install.sh: tickrelay needs Python >= 3.11; $PY is $("$PY" --version 2>&1 || echo missing)" >&2
    exit 1
}
DEBS=(nats-server chromium prometheus)
# Debian splits ensurepip (which `python3 -m venv` needs) into python3-venv
"$PY" -c 'import ensurepip' 2>/dev/null || DEBS+=(python3-venv)
missing=()
for p in "${DEBS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install.sh: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! .venv/bin/python -c '' 2>/dev/null; then  # none yet, or made by a Python that is gone
    echo "install.sh: creating the virtualenv .venv with $("$PY" --version)"
    "$PY" -m venv --clear .venv
fi
if command -v cargo >/dev/null 2>&1; then
    echo "install.sh: building the compiled core (native/, $(cargo --version | cut -d' ' -f1-2))"
else
    echo "install.sh: no cargo: installing the pure-Python core. For the compiled one, install Rust" \
        "(https://rustup.rs, or Debian's cargo) and run ./install.sh again"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/python -c 'from tickrelay.native import CORE; print(f"install.sh: core: {CORE}")'
echo "install.sh: done. tickrelay is .venv/bin/tickrelay; put it on the PATH with"
echo "    source .venv/bin/activate"
echo "then try: tickrelay up"
