#!/usr/bin/env bash
# The whole check, as CI runs it: lint, strict types on src/, the default
# test run, then the slow suites.
set -euo pipefail
cd "$(dirname "$0")"
ruff check src tests bench
mypy --strict src
python3 -m pytest -q "$@"
python3 -m pytest -q -m slow "$@" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; }
