"""The GPU check's benchmark: every op at its issue shape, in bf16, in the time the lease allows.

    python bench/gpu_bench.py --json OUT/bench.json --summary OUT/bench_summary.txt > OUT/bench.txt
    python bench/gpu_bench.py --plan [--budget 150]     # the counted work and its estimate; touches no device
    python bench/gpu_bench.py --device cpu --quick --op minibatch_stddev --provider eager ganfast-torch   # CI

Why not ``ganfast bench``: its full table on a GPU is 72 cases, mostly in two
dtypes and two passes, with up to 7 providers each: 1,599 timed rows and 265
``torch.compile`` calls, most of an hour; ``bench/gpu_check.sh`` has minutes.  This script runs the same
cases (``ganfast/bench/<op>.py``) through the same runner
(``ganfast.bench.runner``: float64 check first, CUDA events, L2 flushed,
median and 20/80 quantiles) and writes the same JSON, for the rows of
:data:`ISSUE` only: per op, the shape an issue (or DESIGN.md's "Numbers we
hold ourselves to") sets a target at, in bfloat16 where the case is timed in
bfloat16, and the pass the target is about.  It also:

* writes the JSON after every case, and on SIGTERM (``timeout``) prints the
  table of the rows done so far and exits 124, so a slow stage still leaves
  its numbers;
* prints, with ``--plan``, the counted work (cases, passes, providers,
  compilations, bytes and flops) and the time it predicts from it, which the
  GPU check's header quotes and its dry run checks against the stage budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

FWD, FWD_BWD = "fwd", "fwd+bwd"


@dataclasses.dataclass(frozen=True)
class IssueRow:
    """One case of ``op`` (``case`` matches ``"<case name> <shape>"`` in full), its passes and why."""

    op: str
    case: str
    passes: Tuple[str, ...]
    target: str
    providers: Optional[Tuple[str, ...]] = None  # provider kinds or names to keep; None: all the runner has
    # For the estimate only, where the counted bytes and flops do not set the time (eigensolvers):
    call_s: Optional[float] = None        # seconds per call of a timed provider
    reference_s: Optional[float] = None   # seconds for the inputs and the float64 reference


#: The issue shapes, most important first (a stage that runs out of time loses the last rows).
ISSUE: Tuple[IssueRow, ...] = (
    IssueRow("bias_act", r"leaky_relu 64x1024x1024", (FWD,),
             "bf16 forward at 64M elements >= 85% of the measured copy bandwidth (ganfast/bench/bias_act.py)"),
    IssueRow("conv_bn_act", r"dcgan64 L2 train 128x64x32x32", (FWD_BWD,),
             "a fused layer >= 1.5x eager and >= 1.1x torch.compile (DESIGN.md); DCGAN-64 D, batch 128"),
    IssueRow("conv_transpose_bn_act", r"dcgan64 L4 train 128x128x16x16", (FWD_BWD,),
             "as conv_bn_act; DCGAN-64 G's largest BatchNorm layer"),
    IssueRow("self_attention2d", r"sagan64 c256 vs naive 16x256x64x64", (FWD_BWD,),
             "fwd+bwd >= 2x the naive form (ganfast/bench/self_attention2d.py)"),
    IssueRow("self_attention2d", r"sagan64 c256 vs sdpa 16x256x64x64", (FWD_BWD,),
             "fwd+bwd not slower than SDPA"),
    IssueRow("minibatch_discrimination", r"cdist K=100 D=5 1024x8192", (FWD_BWD,),
             "faster than the cdist form at B=1024 (ganfast/bench/minibatch_discrimination.py)"),
    IssueRow("bias_act_pixel_norm", r"lrelu 0.2 16x256x64x64", (FWD_BWD,),
             "a normalisation stage >= 80% of the copy bandwidth (DESIGN.md); ProGAN G at 64^2 (eager and the "
             "kernel only: a torch.compile here would not fit the stage's budget; `ganfast bench --op "
             "bias_act_pixel_norm` has it)", providers=("eager", "ganfast-triton")),
    IssueRow("modulated_conv2d", r"G 64 up 2 16x512x32x32", (FWD_BWD,),
             "StyleGAN2's upsampling synthesis conv at 64^2: the fused Triton path >= 1.5x eager and >= 1.1x "
             "torch.compile (issue 15), beside the two PyTorch forms; the kernel against eager here (a "
             "torch.compile would not fit the stage's budget: `ganfast bench --op modulated_conv2d` has it)",
             providers=("eager", "ganfast-torch", "ganfast-aten", "ganfast-triton")),
    IssueRow("upfirdn2d", r"downsample2d D 256 16x128x256x256", (FWD_BWD,),
             "StyleGAN2's resampling >= 1.5x eager and >= 1.1x torch.compile in bf16 (issue 15); the kernel only "
             "(the torch backend is eager's own maths)", providers=("eager", "compile", "ganfast-triton")),
    IssueRow("instance_norm_act", r"relu 8x64x256x256", (FWD_BWD,),
             "CycleGAN's generator at 256^2, batch 8: >= 1.5x eager and >= 1.1x torch.compile in bf16 (issue 16); "
             "eager and the kernels only (a torch.compile would not fit the stage's budget: `ganfast bench --op "
             "instance_norm_act` has it)", providers=("eager", "ganfast-triton")),
    IssueRow("minibatch_stddev", r"G=4 F=1 16x64x256x256", (FWD_BWD,),
             "a normalisation stage >= 80% of the copy bandwidth (DESIGN.md); ProGAN D at 256^2"),
    IssueRow("feature_stats", r"batch=500 50000x2048", (FWD,),
             "FID statistics of 50,000 2048-d features (float32: features are not bf16)"),
    IssueRow("sqrtm_trace", r"frechet vs eigvals 2048x2048", (FWD,),
             "FID from 2048-d statistics; ganfast's route only: the eig/SciPy baselines take seconds per call "
             "and 17+ calls per row (run `ganfast bench --op fid` alone for them)", providers=("ganfast",),
             # cuSOLVER eigh/Cholesky chains at d=2048 are latency-bound (~0.1 s); the check's reference is
             # torch.linalg.eigvals, LAPACK on the host through MAGMA (~30 s on 2 cores here, RESULTS.md).
             call_s=0.1, reference_s=10.0),
)

# --- the estimate ------------------------------------------------------------------------------
#
# Leads, not measurements on this workplace's H200 yet: replace them with the
# times the first run's bench.log shows.  Copy bandwidth and bf16 matmul rate
# are KINDS.md's readings on an H200 here (4.3 TB/s, 790 TFLOP/s on random
# data); "float32" uses the datasheet's non-tensor-core 67 TFLOP/s.
BANDWIDTH = 4.3e12
RATE = {"bfloat16": 790e12, "float16": 790e12, "float32": 67e12}
EFFICIENCY = 0.3          # a provider reaches ~30% of the floor max(bytes/BW, flops/rate): a conservative lead
WARMUP_S, REPS_S = 0.025, 0.200   # runner.TimerConfig.full("cuda"): warm-up and repetition budgets
MIN_REPS, FIXED_CALLS = 10, 6     # at least 10 repetitions; 1 checked call + 5 estimate calls before them
COMPILE_S = {FWD: 5.0, FWD_BWD: 10.0}   # torch.compile of one small function (Dynamo + AOTAutograd + Inductor)
FIRST_COMPILE_S = 15.0    # the process's first compile also starts Inductor's compile workers
TRITON_JIT_S = 2.0        # ganfast-triton's first call: 2-4 kernels at 0.1-2.4 s each (sm_90, measured on a CPU)
REFERENCE_S = 0.5         # inputs and the float64 reference of one (case, pass)
HOST_CALL_S = 0.4e-3      # host time per timed call (L2 flush, launches, autograd): the floor when GPU work is less
STARTUP_S = 12.0          # python, torch, ganfast, the CUDA context, and the two peak measurements


def _dtype_for(case) -> str:
    return "bfloat16" if "bfloat16" in case.dtypes else case.dtypes[0]


def _keep(row: Optional[IssueRow], names: Optional[Sequence[str]], provider) -> bool:
    """Whether ``provider`` is timed for ``row`` (and is among ``names``, the --provider choice)."""
    if names and provider.name not in names:
        return False
    if row is None or row.providers is None:
        return True
    return provider.kind in row.providers or provider.name in row.providers


def select(quick: bool, ops: Optional[Sequence[str]]) -> List[Tuple[IssueRow, Any, str, Tuple[str, ...]]]:
    """``(row, case, dtype, passes)`` to run: the :data:`ISSUE` rows, or with ``quick`` each op's first quick case."""
    from ganfast.bench import load_cases

    out = []
    rows = [r for r in ISSUE if not ops or r.op in ops]
    if quick:  # CI on a CPU: one small case per op, its own passes
        seen = set()
        for r in rows:
            if r.op not in seen:
                seen.add(r.op)
                case = load_cases(r.op, quick=True)[0]
                out.append((r, case, _dtype_for(case), tuple(p for p in r.passes if p in case.passes)))
        return out
    for r in rows:
        found = [c for c in load_cases(r.op, quick=False) if re.fullmatch(r.case, f"{c.name} {c.shape_str}")]
        if len(found) != 1:
            raise SystemExit(f"gpu_bench: ISSUE row {r.op} {r.case!r} matches {len(found)} cases, not 1")
        out.append((r, found[0], _dtype_for(found[0]), r.passes))
    return out


def plan_providers(row: IssueRow, op: str, names: Optional[Sequence[str]]):
    """The providers a CUDA run times for ``op``: every backend the registry lists is available there."""
    from ganfast import _backend
    from ganfast.bench import runner

    backends = set(_backend.spec(op).backends) | {"auto"}
    return [p for p in runner.ALL_PROVIDERS
            if (p.kind != "ganfast" or p.backend in backends) and _keep(row, names, p)]


def estimate(selected, names: Optional[Sequence[str]]) -> Tuple[float, List[str]]:
    """Seconds predicted for ``selected`` on an H200, and one line of counted work per row."""
    from ganfast.bench.case import DTYPES

    total, lines, compiles = STARTUP_S, [], 0
    for row, case, dname, passes in selected:
        providers = plan_providers(row, case.op, names)
        secs = 0.0
        for pass_ in passes:
            nbytes, nflops = case.bytes_moved(DTYPES[dname], pass_), case.flops(pass_)
            floor = max(nbytes / BANDWIDTH, nflops / RATE[dname])  # the fewest seconds the pass can take
            t = row.call_s or max(floor / EFFICIENCY, HOST_CALL_S)
            calls = FIXED_CALLS + max(1, int(WARMUP_S / t)) + min(max(MIN_REPS, int(REPS_S / t)), 1000)
            secs += (row.reference_s or REFERENCE_S) + len(providers) * calls * t
            for p in providers:
                if p.kind == "compile":
                    secs += COMPILE_S[pass_] + (FIRST_COMPILE_S if compiles == 0 else 0.0)
                    compiles += 1
                if p.name == "ganfast-triton":
                    secs += TRITON_JIT_S
            lines.append(f"  {case.op + ' ' + case.name:<46} {case.shape_str:<16} {dname:<8} {pass_:<7} "
                         f"{len(providers)} providers  {nbytes / 1e9:7.2f} GB {nflops / 1e12:8.3f} TFLOP  "
                         f"{calls:3d} calls x {t * 1e3:6.2f} ms")
        lines[-1] += f"  ~{secs:5.1f} s"
        total += secs
    return total, lines


# --- the run -----------------------------------------------------------------------------------


def _num(x: Optional[float], suffix: str = "") -> str:
    """Three significant figures (as the full table), or "-"."""
    if x is None or not math.isfinite(x):
        return "-" if x is None else str(x)
    return f"{x:.3g}{suffix}"


def compact(rows) -> str:
    """A short table for the end of the GPU check's output (bench.txt has every column)."""
    head = ("case", "pass", "provider", "median ms", "vs eager", "vs compile", "%peak BW", "%peak FLOP", "status")
    body = []
    for r in rows:
        body.append([f"{r.op} {r.case} {'x'.join(map(str, r.shape))}", r.pass_, r.provider,
                     "-" if r.median_ms is None else f"{r.median_ms:.4f}", _num(r.speedup_vs_eager, "x"),
                     _num(r.speedup_vs_compile, "x"), _num(r.pct_peak_bw, "%"), _num(r.pct_peak_flops, "%"),
                     r.status if r.status == "ok" else f"{r.status}: {r.reason[:60]}"])
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if 3 <= i <= 7 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(head).rstrip(), "  ".join("-" * w for w in widths)] + [fmt(b).rstrip() for b in body])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", action="store_true", help="print the counted work and the estimate; run nothing")
    p.add_argument("--budget", type=float, help="with --plan: exit 1 if the estimate exceeds this many seconds")
    p.add_argument("--device", default=None, help="cuda (default when visible) or cpu")
    p.add_argument("--quick", action="store_true", help="each op's first --quick case and quick timing (CPU, CI)")
    p.add_argument("--op", dest="ops", action="extend", nargs="+", metavar="OP", help="only these ops' rows")
    p.add_argument("--provider", dest="providers", action="extend", nargs="+", metavar="NAME",
                   help="only these providers (eager, compile, ganfast-auto, ganfast-triton, ...)")
    p.add_argument("--json", metavar="FILE", help="write every row and the metadata (after every case)")
    p.add_argument("--summary", metavar="FILE", help="write the short table to FILE")
    a = p.parse_args(argv)

    selected = select(a.quick, a.ops)
    if a.plan:
        total, lines = estimate(selected, a.providers)
        print(f"gpu_bench plan: {len(selected)} cases, "
              f"{sum(len(s[3]) for s in selected)} (case, pass) pairs, on an H200 (leads: see the constants)")
        print("\n".join(lines))
        print(f"estimate: {total:.0f} s (startup {STARTUP_S:.0f} s included)"
              + (f"; budget {a.budget:.0f} s" if a.budget else ""))
        return 1 if a.budget and total > a.budget else 0

    import torch

    from ganfast.bench.peak import measure_peaks
    from ganfast.bench.report import CPU_WARNING, collect_meta, format_table, header_lines, write_json
    from ganfast.bench.runner import BenchConfig, Runner

    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    meta = collect_meta(device)
    meta["command"] = " ".join(["python bench/gpu_bench.py", *(argv if argv is not None else sys.argv[1:])])
    warnings = [CPU_WARNING] if device.type == "cpu" else []
    peaks = None
    rows: List[Any] = []
    unavailable: Dict[str, Dict[str, str]] = {}
    timing = ""
    done = 0

    class IssueRunner(Runner):
        keep: Optional[IssueRow] = None

        def providers(self, op: str):
            return [q for q in super().providers(op) if _keep(self.keep, a.providers, q)]

    def finish(interrupted: bool) -> int:
        print("\n".join(header_lines(meta, peaks, timing)))
        print(f"cases: the issue shapes of bench/gpu_bench.py ({done} of {len(selected)} run"
              + (", STOPPED by SIGTERM" if interrupted else "") + ")")
        for op, missing in unavailable.items():
            for name, reason in missing.items():
                print(f"not timed: {op} {name}: {reason}")
        print()
        print(format_table(rows))
        if a.json:
            write_json(a.json, meta, peaks, rows, warnings, unavailable, timing)
            with open(a.json) as f:
                doc = json.load(f)
            doc["issue_cases"] = {"run": done, "selected": len(selected), "interrupted": interrupted,
                                  "not_run": [f"{c.op} {c.name} {c.shape_str}" for _, c, _, _ in selected[done:]]}
            with open(a.json, "w") as f:
                json.dump(doc, f, indent=1)
        if a.summary:
            with open(a.summary, "w") as f:
                f.write(compact(rows) + "\n")
        bad = [r for r in rows if r.status in ("error", "mismatch")]
        if interrupted:
            return 124
        return 1 if bad else 0

    def stopped(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stopped)
    start = time.perf_counter()
    try:
        progress(f"measuring peak bandwidth and bf16 matmul rate on {device} ...")
        peaks = measure_peaks(device, quick=a.quick)
        for row, case, dname, passes in selected:
            config = BenchConfig(device=device, quick=a.quick, dtypes=[dname], passes=list(passes))
            tc = config.timer_config()
            timing = (f"CUDA events per repetition, median and 20/80% quantiles; warm-up {tc.warmup_ms:g} ms, "
                      f"{tc.rep_ms:g} ms of repetitions ({tc.min_reps}-{tc.max_reps}); L2 flushed before each"
                      if device.type == "cuda" else
                      f"time.perf_counter per call; {tc.warmup} warm-up call(s), {tc.min_reps}-{tc.max_reps} reps")
            runner = IssueRunner(config, peaks=peaks, progress=progress)
            runner.keep = row
            t0 = time.perf_counter()
            unavailable.setdefault(case.op, runner.unavailable(case.op))
            rows.extend(runner.run([case]))
            done += 1
            progress(f"done  {case.op} {case.name} {case.shape_str} {dname} {'/'.join(passes)}: "
                     f"{time.perf_counter() - t0:.1f} s (total {time.perf_counter() - start:.1f} s)")
            if a.json:
                write_json(a.json, meta, peaks, rows, warnings, unavailable, timing)
    except KeyboardInterrupt:
        code = finish(True)
        sys.stdout.flush()
        return code
    return finish(False)


if __name__ == "__main__":
    sys.exit(main())
