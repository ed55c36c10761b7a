#!/usr/bin/env bash
# The C++ compiler tools/setup_env.sh hands to mmcv's build (CXX=this script).
#
# Why: mmcv 2.1.0 has no Linux wheel for the pinned torch, so every fresh machine
# compiles its ~77 CPU op sources, and each one spends most of its time parsing
# torch's headers again, then writing debug information nobody uses. This wrapper
#   1. precompiles the header almost every op source includes first
#      (pytorch_cpp_helper.hpp -> torch/types.h) once, with exactly the flags of the
#      first compile it sees, so gcc loads it instead of re-parsing it; gcc checks that
#      the flags match and silently parses the header as usual when they do not, so a
#      mismatch can cost time but never change the result;
#   2. compiles without debug information (-g0; the wheel is a release build).
# Every op is still compiled, at the same optimisation level.
#
# Environment: MMMIM_REAL_CXX (the compiler to run, default c++), MMMIM_PCH_HEADER (the
# header to precompile; unset: no precompiled header), MMMIM_CXX_DEBUG=1 keeps -g.
set -uo pipefail
real="${MMMIM_REAL_CXX:-c++}"
if [ "$(command -v "$real")" = "$(command -v "$0")" ] || [ -n "${MMMIM_CXX_ACTIVE:-}" ]; then
  echo "mmcv_cxx: MMMIM_REAL_CXX=$real points back at this wrapper; set it to the real compiler" >&2
  exit 2
fi
export MMMIM_CXX_ACTIVE=1
extra=()
[ "${MMMIM_CXX_DEBUG:-0}" = 1 ] || extra=(-g0)

args=("$@")
src=""  # the C++ source of a compile command (torch's ninja rule: ... -c -c SRC -o OBJ ...)
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    -o|-MF|-MT|-MQ) i=$((i + 1)) ;;
    *.cpp|*.cc|*.cxx) src="${args[i]}" ;;
  esac
done

header="${MMMIM_PCH_HEADER:-}"
if [ -n "$src" ] && [ -n "$header" ] && [[ "$src" == *.cpp ]]; then
  gch="$header.gch"
  (
    flock 8
    if [ ! -e "$gch" ] && [ ! -e "$gch.failed" ]; then
      pch=()  # the same command, minus the source, its object and dependency file
      for ((i = 0; i < ${#args[@]}; i++)); do
        case "${args[i]}" in
          -o|-MF|-MT|-MQ) i=$((i + 1)) ;;
          -c|-MMD|-MD|"$src") ;;
          *) pch+=("${args[i]}") ;;
        esac
      done
      if "$real" "${pch[@]}" "${extra[@]}" -x c++-header "$header" -o "$gch.tmp"; then
        mv "$gch.tmp" "$gch"
      else
        echo "mmcv_cxx: precompiling $header failed; compiling without it" >&2
        rm -f "$gch.tmp"
        touch "$gch.failed"
      fi
    fi
  ) 8>"$header.lock"
fi
exec "$real" "$@" "${extra[@]}"
