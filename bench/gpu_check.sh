#!/usr/bin/env bash
# The one command for a lent GPU machine:  bench/gpu_check.sh [--dry-run] OUTDIR
#
# Fits the lease (issue 13): a GPU is lent for 15 minutes in all and its machine
# takes minutes to start, so this script finishes in at most 7 minutes on an
# H200 (sm_90).  Each stage runs under its own `timeout` (SIGTERM at its
# budget, SIGKILL GRACE seconds later), so one slow stage cannot eat the rest;
# a stage that runs out of time is reported TIMEOUT and the next one starts.
# Budgets + grace: 7 x 3 s + 395 s = 416 s <= 420 s.
#
# Stage         budget  estimate (from counted work; leads until the first GPU run replaces them)
# nvidia-smi     10 s   ~1 s: one read-only query (clocks, memory, other processes); settings never changed.
# build          60 s   ~25 s: csrc/ is ONE .cu (bias_act.cu, 547 lines) + bindings.cpp; `pip install -e .`
#                       built it here in 31 s on 2 cores (sm_80 + sm_90 + compute_90, nvcc --threads 0);
#                       16 cores run the three targets and the C++ file side by side, plus ~10 s of pip.
# doctor         15 s   ~5 s: import torch + ganfast, probe the extension and Triton.
# smoke          45 s   ~30 s: bench/gpu_smoke.py: 14 ops x their backends (34 op-backend pairs on CUDA)
#                       x 4 dtypes = 136 cases, forward + first derivatives against float64, one realistic
#                       shape each.  Compute is milliseconds per case (2048-d eigh: ~1 s per dtype); the
#                       cost is Triton's JIT: 120 kernel variants (counted under the interpreter), 0.1-0.9 s
#                       each and 2.4 s for the implicit-GEMM conv (sm_90 compiles timed on the loaded 2-core
#                       dev machine; about half that on an idle core): ~60 s of CPU, split by op over 8
#                       spawned workers (the conv ops, ~15 s, bound it) + ~10 s start-up (torch, CUDA context).
# gpu-tests      75 s   ~50 s: `pytest -m gpu`: 326 tests on a GPU (every op test parametrised with the triton or
#                       cuda backend, + 7 marked gpu), milliseconds of compute each; the cost is Triton's JIT:
#                       478 kernel variants (counted under the interpreter; 76 of them the conv kernel), ~300 s
#                       of compile at the loaded 2-core dev machine's speed, ~120 s on an idle core, over 12
#                       pytest-xdist workers (installed there) ~15 s, + ~15 s worker start-up and collection,
#                       + 3 torch.compile tests (~20 s each, side by side).
# bench         165 s   ~165 s: bench/gpu_bench.py, every op at its issue shape in bf16 (11 cases,
#                       one pass each; `bench/gpu_bench.py --plan` prints the count): per (case, pass) up to 7
#                       providers x (6 fixed calls + 25 ms warm-up + 200 ms or >= 10 repetitions), one
#                       torch.compile (~5 s fwd, ~10 s fwd+bwd, +15 s for the first), 2 s of Triton JIT.
#                       (`ganfast bench` in full is 1,599 timed rows and 265 compiles: most of an hour.)
# dcgan-step     25 s   ~15 s: bench/dcgan_step.py, issue 7's target (ganfast >= 1.3x torch.nn): DCGAN 64x64,
#                       batch 128, bf16, 2 providers x (10 warm-up + 50 timed) iterations of ~330 GFLOP
#                       (~5 ms each) = 0.6 s, + ~10 s import, model build and the fused layers' first-call JIT.
#                       Its third provider, torch.compile of G and D (forward and backward graphs, tens of
#                       seconds to minutes of Inductor), is left to a run of its own; the bench stage has
#                       torch.compile against every fused layer.
# smoke + gpu-tests: 45 + 75 = 120 s, the issue's 2 minutes for the CUDA correctness check.
#
# OUTDIR gets: nvidia-smi.txt build.log doctor.txt smoke.log smoke.json gpu_tests.log gpu_tests.xml
#   bench.txt (full table) bench.log (progress) bench.json bench_summary.txt dcgan_step.txt dcgan_step.json
#   gpu_check.txt (the stage table) gpu_check.json.
# The output ends with the short bench table, the DCGAN step, then the stage table (stage, status, seconds,
# budget).  Exit status: 0 if every stage passed, 1 otherwise, 2 on a usage error.
#
# --dry-run: print the stages, their budgets and commands and the bench plan, run nothing (CI runs it).
# Testing the control flow without a GPU (tests/test_gpu_check.py): GPU_CHECK_CMD_<STAGE>=shell command
# replaces a stage's command and GPU_CHECK_BUDGET_<STAGE>=seconds its budget (<STAGE>: the name in capitals,
# '-' as '_', e.g. GPU_CHECK_CMD_GPU_TESTS).
#
# The machine has no network: nothing is downloaded (the build uses the preinstalled torch, nvcc, cmake,
# ninja and pybind11).  Record results in bench/RESULTS.md with the header lines of bench.txt.
set -uo pipefail

usage() { echo "usage: $0 [--dry-run] OUTDIR" >&2; exit 2; }
DRY_RUN=0
if [[ ${1:-} == --dry-run ]]; then DRY_RUN=1; shift; fi
[[ $# -eq 1 ]] || usage
OUT=$1
[[ $OUT == /* ]] || OUT=$PWD/$OUT   # before the cd below: OUTDIR is relative to the caller
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GRACE=3   # seconds between a stage's SIGTERM and its SIGKILL
TOTAL_LIMIT=420
STAGES=(nvidia-smi build doctor smoke gpu-tests bench dcgan-step)
declare -A BUDGET=([nvidia-smi]=10 [build]=60 [doctor]=15 [smoke]=45 [gpu-tests]=75 [bench]=165 [dcgan-step]=25)
declare -A LOG=([nvidia-smi]=nvidia-smi.txt [build]=build.log [doctor]=doctor.txt [smoke]=smoke.log
                [gpu-tests]=gpu_tests.log [bench]=bench.txt [dcgan-step]=dcgan_step.txt)
# Commands run with `bash -c` under `timeout`, with OUT and PY exported.  The machine's python is python3.
declare -A CMD=(
    [nvidia-smi]='nvidia-smi'
    [build]='GANFAST_CUDA=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install --no-build-isolation --no-deps -v -e .'
    [doctor]='if command -v ganfast >/dev/null; then ganfast doctor; else "$PY" -m ganfast doctor; fi'
    [smoke]='"$PY" bench/gpu_smoke.py --device cuda --jobs 8 --strict --json "$OUT/smoke.json"'
    [gpu-tests]='XDIST=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 12"); "$PY" -m pytest tests -m gpu -q -rs -p no:cacheprovider $XDIST --durations 15 --junitxml "$OUT/gpu_tests.xml"'
    [bench]='"$PY" bench/gpu_bench.py --json "$OUT/bench.json" --summary "$OUT/bench_summary.txt" 2>"$OUT/bench.log"'
    [dcgan-step]='"$PY" bench/dcgan_step.py --providers torch.nn ganfast --json "$OUT/dcgan_step.json"'
)

for s in "${STAGES[@]}"; do  # the test hooks: GPU_CHECK_CMD_<STAGE>, GPU_CHECK_BUDGET_<STAGE>
    key=${s^^}; key=${key//-/_}
    override=GPU_CHECK_CMD_$key; [[ -n ${!override+x} ]] && CMD[$s]=${!override}
    override=GPU_CHECK_BUDGET_$key; [[ -n ${!override+x} ]] && BUDGET[$s]=${!override}
done

budget_sum=0
for s in "${STAGES[@]}"; do budget_sum=$((budget_sum + BUDGET[$s])); done
total_budget=$((budget_sum + GRACE * ${#STAGES[@]}))   # the worst case: every stage killed at its budget + GRACE

PY=${PYTHON:-$(command -v python3 || command -v python)}
export OUT PY PYTHONUNBUFFERED=1
# The checks must see the real GPU path: Triton compiled for the device, not the CPU interpreter.
unset TRITON_INTERPRET

if [[ $DRY_RUN -eq 1 ]]; then
    echo "gpu_check dry run: ${#STAGES[@]} stages, logs in $OUT"
    for s in "${STAGES[@]}"; do
        printf 'stage %-11s budget %4d s  log %-16s %s\n' "$s" "${BUDGET[$s]}" "${LOG[$s]}" "${CMD[$s]}"
    done
    echo "total: budgets + ${GRACE} s grace each = ${total_budget} s (limit ${TOTAL_LIMIT} s)"
    rc=0
    [[ $total_budget -le $TOTAL_LIMIT ]] || { echo "gpu_check: budgets exceed ${TOTAL_LIMIT} s"; rc=1; }
    "$PY" bench/gpu_bench.py --plan --budget "${BUDGET[bench]}" || rc=1
    exit $rc
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OUT
# A reused OUTDIR must not show an earlier run's results as this one's.
for f in "${LOG[@]}" smoke.json gpu_tests.xml bench.log bench.json bench_summary.txt dcgan_step.json \
         gpu_check.txt gpu_check.json; do
    rm -f "${OUT:?}/$f"
done

now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
declare -A STATUS SECS
failed=()
for s in "${STAGES[@]}"; do
    budget=${BUDGET[$s]}
    log=$OUT/${LOG[$s]}
    echo "== $s (budget $budget s, log ${LOG[$s]}): ${CMD[$s]}"
    t0=$(now)
    timeout -k "$GRACE" "$budget" bash -c "${CMD[$s]}" </dev/null >"$log" 2>&1
    rc=$?
    t1=$(now)
    SECS[$s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [[ $rc -eq 0 ]]; then
        STATUS[$s]=ok
    elif [[ $rc -eq 124 || $rc -eq 137 ]] && awk -v t="${SECS[$s]}" -v b="$budget" 'BEGIN { exit !(t >= b - 0.5) }'; then
        STATUS[$s]=TIMEOUT
    else
        STATUS[$s]="FAILED($rc)"
    fi
    echo "   ${STATUS[$s]} (${SECS[$s]} s of $budget s)"
    if [[ ${STATUS[$s]} != ok ]]; then
        failed+=("$s")
        tail -n 12 "$log" | sed 's/^/   | /'
    fi
done

echo
echo "================================ bench (issue shapes; full table: bench.txt) ================================"
if [[ -s $OUT/bench_summary.txt ]]; then cat "$OUT/bench_summary.txt"; else echo "(no bench summary)"; fi
echo
echo "================================ DCGAN step (dcgan_step.txt) ================================"
if [[ -s $OUT/dcgan_step.txt ]]; then grep -v '^\s*$' "$OUT/dcgan_step.txt" | tail -n 6; else echo "(no output)"; fi
echo
summary() {
    printf '%-11s  %-11s  %7s  %6s\n' stage status seconds budget
    printf '%-11s  %-11s  %7s  %6s\n' ----------- ----------- ------- ------
    local total=0
    for s in "${STAGES[@]}"; do
        printf '%-11s  %-11s  %7s  %6s\n' "$s" "${STATUS[$s]}" "${SECS[$s]}" "${BUDGET[$s]}"
        total=$(awk -v a="$total" -v b="${SECS[$s]}" 'BEGIN { printf "%.1f", a + b }')
    done
    printf '%-11s  %-11s  %7s  %6s\n' total "" "$total" "$budget_sum"
}
summary >"$OUT/gpu_check.txt"
{
    printf '{"stages": ['
    sep=""
    for s in "${STAGES[@]}"; do
        printf '%s{"stage": "%s", "status": "%s", "seconds": %s, "budget": %s, "log": "%s"}' \
            "$sep" "$s" "${STATUS[$s]}" "${SECS[$s]}" "${BUDGET[$s]}" "${LOG[$s]}"
        sep=", "
    done
    printf '], "grace_s": %s, "limit_s": %s, "failed": %s}\n' "$GRACE" "$TOTAL_LIMIT" "${#failed[@]}"
} >"$OUT/gpu_check.json"
echo "========== gpu_check stages: budgets $budget_sum s + $GRACE s kill grace each = $total_budget s of $TOTAL_LIMIT s; logs in $OUT =========="
cat "$OUT/gpu_check.txt"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "gpu_check: FAILED stages: ${failed[*]}"
    exit 1
fi
echo "gpu_check: all stages passed"
