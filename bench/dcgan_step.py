"""A whole DCGAN training iteration: ganfast against torch.nn and torch.compile, interleaved.

    python bench/dcgan_step.py [--model ganfast|examples] [--size 64] [--batch 128] [--amp bf16]
                               [--iters 50] [--warmup 10] [--providers torch.nn ganfast compile] [--json OUT.json]

The defaults are issue 7's GPU target: at 64x64, batch 128, bf16, the
iteration of ``ganfast train --model dcgan``'s networks with ganfast's fused
layers at least 1.3x faster than the same networks built from torch.nn.
Issue 13's CPU rows: ``--model examples --amp none --channels 1 --size 16
--batch 128`` and ``--size 32 --batch 64`` (the PyTorch examples' DCGAN,
converted with ``ganfast.nn.convert``, against itself unconverted), at least
1.0x.  The providers are timed interleaved, one iteration each per round
(:mod:`ganfast.bench.dcgan_step`); ``--quick`` is a smoke test (16x16, batch
8, 3 rounds).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import torch

import ganfast
from ganfast.bench.dcgan_step import PROVIDERS, format_result, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["ganfast", "examples"], default="ganfast")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    p.add_argument("--iters", type=int, default=50, help="timed interleaved rounds")
    p.add_argument("--warmup", type=int, default=10, help="untimed rounds first (torch.compile compiles here)")
    p.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    p.add_argument("--backend", default="auto", help="ganfast backend for the ganfast provider")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="16x16, batch 8, 3 rounds after 1 warm-up (a smoke test)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.size, a.batch, a.iters, a.warmup = 16, 8, 3, 1
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with ganfast.use_backend(a.backend):
        res = run(a.model, a.size, a.batch, a.channels, device, a.amp, a.iters, a.warmup, a.providers)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    res["meta"] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"{platform.processor() or 'cpu'} ({torch.get_num_threads()} threads)",
                   "torch": torch.__version__, "ganfast": ganfast.__version__, "commit": commit,
                   "date": time.strftime("%Y-%m-%d %H:%M:%S"), "backend": a.backend}
    print(format_result(res))
    if a.quick:
        print("  (--quick: a smoke test of 3 rounds at 16x16 batch 8, not a measurement)")
    print(f"  on {res['meta']['device']}, torch {res['meta']['torch']}, commit {commit}, {res['meta']['date']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
