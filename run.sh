#!/usr/bin/env bash
# Install what kjdms needs and run it on the embedded default: SQLite, blobs under storage/, demo data.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_debian_packages "${RUNTIME_PACKAGES[@]}"
ensure_venv ""
.venv/bin/kjdms init
.venv/bin/kjdms demo
exec .venv/bin/kjdms serve --host "${KJDMS_HOST:-127.0.0.1}" --port "${KJDMS_PORT:-8000}"
