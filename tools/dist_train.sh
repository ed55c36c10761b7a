#!/usr/bin/env bash
# Distributed training on one or more nodes:
#   tools/dist_train.sh CONFIG NPROC [train.py args...]
# NPROC processes per node (one per GPU; without CUDA, CPU processes over gloo).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# PYTHON selects the interpreter (default: python on PATH).
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG NPROC [train.py args...]" >&2; exit 2; fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NPROC" \
    "$here/train.py" "$CONFIG" --launcher pytorch "${@:3}"
