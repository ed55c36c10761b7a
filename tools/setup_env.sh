#!/usr/bin/env bash
# Creates (once) and prints the path of the isolated Python environment mmmim runs in.
#
#   ENV=$(bash tools/setup_env.sh)        # build or reuse; progress goes to stderr
#   $ENV/bin/python tools/train.py ...
#
# The environment and the mmcv wheel built for it live OUTSIDE the clone, under
# ${MMMIM_CACHE_DIR:-~/.cache/mmmim}, keyed by a hash of requirements/pinned.txt and of
# this script, so every clone on a machine (and CI) reuses them in seconds. The mmcv
# wheel has its own key (Python, torch, the mmcv and setuptools pins, the compiler
# wrapper and this script's mmcv build block), so changing another pin rebuilds the
# environment in a few minutes without compiling mmcv again. A fresh machine builds
# both (most of it compiling mmcv's ops; times in the README).
# Environment variables:
#   MMMIM_CACHE_DIR   where environments and wheels are cached
#   MMMIM_PYTHON      the interpreter to base the environment on (default: python3.11 or python3)
#   MMMIM_TORCH_SPEC  torch/torchvision requirement (default from pinned.txt); GPU users
#                     set e.g. "torch==2.5.1 torchvision==0.20.1 --index-url <their CUDA index>"
#   MMMIM_SKIP_DATA=1 do not try to install Debian's dataset-fashion-mnist
#   MMMIM_PRINT_KEYS=1 print the environment's and the mmcv wheel's cache keys and exit
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$here/requirements/pinned.txt"
log() { echo "[mmmim setup] $*" >&2; }

py="${MMMIM_PYTHON:-}"
if [ -z "$py" ]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
fi
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$pyver" in 3.9|3.10|3.11|3.12) ;; *) log "Python $pyver is not supported; install Python 3.11 and set MMMIM_PYTHON=/path/to/python3.11"; exit 1;; esac

torch_spec="${MMMIM_TORCH_SPEC:-$(grep -E '^(torch|torchvision)==' "$req" | tr '\n' ' ')}"
key=$( (cat "$req" "$here/tools/setup_env.sh" "$here/tools/mmcv_cxx.sh"; echo "$pyver $torch_spec") |
  sha256sum | cut -c1-12)
cache="${MMMIM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mmmim}"
mmcv_key=$( (sed -n '/^# mmcv build: begin/,/^# mmcv build: end/p' "$here/tools/setup_env.sh"
  grep -E '^(mmcv|setuptools)==' "$req"; cat "$here/tools/mmcv_cxx.sh"; echo "$pyver $torch_spec") |
  sha256sum | cut -c1-12)
if [ "${MMMIM_PRINT_KEYS:-0}" = 1 ]; then echo "env $key mmcv $mmcv_key"; exit 0; fi
env="$cache/env-py$pyver-$key"
wheels="$cache/mmcv-wheel-py$pyver-$mmcv_key"
mkdir -p "$cache" "$wheels"

install_data() {
  [ "${MMMIM_SKIP_DATA:-0}" = 1 ] && return 0
  if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's dataset-fashion-mnist (real data for the default run and tests)"
    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }) ||
      log "could not install dataset-fashion-mnist; run: sudo apt-get install dataset-fashion-mnist"
  else
    log "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', or pass data_root=<dir with the idx .gz files>"
  fi
}

exec 9>"$cache/.lock-$key"
flock 9
if [ -f "$env/.mmmim-complete" ]; then
  install_data
  echo "$env"
  exit 0
fi

log "building environment $env (first run on this machine; later runs reuse it)"
rm -rf "$env"
"$py" -m venv "$env"
pip=("$env/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip >/dev/null 2>&1 || true
log "installing torch ($torch_spec)"
# shellcheck disable=SC2086
"${pip[@]}" install $torch_spec
"${pip[@]}" install "setuptools==$(sed -n 's/^setuptools==//p' "$req")" wheel ninja

# mmcv build: begin
mmcv_ver=$(sed -n 's/^mmcv==//p' "$req")
whl=$(ls "$wheels"/mmcv-"$mmcv_ver"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$whl" ]; then
  log "building mmcv $mmcv_ver with compiled ops (once per machine; times in the README)"
  src=$(mktemp -d)
  "${pip[@]}" download --no-deps --no-binary mmcv --no-build-isolation -d "$src" "mmcv==$mmcv_ver"
  tar -xzf "$src"/mmcv-"$mmcv_ver".tar.gz -C "$src"
  tree="$src/mmcv-$mmcv_ver"
  # torch >= 2.6 headers need C++20; mmcv 2.1.0's setup.py asks for C++14/17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$tree/setup.py"
  # Progress while it compiles: sources done of total, elapsed, ETA (a CUDA build adds
  # the .cu kernels).
  cuda=$("$env/bin/python" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
  [ "${FORCE_CUDA:-0}" = 1 ] && cuda=1
  total=$(ls "$tree"/mmcv/ops/csrc/pytorch/*.cpp "$tree"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l)
  [ "$cuda" = 1 ] && total=$((total + $(ls "$tree"/mmcv/ops/csrc/pytorch/cuda/* | wc -l)))
  started=$SECONDS
  (
    while sleep "${MMMIM_PROGRESS_EVERY:-30}"; do
      n=$(find "$tree/build" -name '*.o' 2>/dev/null | wc -l)
      t=$((SECONDS - started))
      eta=""
      [ "$n" -gt 0 ] && eta=", about $(( (t * (total - n) / n + 59) / 60 )) min left"
      log "mmcv: $n of $total sources compiled, $((t / 60)) min $((t % 60)) s elapsed$eta"
    done
  ) &
  progress=$!
  trap 'kill $progress 2>/dev/null' EXIT
  # tools/mmcv_cxx.sh: a precompiled torch header and no debug information (see there).
  real_cxx="${CXX:-c++}"
  (cd "$tree" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    MMMIM_REAL_CXX="$real_cxx" CXX="$here/tools/mmcv_cxx.sh" \
    MMMIM_PCH_HEADER="$tree/mmcv/ops/csrc/common/pytorch_cpp_helper.hpp" \
    "$env/bin/python" -m pip wheel --no-deps --no-build-isolation -q -w "$wheels" .) >&2
  kill $progress 2>/dev/null || true
  trap - EXIT
  log "mmcv compiled in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
  rm -rf "$src"
  whl=$(ls "$wheels"/mmcv-"$mmcv_ver"-*.whl | head -1)
fi
# mmcv build: end
log "installing the OpenMMLab stack"
grep -vE '^(#|$|torch==|torchvision==|mmcv==)' "$req" > "$env/.requirements.txt"
"${pip[@]}" install "$whl" -r "$env/.requirements.txt"
# the whole stack must import side by side (transformers 5.x, for one, breaks mmpretrain)
"$env/bin/python" -c "import mmcv.ops, mmpretrain.models, mmdet.models, mmseg.models, transformers, timm, safetensors" >&2
touch "$env/.mmmim-complete"
install_data
log "environment ready"
echo "$env"
