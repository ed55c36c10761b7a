#!/usr/bin/env bash
# Collect, on a machine with PyPI access, the wheels that tools/gpu_session.sh installs on
# a GPU machine that has Python 3.12 and torch/torchvision but no OpenMMLab stack and no
# network:
#
#   bash tools/gpu_wheels.sh [DEST]       # DEST defaults to .whl/ in the repository
#
# What the GPU image is assumed to have already: numpy, pillow, opencv-python-headless,
# matplotlib, rich, einops, scipy, pyyaml, packaging, requests, tqdm, filelock, regex,
# safetensors (transformers 5.x needs them). What it lacks, or has in a version that
# mmpretrain 1.2 cannot import beside (transformers 5.x, huggingface-hub 1.x), is below.
#
# importlib_metadata: mmpretrain imports it and such an image may lack it; setuptools: an
# older one that still has pkg_resources, which mmengine's package lookup imports.
#
# mmcv: only its Python part is needed for pre-training benchmarks (PatchEmbed, DropPath;
# no compiled op is on the path), so the 2.1.0 sdist is built with MMCV_WITH_OPS=0, which
# makes a pure-Python wheel (named mmcv_lite, module mmcv) in well under a minute.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$here/.whl}"
py="${PYTHON:-$(bash "$here/tools/setup_env.sh")/bin/python}"
mkdir -p "$dest"
# exact versions: the ones the CPU environment (requirements/pinned.txt) is tested with
pkgs=(
  mmengine==0.10.7 addict==2.4.0 yapf==0.43.0 platformdirs==4.3.8 termcolor==3.1.0
  mmpretrain==1.2.0 modelindex==0.0.2 model-index==0.1.11 ordered-set==4.1.0 mat4py==0.6.0
  markdown==3.8 click==8.1.8
  transformers==4.49.0 tokenizers==0.21.4 huggingface-hub==0.36.2
  importlib_metadata==8.7.0 zipp==3.23.0 setuptools==80.9.0
)
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform any -d "$dest" "${pkgs[@]}"

if ! ls "$dest"/mmcv_lite-2.1.0-*.whl >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  # the sdist's metadata step imports torch: use the environment's, not an isolated one
  "$py" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$tmp" mmcv==2.1.0
  MMCV_WITH_OPS=0 "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dest" "$tmp"/mmcv-2.1.0.tar.gz
  rm -rf "$tmp"
fi
ls -la "$dest"
du -sh "$dest"
