#!/usr/bin/env bash
# The GPU measurements of issue #21 item 1 (training-step speed) as one script for one GPU
# (written for an H100/H200 with Python 3.12 + torch, no OpenMMLab stack, no network):
#
#   bash tools/gpu_wheels.sh              # first, on a machine with PyPI: fills .whl/
#   bash tools/gpu_session.sh             # on the GPU machine, from the repository root
#
# Full logs go to ${OUT:-gpu_out}/, a summary table is printed last. The runs are in
# priority order and each is cut by `timeout` so the whole stays within BUDGET seconds
# (default 450, for a 10-minute command limit with start-up around it); a run that no
# longer fits is skipped and marked so. Every run is a command of the repository
# (tools/benchmark.py, tools/analysis/*.py) that can be rerun on its own.
#
# GPU_SESSION_DRY=1 runs the same commands on the CPU with a tiny model and one step, to
# check the script and every flag without a GPU (and without installing wheels; limits x12,
# budget BUDGET_DRY=7200 s; peak memory is then the process RSS).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUTDIR="${OUT:-gpu_out}"
DRY="${GPU_SESSION_DRY:-0}"
BUDGET="${BUDGET:-450}"
SCALE=1  # per-run limits are multiplied by this: a dry run on a small CPU is slow
[ "$DRY" = 1 ] && { BUDGET="${BUDGET_DRY:-7200}"; SCALE=12; }
mkdir -p "$OUTDIR"
PY="${PYTHON:-python3}"

if [ "$DRY" != 1 ]; then
  source tools/gpu_env.sh
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
DEVICE="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
[ "$DRY" = 1 ] && DEVICE="CPU (dry run)"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  "$PY" -c 'import torch, mmengine, mmcv, mmpretrain, mmmim.models
print("torch", torch.__version__, "cuda", torch.version.cuda, "mmengine", mmengine.__version__,
      "mmcv", mmcv.__version__, "mmpretrain", mmpretrain.__version__)' 2>&1
} > "$OUTDIR/env.log"
cat "$OUTDIR/env.log"

B=configs/mae/vit-b_800e.py
L=configs/mae/vit-l_800e.py
E=configs/emae/vit-b_800e.py
G=configs/gan_mae/vit-b_800e.py
if [ "$DRY" = 1 ]; then
  # tiny: ViT-S/8 on 32x32, one decoder layer, one timed step, on the CPU
  BS=2; BS_E=2; BS_G=2
  COMMON=(--device cpu --img-size 32 --steps 1 --warmup 0 --amp bf16)
  TINY=(model.backbone.arch=small model.backbone.patch_size=8 model.neck.decoder_depth=1)
  PIN=()
  GAN=(--tiny --steps 1 --warmup 0 --amp bf16 --device cpu --batch-size "$BS_G")
  E2E=(--images 48 --batch-size 8 --iters 2 --workers 1 --device cpu --tiny)
else
  BS=512; BS_E=128; BS_G=128
  COMMON=(--steps 10 --warmup 3 --amp bf16)
  TINY=()
  PIN=(--pin-memory)
  GAN=("$G" --amp bf16 --batch-size "$BS_G" --steps 5 --warmup 2)
  E2E=(--images 3072 --iters 12 --workers 14)
fi

declare -a NAMES=() LOGS=() STATUS=()
# run NAME MAX_SECONDS CMD...: run CMD with a timeout that also respects the total budget
run() {
  local name="$1" max=$(($2 * SCALE)); shift 2
  local log="$OUTDIR/$name.log" left=$((BUDGET - SECONDS))
  NAMES+=("$name"); LOGS+=("$log")
  if [ "$left" -lt 45 ]; then
    STATUS+=("skipped (budget)"); echo "== $name: skipped, ${left}s of the budget left"; return
  fi
  [ "$max" -gt "$left" ] && max=$left
  echo "== $name (at ${SECONDS}s, limit ${max}s): $*"
  local t0=$SECONDS
  timeout -k 10 "$max" "$@" > "$log" 2>&1
  local rc=$?
  STATUS+=("rc=$rc, $((SECONDS - t0))s")
}
opts() {  # --cfg-options with the tiny overrides (dry run) plus the given ones
  local all=("${TINY[@]}" "$@")
  [ "${#all[@]}" -gt 0 ] && printf '%s\n' --cfg-options "${all[@]}"
}
mapfile -t NOOPT < <(opts)
mapfile -t CP_ON < <(opts model.backbone.with_cp=True model.neck.with_cp=True)

# 1. ViT-B/16 MAE, eager, next to mmpretrain; where the time goes (profile of 2 steps)
run b16_eager 120 "$PY" tools/benchmark.py "$B" --batch-size "$BS" "${COMMON[@]}" "${PIN[@]}" \
  --compare mmpretrain --profile 2 "${NOOPT[@]}"
# 2. the same with every transformer layer torch.compile-d (compile_blocks=True)
run b16_compiled 170 "$PY" tools/benchmark.py "$B" --batch-size "$BS" "${COMMON[@]}" "${PIN[@]}" \
  --compare mmpretrain --compile-blocks --profile 2 "${NOOPT[@]}"
# 3. ViT-L/16 MAE, compiled layers, next to mmpretrain
run l16_compiled 170 "$PY" tools/benchmark.py "$L" --batch-size "$BS" "${COMMON[@]}" "${PIN[@]}" \
  --compare mmpretrain --compile-blocks "${NOOPT[@]}"
# 4. EMAE K=4 per-view cost against MAE (same sequences per step), compiled layers
run emae_k4 120 "$PY" tools/benchmark.py "$E" --batch-size "$BS_E" "${COMMON[@]}" "${PIN[@]}" \
  --compare "$B" --compile-blocks "${NOOPT[@]}"
# 5. GAN-MAE: every scheme's step next to MAE's (eager)
run gan_mae 120 "$PY" tools/analysis/gan_mae_benchmark.py "${GAN[@]}"
# 6. activation checkpointing: peak memory and img/s, off and on (eager, no second model)
run b16_cp_off 60 "$PY" tools/benchmark.py "$B" --batch-size "$BS" "${COMMON[@]}" "${PIN[@]}" \
  "${NOOPT[@]}"
run b16_cp_on 60 "$PY" tools/benchmark.py "$B" --batch-size "$BS" "${COMMON[@]}" "${PIN[@]}" \
  "${CP_ON[@]}"
# 7. the input pipeline end to end (#20 item 4): sustained training img/s from JPEG files with
#    each input path against the synthetic step rate, and cores per GPU; a reduced run here
#    (the full one, `python tools/analysis/gpu_input_e2e.py`, takes 4-7 min on its own)
run input_pipeline 180 "$PY" tools/analysis/gpu_input_e2e.py "${E2E[@]}" \
  --json "$OUTDIR/input_pipeline.json"
# 8. if time is left: ViT-L/16 eager, for the eager-vs-compiled comparison at L
run l16_eager 120 "$PY" tools/benchmark.py "$L" --batch-size "$BS" "${COMMON[@]}" "${PIN[@]}" \
  --compare mmpretrain "${NOOPT[@]}"

# ---------------------------------------------------------------- summary (printed last)
field() {  # field LOG REGEX: first capture group of the first matching line
  sed -nE "s/$2/\1/p" "$1" 2>/dev/null | head -1
}
{
  echo
  echo "summary: ${DEVICE:-unknown GPU}, bf16, total ${SECONDS}s; logs in $OUTDIR/"
  printf '%-15s %-16s %9s %9s %6s %11s %7s %8s %s\n' run status 'img/s' 'views/s' 'MFU %' \
    'other v/s' 'ratio' 'peak GiB' 'copy ops %'
  for i in "${!NAMES[@]}"; do
    n="${NAMES[$i]}"; log="${LOGS[$i]}"
    if [ "$n" = gan_mae ]; then
      printf '%-15s %-16s %s\n' "$n" "${STATUS[$i]}" \
        "$(grep -E '^(MAE|adversarial|combined|two-stage)' "$log" 2>/dev/null |
           awk '{name = substr($0, 1, 22); sub(/ +$/, "", name)
                 printf "%s: MFU %s (%s x MAE); ", name, $(NF-1), $NF}')"
      continue
    fi
    if [ "$n" = input_pipeline ]; then  # its own table: img/s per path vs the step rate
      printf '%-15s %s\n' "$n" "${STATUS[$i]}"
      tail -n 6 "$log" 2>/dev/null | sed 's/^/    /'
      continue
    fi
    ips=$(field "$log" '^ *mmmim: .* ([0-9.]+) img\/s .*')
    vps=$(field "$log" '^ *mmmim: .* ([0-9.]+) views\/s .*')
    mfu=$(field "$log" '^ *mmmim: .*MFU +([0-9.]+)%.*')
    ovps=$(sed -nE 's/^ *(mmpretrain|[^ ]+\.py): .* ([0-9.]+) views\/s .*/\2/p' "$log" 2>/dev/null | head -1)
    ratio=$(field "$log" '^ratio \(views\/s\) mmmim \/ [^:]+: ([0-9.]+)x.*')
    peak=$(sed -nE 's/^peak (GPU|process) memory[^:]*: ([0-9.]+) GiB.*/\2/p' "$log" 2>/dev/null | head -1)
    copies=$(field "$log" '^copy-type operators per step: .*time: ([0-9.]+)%.*')
    printf '%-15s %-16s %9s %9s %6s %11s %7s %8s %s\n' "$n" "${STATUS[$i]}" "${ips:--}" \
      "${vps:--}" "${mfu:--}" "${ovps:--}" "${ratio:--}" "${peak:--}" "${copies:--}"
  done
  echo "MFU: counted model FLOPs / step time / the bf16 matmul rate measured in the same run."
  echo "other v/s, ratio: the compared model's views/s (mmpretrain's MAE; MAE for emae_k4) and"
  echo "ours / theirs; for emae_k4 the inverse of the ratio is the cost of a view in MAE images."
} | tee "$OUTDIR/summary.txt"
