#!/usr/bin/env bash
# Everything a fresh Debian machine with Python 3.11 needs to run salescalls; quick when done.
#   1. ffmpeg (decodes every recording), installed with apt-get when running as root
#   2. .venv with the pinned dependencies (requirements.lock; re-installed when it changes)
#   3. the speech models: kept if present, linked from a shared offline copy, else downloaded
#   4. with --with-browser (make test): Debian's Chromium for the HTML report's browser test
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ffmpeg with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "setup: ffmpeg is missing; install it (Debian/Ubuntu: sudo apt-get install -y ffmpeg) and run again" >&2
    exit 1
  fi
fi

if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing chromium with apt-get (the report's browser test drives it headless)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing, so the report's browser test will be skipped (sudo apt-get install -y chromium)" >&2
  fi
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 is needed; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
stamp="$VENV/.salescalls-installed"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned Python packages into $VENV (the first time takes minutes and ~8 GB)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.lock
  # CAM++ network code from 3D-Speaker; its declared dependencies are for training and conflict.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps speakerlab==0.0.6
  PYTHONWARNINGS=ignore "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

"$VENV/bin/salescalls" models setup --engine all
