"""One CycleGAN training iteration with ganfast's fused layers against the same networks in torch.nn (issue 16).

    python bench/cyclegan_step.py [--resolution 256] [--batch 1] [--amp bf16|fp16|none] [--device cuda|cpu]
                                  [--ngf 64] [--ndf 64] [--iters 10] [--warmup 3] [--json OUT.json]

An iteration is what ``ganfast train --model cyclegan`` runs per step: the G
phase (four generator passes for the translations and cycles, two for the
identity loss, both discriminators) and the D phase (both discriminators on
real images and pooled fakes), with their Adam steps.  Providers:
``torch.nn`` (``fused=False``: the released layout of Conv2d, InstanceNorm2d,
ReLU / LeakyReLU modules) and ``ganfast`` (``fused=True``: every
``Conv -> InstanceNorm -> ReLU/LeakyReLU`` run converted by
:func:`ganfast.nn.convert`, so ``ganfast.ops.instance_norm_act`` on its
``auto`` backend), the same weights.  Defaults: the paper's 256x256 RGB setting
(9 residual blocks, ngf = ndf = 64, batch 1), bf16 autocast, jitter off.
Times are medians of ``--iters`` after ``--warmup``.  On a CPU use a small
``--resolution`` and widths: the numbers are then the CPU's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time


def run(provider: str, args) -> dict:
    import torch

    import ganfast
    from ganfast.data import Batch
    from ganfast.models import StepContext, build

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = build("cyclegan", sample_shape=[3, args.resolution, args.resolution], ngf=args.ngf, ndf=args.ndf,
                  n_layers_d=args.n_layers_d, jitter=False, fused=provider == "ganfast").to(device)
    opts = model.make_optimizers()
    g = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.resolution, args.resolution)
    batch = Batch(image=(torch.rand(shape, generator=g) * 2 - 1).to(device),
                  target=(torch.rand(shape, generator=g) * 2 - 1).to(device))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    ctx = StepContext()
    if dtype is not None:
        ctx.autocast = lambda: torch.autocast(device.type, dtype=dtype)
    times = []
    for i in range(args.warmup + args.iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        model.train_step(lambda: batch, opts, ctx)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    return {"provider": provider, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "iters": args.iters, "device": str(device), "resolution": args.resolution, "batch": args.batch,
            "amp": args.amp, "ngf": args.ngf, "ndf": args.ndf, "n_blocks": model.options.n_blocks,
            "torch": torch.__version__, "ganfast": ganfast.__version__}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    p.add_argument("--device", default=None)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--n-layers-d", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = [run(provider, args) for provider in ("torch.nn", "ganfast")]
    ref, fast = rows
    for r in rows:
        print(f"{r['provider']:>9}  {r['median_s'] * 1e3:9.1f} ms  (min {r['min_s'] * 1e3:.1f}, max "
              f"{r['max_s'] * 1e3:.1f}; {r['iters']} iterations)")
    print(f"cyclegan {args.resolution}x{args.resolution}, batch {args.batch}, amp {args.amp}, {fast['device']}, "
          f"torch {fast['torch']}: ganfast {ref['median_s'] / fast['median_s']:.2f}x the torch.nn layers")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
