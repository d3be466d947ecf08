#!/usr/bin/env bash
# Install the test dependencies and run every test; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_debian_packages "${TEST_PACKAGES[@]}"
ensure_venv "test"
exec .venv/bin/python -m pytest "$@"
