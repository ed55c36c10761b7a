#!/usr/bin/env bash
# The main job: pre-train MAE on Fashion-MNIST on the CPU, then print a linear-probe
# accuracy. Builds (or reuses) the environment first.
#   bash tools/run_main.sh [CONFIG] [extra tools/train.py args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ENV=$(bash tools/setup_env.sh)
config=${1:-configs/fashion_mnist/mae_vit-mini-p4_4e.py}
shift || true
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$ENV/bin/python" tools/train.py "$config" "$@"
