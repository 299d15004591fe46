#!/usr/bin/env bash
# The one command for a lent GPU machine:  bench/gpu_check.sh OUTDIR [BENCH ARGS...]
#
# Builds ganfast with its CUDA extension, reports the environment, runs the
# GPU tests and the whole test suite on CUDA, and benchmarks, writing one log
# per step under OUTDIR.  A failing step does not stop the later ones; the
# script exits non-zero at the end if any step failed, and prints the bench
# table last.  The machine has no network: nothing is downloaded (the build
# uses the preinstalled torch, nvcc, cmake, ninja and pybind11).
#
# Arguments after OUTDIR go to `ganfast bench` (e.g. `--op bias_act --dtype bf16`).
#
# OUTDIR gets 9 files:
#   nvidia-smi.txt  build.log  doctor.txt  gpu_tests.log  tests.log
#   bench.txt (the table)  bench.log (progress)  bench.json (every row + metadata)
#   dcgan_step.txt (a whole DCGAN 64x64 bf16 training iteration, ganfast vs torch.nn)
# Record results in bench/RESULTS.md with the header lines of bench.txt.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUTDIR [ganfast bench arguments...]" >&2
    exit 2
fi
OUT=$1
shift
BENCH_ARGS=("$@")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The test suite must see the real GPU path: Triton compiled for the device,
# not the CPU interpreter.
unset TRITON_INTERPRET

failed=()
step() {  # step NAME LOG CMD...: run CMD with its output in LOG, remember failures
    local name=$1 log=$2
    shift 2
    echo "== $name: $* (log: $log)"
    local start=$SECONDS rc=0
    "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        echo "   ok ($((SECONDS - start)) s)"
    else
        echo "   FAILED with exit status $rc ($((SECONDS - start)) s); last lines:"
        tail -n 15 "$log" | sed 's/^/   | /'
        failed+=("$name")
    fi
}

# Read-only look at the card (clocks, memory, other processes); never change its settings.
step nvidia-smi "$OUT/nvidia-smi.txt" nvidia-smi

step build "$OUT/build.log" env GANFAST_CUDA=1 python -m pip install --no-build-isolation --no-deps -v -e .

# Prefer the installed entry point; fall back to the source tree if the build failed.
if command -v ganfast >/dev/null 2>&1; then
    GANFAST=(ganfast)
else
    GANFAST=(python -m ganfast)
fi

step doctor "$OUT/doctor.txt" "${GANFAST[@]}" doctor
step gpu-tests "$OUT/gpu_tests.log" python -m pytest tests -m gpu -v -rs
step tests "$OUT/tests.log" python -m pytest tests -rs
# The table on stdout (bench.txt), progress and tracebacks on stderr (bench.log).
bench() { "${GANFAST[@]}" bench --json "$OUT/bench.json" "${BENCH_ARGS[@]}" 2>"$OUT/bench.log"; }
step bench "$OUT/bench.txt" bench
# Issue 7: a whole DCGAN 64x64 training iteration (batch 128, bf16), fused layers vs torch.nn;
step dcgan-step "$OUT/dcgan_step.txt" python bench/dcgan_step.py

echo
echo "================================ ganfast bench ================================"
if [[ -s "$OUT/bench.txt" ]]; then
    cat "$OUT/bench.txt"
else
    echo "(no bench output)"
fi
echo

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "gpu_check: FAILED steps: ${failed[*]} (logs in $OUT)"
    exit 1
fi
echo "gpu_check: all steps passed (logs in $OUT)"
