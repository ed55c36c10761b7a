# Sourced by the GPU scripts (tools/gpu_session.sh, tools/gpu_fmnist.sh) on a GPU machine
# that has Python and torch but no OpenMMLab stack and no network: installs the wheels
# that tools/gpu_wheels.sh collected in .whl/ into /tmp/site and puts them and the
# repository on PYTHONPATH. Expects PY (the python) and OUTDIR (where pip's log goes), and
# the repository root as the working directory.
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
    > "$OUTDIR/pip.log" 2>&1 || echo "pip install failed: see $OUTDIR/pip.log"
else
  echo "no wheels in .whl/ (run tools/gpu_wheels.sh where PyPI is reachable); using what is installed"
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# mmcv-lite's distribution is not named mmcv and mmdet/mmseg are absent there: skip the
# import-time version check (none of them is on the pre-training path)
export MMMIM_SKIP_VERSION_CHECK=1
