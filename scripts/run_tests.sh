#!/usr/bin/env bash
# The README's test command: set up (idempotent), then the whole suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MPLBACKEND=Agg
exec .venv/bin/python -m pytest -x -q -p no:cacheprovider "$@"
