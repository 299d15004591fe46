"""One StyleGAN2 training iteration on ganfast's ops against the same networks on the reference ops (issue 15, item 5).

    python bench/stylegan2_step.py [--resolution 256] [--batch 16] [--amp bf16|none] [--device cuda|cpu]
                                   [--channel-base 16384] [--channel-max 512] [--iters 10] [--warmup 3]
                                   [--json OUT.json]

An iteration is what ``ganfast train --model stylegan2`` runs on a step where
every phase is due: Gmain, Greg (path length, half the batch), Dmain, Dreg
(R1), with their Adam steps.  Providers: ``ganfast`` (the networks as built:
ganfast.ops, each op on its ``auto`` backend) and ``reference`` (the same
networks, same weights, with every op call routed to ``ganfast.ref``:
per-sample-weight modulated convolution, eager upfirdn2d, bias + activation
as separate PyTorch ops).  Defaults: stylegan2-ada-pytorch's paper256 config
(``cbase`` 16384, ``cmax`` 512, an 8-layer mapping network), batch 16, bf16
autocast.  Times are medians of ``--iters`` after ``--warmup``; the issue's
GPU target is ganfast >= 1.3x the reference.  On a CPU use a small
``--resolution`` and channel count: the numbers are then the CPU's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time


def _reference_ops():
    """An ``ops`` namespace for ganfast.models.nets.stylegan2 whose calls go to ganfast.ref."""
    import types

    import ganfast
    from ganfast.ref import bias_act as ref_bias_act
    from ganfast.ref import modulated_conv2d as ref_mc
    from ganfast.ref import upfirdn2d as ref_ufd

    def modulated_conv2d(x, w, s, demodulate=True, up=1, down=1, padding=0, resample_filter=None, noise=None):
        return ref_mc.modulated_conv2d(x, w, s, noise, resample_filter, demodulate, up, down, padding)

    def upsample2d(x, f):  # up 2 with a 4-tap filter: padding (2, 1) per axis, gain 4
        return ref_ufd.upfirdn2d(x, f, (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0)

    def conv2d_resample(x, w, f, down=1, padding=0):
        return ref_mc.conv2d_resample(x, w, f, 1, down, padding)

    return types.SimpleNamespace(modulated_conv2d=modulated_conv2d, bias_act=ref_bias_act.bias_act,
                                 upsample2d=upsample2d, conv2d_resample=conv2d_resample,
                                 setup_filter=ganfast.ops.setup_filter)


def run(provider: str, args) -> dict:
    import torch

    import ganfast
    from ganfast.data import Batch
    from ganfast.models import StepContext, build
    from ganfast.models.nets import stylegan2 as nets

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    original = nets.ops
    if provider == "reference":
        nets.ops = _reference_ops()
    try:
        torch.manual_seed(0)
        model = build("stylegan2", sample_shape=[3, args.resolution, args.resolution], channel_base=args.channel_base,
                      channel_max=args.channel_max, mapping_layers=args.mapping_layers).to(device)
        opts = model.make_optimizers()
        x = torch.rand(args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
        ctx = StepContext()
        if dtype is not None:
            ctx.autocast = lambda: torch.autocast(device.type, dtype=dtype)
        times = []
        for i in range(args.warmup + args.iters):
            ctx.step = 0  # step 0: every phase is due (Gmain, Greg, Dmain, Dreg)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            model.train_step(lambda: Batch(image=x), opts, ctx)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t)
    finally:
        nets.ops = original
    return {"provider": provider, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "iters": args.iters, "device": str(device), "resolution": args.resolution, "batch": args.batch,
            "amp": args.amp, "channel_base": args.channel_base, "channel_max": args.channel_max,
            "torch": torch.__version__, "ganfast": ganfast.__version__}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    p.add_argument("--device", default=None)
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--mapping-layers", type=int, default=8)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = [run(provider, args) for provider in ("reference", "ganfast")]
    ref, fast = rows
    for r in rows:
        print(f"{r['provider']:>9}  {r['median_s'] * 1e3:9.1f} ms  (min {r['min_s'] * 1e3:.1f}, max "
              f"{r['max_s'] * 1e3:.1f}; {r['iters']} iterations)")
    print(f"stylegan2 {args.resolution}x{args.resolution}, batch {args.batch}, amp {args.amp}, {fast['device']}, "
          f"torch {fast['torch']}: ganfast {ref['median_s'] / fast['median_s']:.2f}x the reference ops "
          f"(target on a GPU: >= 1.3x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
