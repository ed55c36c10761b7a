#!/usr/bin/env bash
# The Fashion-MNIST benchmark's GPU grid (issue #18: 3 seeds, 24 TFLOP per method, the
# full-label recipe; docs/benchmark.md, "On a GPU") as one timed command for one GPU sitting:
#
#   bash tools/gpu_wheels.sh              # first, on a machine with PyPI: fills .whl/
#   bash tools/gpu_fmnist.sh              # on the GPU machine, from the repository root
#
# It runs `tools/analysis/fmnist_benchmark.py --device cuda --jobs JOBS --time-limit LIMIT`
# (phased by default on CUDA: every pre-training stage before any fine-tune), samples
# nvidia-smi every 5 s, and copies the report (results.md, results.json with every stage's
# seconds, the plot), the grid's log and every stage's train.log (stage_logs.tgz) to
# ${OUT:-gpu_out}/. Finished stages are cached in the work dir, so running the script
# again on the same machine continues the grid.
#
# With JOBS > 1 the tool starts CUDA's MPS daemon for the run (--mps, tools/gpu_mps.sh;
# MPS=0 leaves it off): without it the processes time-slice the GPU and four run slower
# than one.
#
# Settings (environment): JOBS (default 4), LIMIT seconds (default 480; the step costs
# below count against it), DATA_ROOT (default data/fashion-mnist where it exists, else the
# configs' own), WORK_DIR (default work_dirs/fmnist_benchmark/gpu), EXTRA (more
# fmnist_benchmark.py arguments, e.g. "--no-recipe" or "--no-phased").
# STEP_COSTS=1 first times one training step on a synthetic batch of 256
# (tools/benchmark.py, each run cut at 90 s, 150 s compiled; logs step_*.log, table
# step_costs.txt), for two steps: the MAE gpu cell's (eager, against itself with the crop in
# the workers: configs/fashion_mnist/benchmark/gpu-mae_worker-crop.py) and the full-label
# recipe's fine-tune (configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4.py: 11750
# of the 15510 steps on the grid's critical path). Each eager, with compiled layers, and
# with the compiled layers replayed as CUDA graphs (compile mode reduce-overhead; the
# GAN-MAE cell too, whose shared encoder runs twice per step), at a batch of 1024 (is the
# step bound by launches? then 4x the images cost about the same), and the recipe with
# fused AdamW; then the grid. STEP_COSTS=all also repeats the earlier comparisons (merged
# optimizer groups against one per parameter, bf16 against fp16, the EMAE and GAN-MAE
# cells eager). STEP_COSTS=only stops after the step costs (no grid), e.g. to time the
# sharing next in the same sitting: `STEP_COSTS=only bash tools/gpu_fmnist.sh;
# SETTINGS=mps N=8 WORKERS=1 ITERS=200 LIMIT=60 bash tools/gpu_concurrency.sh`.
# COMPILE=MODE runs the grid with --compile-blocks MODE (default, reduce-overhead). With
# STEP_COSTS=1, COMPILE=auto (its default there) picks the mode from the step costs: the
# one whose MAE-cell and recipe steps both ran and would train a pre-training cell (1584
# steps) plus the recipe (11750 steps) in the least time, warm-up (compilation) included,
# if that is at least 10% less than eager; else eager. The choice is printed and written
# to step_costs.txt, with the estimate for the full-label recipe at 1024 images a step.
# RECIPE_BATCH=1024 runs the recipe so (--recipe-batch 1024: the same 50 epochs in 2950
# steps instead of 11750; on the CPU, shortened to 10 epochs, no difference from 256, its
# 50 epochs not run: docs/benchmark.md, "The recipe at batch 1024"). RECIPE_BATCH=auto,
# with STEP_COSTS=1, takes it where eager at that batch is the fastest choice by the same
# 10% (only eager is timed at 1024, so it then comes with eager layers). Default 256.
# GPU_SESSION_DRY=1 runs the same commands on the CPU (a --quick grid, a batch of 8 and one
# step per timing), to check the script without a GPU (minutes; the figures mean nothing).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUTDIR="${OUT:-gpu_out}"
DRY="${GPU_SESSION_DRY:-0}"
JOBS="${JOBS:-4}"
LIMIT="${LIMIT:-480}"
DATA_ROOT="${DATA_ROOT:-}"
[ -z "$DATA_ROOT" ] && [ -d data/fashion-mnist ] && DATA_ROOT=data/fashion-mnist
WORK_DIR="${WORK_DIR:-work_dirs/fmnist_benchmark/gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUTDIR" && OUTDIR="$(cd "$OUTDIR" && pwd)"
if [ "$DRY" = 1 ]; then
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  DEVICE_ARGS=(--device cpu --grid gpu --quick --phased)
  WORK_DIR="${WORK_DIR}_dry"
else
  source tools/gpu_env.sh
  DEVICE_ARGS=(--device cuda)
  [ "${MPS:-1}" = 1 ] || DEVICE_ARGS+=(--no-mps)
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
    > "$OUTDIR/nvidia_smi.csv" 2>&1 &
  SMI=$!
fi
# the checks that need CUDA (skipped elsewhere): the probes fitted on the GPU agree with
# the CPU's
if "$PY" -c 'import pytest' 2>/dev/null; then
  "$PY" -m pytest -q -p no:cacheprovider tests/test_knn.py -k cuda > "$OUTDIR/cuda_tests.log" 2>&1
  echo "CUDA-only tests: $(tail -1 "$OUTDIR/cuda_tests.log")"
fi
if [ "${STEP_COSTS:-0}" != 0 ]; then
  C=configs/fashion_mnist/benchmark
  # --profile: after the timed steps, the operators and CUDA launches of 3 more
  if [ "$DRY" = 1 ]; then STEP=(--device cpu --batch-size 8 --steps 1 --warmup 1); AMP=auto; BIG=16
  else STEP=(--batch-size 256 --steps 30 --warmup 3); AMP=fp16; BIG=1024; fi
  if [ "$DRY" = 1 ]; then STEP+=(--profile 1 --profile-rows 3); else STEP+=(--profile 3 --profile-rows 12); fi
  step() {  # NAME LIMIT ARGS...: one tools/benchmark.py run, its log in OUTDIR
    local name="$1" limit="$2"; shift 2
    timeout -k 10 "$limit" "$PY" tools/benchmark.py "${STEP[@]}" "$@" \
      > "$OUTDIR/step_$name.log" 2>&1
    echo "$name (rc $?): $*"
    grep -E '^ *(mmmim|[^ ]+\.py): .*ms/step|^ratio|^(operator calls|CUDA launches) per step' \
      "$OUTDIR/step_$name.log" | sed 's/^/    /'
  }
  RECIPE=$C/finetune-recipe_vit-mini-p4.py
  CUDAGRAPHS=(model.backbone.compile_blocks.mode=reduce-overhead)
  NECK_GRAPHS=(model.neck.compile_blocks.mode=reduce-overhead)
  {
    # what the grid's compile mode is chosen from, and whether a bigger batch is the lever
    step crop 90 $C/gpu/mae.py --amp $AMP --compare $C/gpu-mae_worker-crop.py
    step recipe 90 $RECIPE --amp $AMP
    step compiled 150 $C/gpu/mae.py --amp $AMP --compile-blocks
    step recipe-compiled 150 $RECIPE --amp $AMP --compile-blocks
    step cudagraphs 150 $C/gpu/mae.py --amp $AMP --cfg-options "${CUDAGRAPHS[@]}" "${NECK_GRAPHS[@]}"
    step recipe-cudagraphs 150 $RECIPE --amp $AMP --cfg-options "${CUDAGRAPHS[@]}"
    # GAN-MAE runs the shared encoder twice per step (generator, discriminator): the case
    # most likely to trip CUDA graphs
    step gan-mae-cudagraphs 150 $C/gpu/gan-mae.py --amp $AMP --cfg-options "${CUDAGRAPHS[@]}" \
      "${NECK_GRAPHS[@]}"
    step batch$BIG 90 $C/gpu/mae.py --amp $AMP --batch-size $BIG
    step recipe-batch$BIG 90 $RECIPE --amp $AMP --batch-size $BIG
    step recipe-fused 90 $RECIPE --amp $AMP --adamw fused
    if [ "${STEP_COSTS}" = all ]; then  # the earlier comparisons, again on this machine
      step groups 90 $C/gpu-mae_worker-crop.py --amp $AMP --compare $C/cpu/mae.py
      step bf16 90 $C/gpu/mae.py --amp bf16
      step emae 90 $C/gpu/emae.py --amp $AMP
      step gan-mae 90 $C/gpu/gan-mae.py --amp $AMP
    fi
    ALLOW=()
    [ "${RECIPE_BATCH:-256}" = auto ] && ALLOW=(--allow-recipe-batch-1024)
    "$PY" tools/analysis/step_choice.py "$OUTDIR" --big-batch $BIG "${ALLOW[@]}" \
      --steps mae=1584 recipe=11750 recipe1024=2950
  } | tee "$OUTDIR/step_costs.txt"
  [ "${COMPILE:-auto}" = auto ] &&
    COMPILE=$(sed -n 's/^compile choice: //p' "$OUTDIR/step_costs.txt" | tail -1)
  [ "${RECIPE_BATCH:-256}" = auto ] &&
    RECIPE_BATCH=$(sed -n 's/^recipe batch choice: //p' "$OUTDIR/step_costs.txt" | tail -1)
  LIMIT=$((LIMIT - SECONDS))
  if [ "${STEP_COSTS}" = only ]; then
    [ -n "${SMI:-}" ] && kill "$SMI" 2>/dev/null
    echo "step costs took ${SECONDS}s; STEP_COSTS=only: no grid"
    exit 0
  fi
  echo "step costs took ${SECONDS}s; the grid gets the ${LIMIT}s left of LIMIT"
fi
[ "${COMPILE:-}" = auto ] && COMPILE=  # auto needs STEP_COSTS=1
[ "${COMPILE:-eager}" = eager ] || DEVICE_ARGS+=(--compile-blocks "$COMPILE")
RECIPE_BATCH="${RECIPE_BATCH:-256}"
[ "$RECIPE_BATCH" = auto ] && RECIPE_BATCH=256  # auto needs STEP_COSTS=1
DEVICE_ARGS+=(--recipe-batch "$RECIPE_BATCH")
DATA_ARGS=()
if [ -n "$DATA_ROOT" ]; then
  [ -d "$DATA_ROOT" ] || {
    echo "DATA_ROOT=$DATA_ROOT is not a folder: point it at Fashion-MNIST"; exit 2; }
  DATA_ARGS=(--data-root "$DATA_ROOT")
fi
# shellcheck disable=SC2086  # EXTRA is a list of arguments
"$PY" tools/analysis/fmnist_benchmark.py "${DEVICE_ARGS[@]}" --jobs "$JOBS" \
  --time-limit "$LIMIT" "${DATA_ARGS[@]}" --work-dir "$WORK_DIR" ${EXTRA:-} \
  > "$OUTDIR/grid.log" 2>&1
rc=$?
[ -n "${SMI:-}" ] && kill "$SMI" 2>/dev/null
for f in results.md results.json accuracy_vs_time.png; do
  [ -f "$WORK_DIR/$f" ] && cp "$WORK_DIR/$f" "$OUTDIR/"
done
# every stage's training log (iteration times, data time), finished or stopped
(cd "$WORK_DIR" && find . -name train.log -print0 | tar czf "$OUTDIR/stage_logs.tgz" \
  --null -T -) 2>/dev/null
echo "fmnist_benchmark.py exited with $rc after ${SECONDS}s; report and logs in $OUTDIR/"
grep -E '^== (progress|[0-9]+ stages)' "$OUTDIR/grid.log" | tail -2
[ -f "$OUTDIR/results.md" ] && cat "$OUTDIR/results.md"
exit "$rc"
