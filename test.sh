#!/usr/bin/env bash
# The whole check, as CI runs it: lint, strict types on src/, the default
# test run, the slow suites, then the pure core's own tests held to 100 %
# branch coverage of protocol/ and venues/. The compiled core's Rust checks run
# first when cargo is present. It uses the tools of the project virtualenv that
# install.sh made (.venv), or the active environment's if there is none.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x .venv/bin/python ]; then PATH="$PWD/.venv/bin:$PATH"; fi
if command -v cargo >/dev/null 2>&1; then
    (cd native && cargo fmt --check && cargo clippy -q --all-targets -- -D warnings && cargo test -q &&
        RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps --workspace)
else
    echo "test.sh: no cargo: skipping the Rust checks of native/ (fmt, clippy, test, doc)"
fi
ruff check src tests bench
mypy --strict src
python3 -m pytest -q "$@"
python3 -m pytest -q -m slow "$@" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; }
python3 -m pytest -q -p no:cacheprovider tests/protocol tests/venues --cov=tickrelay.protocol \
    --cov=tickrelay.venues --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100
