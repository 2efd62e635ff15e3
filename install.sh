#!/usr/bin/env bash
# Install everything tickrelay and its tests need, on Debian with Python >= 3.11:
# the Debian packages the tests drive for real (nats-server, chromium) and the
# Python package with its dev extras, into the current Python environment.
set -euo pipefail
cd "$(dirname "$0")"
DEBS=(nats-server chromium)
missing=()
for p in "${DEBS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install.sh: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if command -v cargo >/dev/null 2>&1; then
    echo "install.sh: building the compiled core (native/, $(cargo --version | cut -d' ' -f1-2))"
else
    echo "install.sh: no cargo: installing the pure-Python core. For the compiled one, install Rust" \
        "(https://rustup.rs, or Debian's cargo) and run ./install.sh again"
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
python3 -c 'from tickrelay.native import CORE; print(f"install.sh: core: {CORE}")'
echo "install.sh: done. Try: tickrelay up"
