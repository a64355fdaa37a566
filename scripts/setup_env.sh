#!/usr/bin/env bash
# One-time (and idempotent) set-up of a fresh Debian machine for s3prl-emoaware:
#   1. Debian packages espeak-ng (corpus synthesis) and ffmpeg (torchaudio.load via torchcodec);
#   2. .venv at the repo root with the pinned stack (requirements/constraints.txt), reused when present;
#   3. this package installed into .venv (non-editable: that installs the s3prl autoload hook).
# The README's two commands both start with it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Two set-ups at once (e.g. the demo and the tests started together) would both pip-install into .venv:
# the second waits for the first, then finds the stack in place.
mkdir -p .venv
exec 9>.venv/.setup.lock
flock 9

log() { echo "[setup] $*" >&2; }

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

# Reuse the venv: reinstall the stack only when the pinned requirements changed.
STAMP=.venv/.s3prl_emoaware_stack
WANT=$(cat requirements/constraints.txt requirements/base.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  log "installing the pinned stack into .venv (first time: several GB for torch)"
  .venv/bin/pip install -q --upgrade pip setuptools wheel -c requirements/constraints.txt
  .venv/bin/pip install -q -c requirements/constraints.txt -r requirements/base.txt
  echo "$WANT" > "$STAMP"
fi

# The package itself (cheap; always, so the installed copy matches the checkout).
.venv/bin/pip install -q --no-deps --no-build-isolation "$ROOT" 2>&1 | grep -v -i "warning\|^ *$" >&2 || true
rm -rf "$ROOT/build" "$ROOT"/*.egg-info
log "ready: $(.venv/bin/python -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)')"
