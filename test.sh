#!/usr/bin/env bash
# Install the test dependencies and run every test; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_debian_packages "${TEST_PACKAGES[@]}"
ensure_venv "test"
# One worker per core (KJDMS_TEST_WORKERS=0 runs in this process); each worker has its own SQLite
# copies, PostgreSQL schema and temporary folders (tests/conftest.py). The 20 slowest tests are printed
# last, so that growth shows in every CI log.
exec .venv/bin/python -m pytest -n "${KJDMS_TEST_WORKERS:-auto}" --durations=20 "$@"
