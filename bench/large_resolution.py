"""Peak memory and time of one ProGAN training iteration at large resolutions, with and without
activation checkpointing (issue 14, item 3).

    python bench/large_resolution.py [--resolutions 256 512 1024] [--batch 4] [--amp bf16|none]
                                     [--channels-last] [--device cuda|cpu] [--json OUT.json]

One iteration is what ``ganfast train --model progan`` runs at full resolution
(lod 0): a D step (WGAN-GP: D on reals and fakes, the gradient penalty's
double backward, the drift term) and a G step, Adam on both, with the
paper's networks (fmap_base 8192, fmap_max 512, latent 512; options to
shrink them).  Each configuration runs in its own process, ``--warmup``
iterations then ``--iters`` timed ones (median).  Memory: on CUDA the peak of
``torch.cuda.max_memory_allocated`` over the timed iterations; on the CPU the
process's peak resident set size (``ru_maxrss``) minus its size after the
networks and optimisers were built, which counts activations, gradients and
optimiser state (and the allocator's slack): a CPU number, not a GPU one.
The issue's GPU target: at 1024x1024, batch 4, bf16, checkpointing uses at
most 60% of the peak memory without it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_one(res: int, batch: int, checkpoint: bool, amp: str, channels_last: bool, device: str, iters: int,
            warmup: int, fmap_base: int, fmap_max: int) -> dict:
    import torch

    from ganfast.losses import gradient_penalty
    from ganfast.models import build

    dev = torch.device(device)
    torch.manual_seed(0)
    model = build("progan", sample_shape=[3, res, res], fmap_base=fmap_base, fmap_max=fmap_max,
                  checkpoint_blocks=checkpoint)
    G, D = model.G.to(dev), model.D.to(dev)
    G.lod.fill_(0.0)
    D.lod.fill_(0.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G.to(memory_format=fmt)
    D.to(memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    reals = torch.rand(batch, 3, res, res, device=dev).mul_(2).sub_(1).contiguous(memory_format=fmt)

    def autocast():
        return torch.autocast(dev.type, dtype=dtype) if dtype is not None else torch.autocast(dev.type, enabled=False)

    def iteration():
        z = torch.randn(batch, G.latent_dim, device=dev)
        with autocast():
            fake = G(z).detach()
            d_real, d_fake = D(reals), D(fake)
            gp = gradient_penalty(D, reals, fake)  # as progan's D step: x_hat in float32, D under autocast
            loss_d = d_fake.float().mean() - d_real.float().mean() + 10 * gp + 1e-3 * d_real.float().square().mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            loss_g = -D(G(torch.randn(batch, G.latent_dim, device=dev))).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    base = _rss_bytes()
    for _ in range(warmup):
        iteration()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        iteration()
        sync()
        times.append(time.perf_counter() - t)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
        what = "torch.cuda.max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        what = "peak RSS above the built model (CPU)"
    return {"resolution": res, "batch": batch, "checkpoint_blocks": checkpoint, "amp": amp,
            "channels_last": channels_last, "device": str(dev), "median_s": statistics.median(times),
            "peak_bytes": int(peak), "memory": what, "iters": iters}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--fmap-base", type=int, default=8192)
    p.add_argument("--fmap-max", type=int, default=512)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child: one configuration, JSON out
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.one is not None:
        res, ckpt = a.one.split(",")
        print(json.dumps(run_one(int(res), a.batch, ckpt == "1", a.amp, a.channels_last, device, a.iters,
                                 a.warmup, a.fmap_base, a.fmap_max)))
        return 0
    rows = []
    for res in a.resolutions:
        for ckpt in (False, True):
            cmd = [sys.executable, os.path.abspath(__file__), "--one", f"{res},{int(ckpt)}", "--batch", str(a.batch),
                   "--amp", a.amp, "--device", device, "--iters", str(a.iters), "--warmup", str(a.warmup),
                   "--fmap-base", str(a.fmap_base), "--fmap-max", str(a.fmap_max)]
            cmd += ["--channels-last"] if a.channels_last else []
            cmd += ["--threads", str(a.threads)] if a.threads else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                row = {"resolution": res, "checkpoint_blocks": ckpt, "error": proc.stderr.strip().splitlines()[-1:]}
            else:
                row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            if "error" in row:
                print(f"{res:>5} checkpoint={ckpt!s:<5} FAILED {row['error']}", flush=True)
                continue
            plain = next((r for r in rows if r["resolution"] == res and not r["checkpoint_blocks"] and "error" not in r),
                         None)
            ratio = f"  memory {row['peak_bytes'] / plain['peak_bytes']:.0%} of without" if ckpt and plain else ""
            print(f"{res:>5} checkpoint={ckpt!s:<5} {row['median_s'] * 1e3:10.1f} ms  peak {row['peak_bytes'] / 2**20:9.1f} MiB"
                  f" ({row['memory']}){ratio}", flush=True)
    print(f"batch {a.batch}, amp {a.amp}, channels_last {a.channels_last}, {device}, torch {torch.__version__}, "
          f"fmap_base {a.fmap_base}, fmap_max {a.fmap_max}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
