# Sourced by tools/gpu_concurrency.sh and by tools/analysis/fmnist_benchmark.py --mps: start and stop
# CUDA's Multi-Process Service, so that several training processes share one GPU at once.
# Without it CUDA time-slices the GPU between processes: four Fashion-MNIST pre-training
# cells at once on one H200 ran at 140-185 ms per iteration each against 40 ms alone, with
# MPS at 46-64 ms each (tools/gpu_concurrency.sh; docs/benchmark.md, "On a GPU").
#   mps_start   # starts a daemon with its pipe and log under a new /tmp folder, unless one
#               # already answers; exports CUDA_MPS_PIPE_DIRECTORY for the processes started
#               # after it; returns 1 (and says why) where MPS cannot start
#   mps_stop    # stops the daemon mps_start started and removes its folder (nothing
#               # otherwise)
MPS_STARTED=0
mps_start() {
  if ! command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
    echo "MPS: nvidia-cuda-mps-control is not on PATH; processes will time-slice the GPU"
    return 1
  fi
  if [ -p "${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}/control" ]; then
    echo "MPS: a daemon already runs (${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps})"
    return 0
  fi
  MPS_DIR="$(mktemp -d /tmp/mmmim-mps.XXXXXX)"
  export CUDA_MPS_PIPE_DIRECTORY="$MPS_DIR/pipe" CUDA_MPS_LOG_DIRECTORY="$MPS_DIR/log"
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d; then
    MPS_STARTED=1
    echo "MPS: started (pipe $CUDA_MPS_PIPE_DIRECTORY)"
  else
    echo "MPS: nvidia-cuda-mps-control -d failed; processes will time-slice the GPU"
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    rm -rf "$MPS_DIR"
    return 1
  fi
}
mps_stop() {
  if [ "$MPS_STARTED" = 1 ]; then
    echo quit | nvidia-cuda-mps-control
    rm -rf "$MPS_DIR"
    MPS_STARTED=0
  fi
}
