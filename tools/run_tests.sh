#!/usr/bin/env bash
# Runs mmmim's test suite in the pinned environment (built on first use):
#   bash tools/run_tests.sh [pytest args...]      e.g. -k checkpoint, -x
# Fails if any test fails and also if no test was collected.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV=$(bash "$here/tools/setup_env.sh") || { echo "run_tests: building the environment failed" >&2; exit 1; }
cd "$here"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$ENV/bin/python" -m pytest tests -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run_tests: pytest collected no tests; a run without tests is a failed run (check tests/ and the -k/-m filters)" >&2
fi
exit "$rc"
