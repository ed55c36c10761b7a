#!/usr/bin/env bash
# How training processes share one GPU: times one training config alone, N copies at once,
# and N copies at once under CUDA's MPS (tools/gpu_mps.sh), and prints each run's mean
# seconds per iteration (mmengine's logged `time`, the first logged interval left out as
# warm-up) and the wall time of each setting. This is the measurement behind the Fashion-MNIST
# grid's MPS default (docs/benchmark.md, "On a GPU"):
#
#   bash tools/gpu_concurrency.sh                      # on the GPU machine, repository root
#
# Settings (environment): CONFIG (default configs/fashion_mnist/benchmark/gpu/mae.py), N (4),
# ITERS (300), WORKERS (loader workers per process, 3), DATA_ROOT (default data/fashion-mnist
# where it exists), LIMIT (seconds per setting, 90), LOG_EVERY (iterations per logged
# interval, 25), SETTINGS (which of "alone shared mps" to run, in that order; default all
# three), PYTHON (python3), OUT (gpu_out), EXTRA
# (more --cfg-options, e.g. "model.backbone.compile_blocks=True model.neck.compile_blocks=True"
# to time the compiled layers).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUTDIR="${OUT:-gpu_out}"
PY="${PYTHON:-python3}"
CONFIG="${CONFIG:-configs/fashion_mnist/benchmark/gpu/mae.py}"
N="${N:-4}"
ITERS="${ITERS:-300}"
WORKERS="${WORKERS:-3}"
LIMIT="${LIMIT:-90}"
LOG_EVERY="${LOG_EVERY:-25}"
DATA_ROOT="${DATA_ROOT:-}"
[ -z "$DATA_ROOT" ] && [ -d data/fashion-mnist ] && DATA_ROOT=data/fashion-mnist
mkdir -p "$OUTDIR" && OUTDIR="$(cd "$OUTDIR" && pwd)"
source tools/gpu_env.sh
source tools/gpu_mps.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / N > 0 ? $(nproc) / N : 1 ))}"
WORK="$(mktemp -d /tmp/mmmim-concurrency.XXXXXX)"
trap 'mps_stop; rm -rf "$WORK"' EXIT
OPTS=(train_cfg.max_iters="$ITERS" custom_hooks=[] default_hooks.logger.interval="$LOG_EVERY"
      train_dataloader.num_workers="$WORKERS")
[ -n "$DATA_ROOT" ] && OPTS+=(train_dataloader.dataset.data_root="$DATA_ROOT")
# shellcheck disable=SC2206  # EXTRA is a list of key=value options
OPTS+=(${EXTRA:-})

one() {  # NAME: one training run, then its mean logged seconds per iteration
  local log="$OUTDIR/concurrency_$1.log"
  timeout "$LIMIT" "$PY" tools/train.py "$CONFIG" --amp --work-dir "$WORK/$1" \
    --cfg-options "${OPTS[@]}" > "$log" 2>&1
  local rc=$? last per_it
  last="$(grep -o 'Iter(train) \[ *[0-9]*/' "$log" | tail -1 | tr -dc '0-9')"
  per_it="$(grep -o ' time: [0-9.]*' "$log" | awk 'NR > 1 {s += $2; n++}
    END {if (n) printf "%.1f ms per iteration", 1000 * s / n; else print "no timing"}')"
  echo "$1: exit $rc, logged to iteration ${last:-0} of $ITERS, $per_it"
}
setting() {  # LABEL COPIES
  local start=$SECONDS i
  for i in $(seq 1 "$2"); do one "$1$i" & done
  wait
  echo "== $1: $2 at once, wall $((SECONDS - start)) s"
}
echo "$CONFIG, $ITERS iterations, $WORKERS loader workers, OMP_NUM_THREADS=$OMP_NUM_THREADS"
for what in ${SETTINGS:-alone shared mps}; do
  case "$what" in
    alone) setting alone 1 ;;
    shared) setting shared "$N" ;;
    mps) mps_start && setting mps "$N" ;;
    *) echo "SETTINGS: unknown setting '$what'; use alone, shared and/or mps"; exit 2 ;;
  esac
done
