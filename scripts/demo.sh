#!/usr/bin/env bash
# Build a workspace from the bundled 2,000-image CIFAR-10 sample (short SSL training, embedding,
# FAISS index, UMAP map, duplicate scan), then serve the app on it: http://localhost:8501
# Options: MINUTES (training budget, default 3), WS (workspace folder), PORT (default 8501).
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
WS=${WS:-workspaces/demo}
if [ ! -f "$WS/projection_umap.npy" ]; then
  .venv/bin/curate run data/cifar10-sample -w "$WS" --minutes "${MINUTES:-3}"
  .venv/bin/curate eval -w "$WS"
fi
exec .venv/bin/curate app -w "$WS" --port "${PORT:-8501}"
