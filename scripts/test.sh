#!/usr/bin/env bash
# Run the whole test suite (unit, end-to-end, Streamlit AppTest, headless-Chromium browser test).
# Extra arguments go to pytest, e.g. scripts/test.sh -k search
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
# The browser test drives Debian's Chromium (never a downloaded browser).
# The video tests cross-check rotation against Debian's ffmpeg (curate itself decodes with PyAV).
if [ ! -x /usr/bin/chromium ] || ! command -v ffmpeg >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  echo "installing Debian's chromium (browser test) and ffmpeg (video cross-check)"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver ffmpeg >/dev/null) \
    || echo "warning: could not install chromium or ffmpeg; the browser test or the ffmpeg cross-check will be skipped"
fi
# tests/data/test_remote_clouds.py reads az:// from Azurite, Microsoft's storage emulator, from the npm registry
if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ] && command -v npm >/dev/null; then
  echo "installing Azurite (Azure storage emulator, npm) into .cache/azurite"
  mkdir -p .cache/azurite
  npm install --prefix .cache/azurite --no-audit --no-fund --silent azurite@3 >/dev/null \
    || echo "warning: could not install Azurite; the az:// test will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
