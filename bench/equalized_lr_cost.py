"""What equalized lr's per-forward weight scaling costs in ProGAN's networks (issue 14, item 2).

    python bench/equalized_lr_cost.py [--device cpu|cuda] [--amp bf16|none] [--repeats 5]

``ganfast.nn.equalized_lr`` multiplies each stored N(0, 1) weight by
gain / sqrt(fan_in) at every forward (Karras et al. 2018, sec. 4.1).  Folding
that scale into the convolution kernels would save one elementwise pass over
the *weights* (not the activations) per layer and step.  This script times
G(z) -> D -> backward with the parametrisation and again with the scale
baked into plain weights (the same numbers, no per-forward multiply); the
difference is the most folding could win.  Median of ``--repeats`` after one
warm-up.  CPU (2026-12-01, 2 cores, alone): 32x32 batch 8 3134 vs 3185 ms
(-1.6%), 64x64 batch 4 (fmap_max 256) 1642 vs 1591 ms (3.1%): within the
noise, so the scale is not folded into the kernels.  GPU: unmeasured.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch.nn.utils import parametrize

from ganfast.models import build


def _time(m, z, device: str, amp: str, repeats: int) -> float:
    ctx = torch.autocast(device, dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
    times = []
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with ctx:
            out = m.D(m.G(z, 0.0), 0.0).float().sum()
        out.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cases", default="32:512:8,64:256:4", help="side:fmap_max:batch, comma separated")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    for case in args.cases.split(","):
        side, fmap_max, batch = (int(v) for v in case.split(":"))
        m = build("progan", sample_shape=[3, side, side], fmap_base=8192, fmap_max=fmap_max).to(args.device)
        z = torch.randn(batch, m.options.latent_dim, device=args.device)
        scaled = _time(m, z, args.device, args.amp, args.repeats)
        for mod in list(m.modules()):
            if parametrize.is_parametrized(mod, "weight"):
                parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
        plain = _time(m, z, args.device, args.amp, args.repeats)
        print(f"{side}x{side} fmap_max {fmap_max} batch {batch} ({args.device}, amp {args.amp}): equalized_lr "
              f"{scaled * 1e3:.1f} ms, weights pre-scaled {plain * 1e3:.1f} ms, "
              f"share {(scaled - plain) / scaled * 100:+.1f}%")


if __name__ == "__main__":
    main()
