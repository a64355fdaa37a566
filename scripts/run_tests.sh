#!/usr/bin/env bash
# The README's test command: set up (idempotent), lint, then the whole suite (slow end-to-end tests included)
# against the checkout, then the end-to-end tests again against the installed package (from outside the checkout,
# so a module or data file missing from the distribution fails here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MPLBACKEND=Agg
ROOT=$PWD
.venv/bin/ruff check --quiet . && .venv/bin/ruff format --check --quiet .
.venv/bin/python -m pytest -x -q -p no:cacheprovider "$@"
if [ $# -eq 0 ]; then
  INSTALLED_TESTS=(tests/test_e2e_stock_runner.py tests/test_registration.py tests/test_downstream_configs.py
                   tests/test_run_downstream_cli.py)
  cd "$(mktemp -d)"
  S3PRL_EMOAWARE_TEST_INSTALLED=1 "$ROOT/.venv/bin/python" -m pytest -x -q -p no:cacheprovider \
    -c "$ROOT/setup.cfg" --rootdir "$ROOT" "${INSTALLED_TESTS[@]/#/$ROOT/}"
fi
