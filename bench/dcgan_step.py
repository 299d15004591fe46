"""A whole DCGAN training iteration, ganfast layers against the same model in torch.nn layers.

    python bench/dcgan_step.py [--size 64] [--batch 128] [--amp bf16] [--iters 50] [--json OUT.json]

Issue 7's GPU target: at 64x64, batch 128, bf16, the iteration (one D step on
a real and a fake batch, one G step, Adam updates) with ganfast's fused
layers at least 1.3x faster than the same networks built from torch.nn
(Conv2d/ConvTranspose2d -> BatchNorm2d -> activation).  Both models hold the
same weights; the torch.nn one is the fused model with every fused block
replaced by ``Sequential(conv, bn, act)`` of the same modules.  Timed with
CUDA events after warm-up; median and 20/80 percentiles over ``--iters``
iterations.  On a CPU the numbers say nothing about a GPU (use --quick there
to check that the script runs).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import subprocess
import sys
import time
from collections import OrderedDict

import torch
from torch import nn

import ganfast
from ganfast.models import StepContext, build


def unfuse(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose fused conv blocks are plain torch.nn (same weights, same keys)."""
    out = copy.deepcopy(module)
    fused = (ganfast.nn.ConvBNLeakyReLU2d, ganfast.nn.ConvTransposeBNReLU2d)
    for name, child in list(out.named_modules()):
        for cname, c in list(child.named_children()):
            if isinstance(c, fused):
                act = nn.LeakyReLU(c.negative_slope) if c.negative_slope > 0 else nn.ReLU()
                setattr(child, cname, nn.Sequential(OrderedDict(conv=c.conv, bn=c.bn, act=act)))
    return out


class _Amp(StepContext):
    def __init__(self, device: torch.device, amp: str) -> None:
        super().__init__()
        self.device, self.amp = device, amp

    def autocast(self):
        if self.amp == "none":
            import contextlib
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def _time(model, opts, real, ctx, iters: int, warmup: int):
    def next_batch():
        return real, None
    times = []
    cuda = real.is_cuda
    for i in range(warmup + iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        model.train_step(next_batch, opts, ctx)
        if cuda:
            end.record()
            torch.cuda.synchronize()
            ms = start.elapsed_time(end)
        else:
            ms = (time.perf_counter() - t0) * 1e3
        if i >= warmup:
            times.append(ms)
    q = statistics.quantiles(times, n=5) if len(times) >= 5 else [min(times)] * 4
    return {"median_ms": statistics.median(times), "p20_ms": q[0], "p80_ms": q[3]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="16x16, batch 8, 3 iterations (a smoke test)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.size, a.batch, a.iters, a.warmup = 16, 8, 3, 1
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    fused = build("dcgan", sample_shape=(a.channels, a.size, a.size)).to(device)
    plain = copy.deepcopy(fused)
    plain.G = unfuse(fused.G)
    plain.D = unfuse(fused.D)
    n_fused = sum(isinstance(m, (ganfast.nn.ConvBNLeakyReLU2d, ganfast.nn.ConvTransposeBNReLU2d))
                  for m in fused.modules())
    assert n_fused > 0 and not any(isinstance(m, (ganfast.nn.ConvBNLeakyReLU2d, ganfast.nn.ConvTransposeBNReLU2d))
                                   for m in plain.modules())
    real = (torch.rand(a.batch, a.channels, a.size, a.size, device=device) * 2 - 1)
    ctx = _Amp(device, a.amp)
    rows = {}
    with ganfast.use_backend(a.backend):
        rows["ganfast"] = _time(fused, fused.make_optimizers(), real, ctx, a.iters, a.warmup)
    rows["torch.nn"] = _time(plain, plain.make_optimizers(), real, ctx, a.iters, a.warmup)
    speedup = rows["torch.nn"]["median_ms"] / rows["ganfast"]["median_ms"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "ganfast": ganfast.__version__, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "size": a.size, "batch": a.batch, "amp": a.amp,
            "backend": a.backend, "fused_blocks": n_fused}
    print(f"DCGAN {a.size}x{a.size} training iteration, batch {a.batch}, amp {a.amp}, on {meta['device']}"
          f" (torch {meta['torch']}, commit {commit})")
    for k, r in rows.items():
        print(f"  {k:<9} median {r['median_ms']:8.2f} ms   p20 {r['p20_ms']:8.2f}   p80 {r['p80_ms']:8.2f}")
    print(f"  speedup of ganfast over torch.nn: {speedup:.2f}x (target on a GPU: >= 1.3x)")
    if device.type == "cpu":
        print("  (CPU timings: not a measurement of the GPU target)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "speedup": speedup}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
