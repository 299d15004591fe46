"""The ``ganfast bench`` command: measure peaks, run the cases, print one table."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

import torch

from . import STEPS, bench_names, check_ops, load_cases
from .case import PASSES, dtype_name
from .peak import measure_peaks
from .report import CPU_WARNING, collect_meta, cpu_banner, format_table, header_lines, write_json
from .runner import BenchConfig, Runner


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", dest="ops", action="extend", nargs="+", metavar="NAME",
                   help=f"op(s) to benchmark (default: all: {', '.join(bench_names())}; fid = sqrtm_trace + "
                        f"feature_stats; dcgan_step = a whole DCGAN training iteration, ganfast against torch.nn "
                        f"and torch.compile)")
    p.add_argument("--json", metavar="FILE", help="also write every row and the run's metadata to FILE")
    p.add_argument("--quick", action="store_true",
                   help="a few small cases, few repetitions (CI; tens of seconds on a CPU)")
    p.add_argument("--dtype", dest="dtypes", action="extend", nargs="+", metavar="DTYPE",
                   help="bf16, fp16 and/or fp32 (default: each case's own; --quick on a CPU: fp32)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when a CUDA device is visible, else cpu)")
    p.add_argument("--pass", dest="passes", action="extend", nargs="+", choices=PASSES, metavar="PASS",
                   help="fwd and/or fwd+bwd (default: both)")


def _device(arg: Optional[str]) -> torch.device:
    if arg is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(arg)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {arg}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type != "cpu":
        raise ValueError(f"--device must be cpu or cuda[:N]; got {arg!r}")
    return dev


def _err(msg: str) -> None:
    print(f"ganfast bench: error: {msg}", file=sys.stderr)


#: The whole-step shapes: the CPU's are issue 13's (the README's main job, 16x16 batch 128, and 32x32
#: batch 64, float32); the GPU's issue 7's (64x64 batch 128 in bf16).  ``--quick``: a smoke test.
STEP_SHAPES = {
    "cpu": [dict(size=16, batch=128, channels=1, amp="none", rounds=16, warmup=3),
            dict(size=32, batch=64, channels=1, amp="none", rounds=16, warmup=3)],
    "cuda": [dict(size=64, batch=128, channels=3, amp="bf16", rounds=50, warmup=10)],
    "quick": [dict(size=16, batch=8, channels=1, amp="none", rounds=3, warmup=1)],
}


def _run_steps(name: str, device: torch.device, quick: bool, progress) -> List[dict]:
    """Each shape of the whole-step benchmark ``name``; ``torch.compile`` is left out of ``--quick``."""
    import importlib

    module = importlib.import_module(STEPS[name])
    results = []
    for shape in STEP_SHAPES["quick" if quick else device.type]:
        providers = ("torch.nn", "ganfast") if quick else module.PROVIDERS
        progress(f"time  {name} {shape}: {', '.join(providers)} interleaved")
        res = module.run("examples", device=device, providers=providers, **shape)
        res["name"] = name
        res["text"] = module.format_result(res)
        results.append(res)
    return results


def run(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    try:
        ops = check_ops(args.ops) if args.ops else bench_names()
        device = _device(args.device)
        dtypes: Optional[List[str]] = [dtype_name(d) for d in args.dtypes] if args.dtypes else None
    except ValueError as err:
        _err(str(err))
        return 2
    if dtypes is None and args.quick and device.type == "cpu":
        dtypes = ["float32"]  # bf16 arithmetic on a CPU is emulated: slow and no more telling
    passes = list(dict.fromkeys(args.passes)) if args.passes else list(PASSES)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    meta = collect_meta(device, argv)
    on_cpu = device.type == "cpu"
    warnings = [CPU_WARNING] if on_cpu else []
    if on_cpu:
        print(cpu_banner(), flush=True)
    progress(f"measuring peak bandwidth and bf16 matmul rate on {device} ...")
    peaks = measure_peaks(device, quick=args.quick)

    config = BenchConfig(device=device, quick=args.quick, dtypes=dtypes, passes=passes)
    tc = config.timer_config()
    if device.type == "cuda":
        timing = (f"CUDA events per repetition, median and 20/80% quantiles; warm-up {tc.warmup_ms:g} ms, "
                  f"{tc.rep_ms:g} ms of repetitions ({tc.min_reps}-{tc.max_reps}); "
                  f"L2 flushed (256 MiB written) before every repetition")
    else:
        timing = (f"time.perf_counter per call, median and 20/80% quantiles; {tc.warmup} warm-up call(s), "
                  f"{tc.min_reps}-{tc.max_reps} repetitions")
    runner = Runner(config, peaks=peaks, progress=progress)

    rows = []
    unavailable = {}
    steps = [op for op in ops if op in STEPS]
    for op in [op for op in ops if op not in STEPS]:
        cases = load_cases(op, quick=args.quick)
        unavailable[op] = runner.unavailable(op)
        rows.extend(runner.run(cases))

    print("\n".join(header_lines(meta, peaks, timing)))
    for op, missing in unavailable.items():
        for name, reason in missing.items():
            print(f"not timed: {op} {name}: {reason}")
    print()
    print(format_table(rows))
    reasons = sorted({r.reason for r in rows if r.status != "ok" and r.reason})
    long = [r for r in reasons if len(r) > 90]
    if long:
        print("\nnotes (full text of shortened reasons):")
        for r in long:
            print(f"  - {r}")
    step_results = [result for name in steps for result in _run_steps(name, device, args.quick, progress)]
    for result in step_results:
        print()
        print(result.pop("text"))
    if on_cpu:
        print()
        print(cpu_banner())
    if args.json:
        write_json(args.json, meta, peaks, rows, warnings, unavailable, timing, step_results)
        print(f"\nwrote {args.json}")
    bad = [r for r in rows if r.status in ("error", "mismatch")]
    if bad:
        _err(f"{len(bad)} row(s) failed (error or mismatch); see the note column")
        return 1
    return 0
