#!/usr/bin/env bash
# The GPU bench in one call, from any folder (bench/gpu.py says what it measures):
#
#   bash bench/gpu.sh                           # the paper preset on the GPUs present: under 7 minutes on one H200
#   bash bench/gpu.sh --device cpu --dry-run    # the same code on a tiny model, in seconds
#
# Other flags go to bench/gpu.py (--help). The figures go to $OUT/gpu-bench.json when $OUT is set (the device
# machine's output folder), else to bench/out/gpu-bench.json. $PYTHON overrides python3.
set -eo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # bvvtok from this checkout, pip-installed or not
json=()
if [[ -n "${OUT:-}" ]]; then
    json=(--json "$OUT/gpu-bench.json")
fi
exec "${PYTHON:-python3}" "$root/bench/gpu.py" "${json[@]}" "$@"
