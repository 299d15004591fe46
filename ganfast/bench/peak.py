"""The two ceilings every row is compared with, measured on the device at start.

Datasheet numbers are not what a kernel can reach on this card with these
clocks, so ``ganfast bench`` measures them once per run:

* bandwidth: a large device-to-device copy (``dst.copy_(src)``), counting the
  bytes read plus the bytes written, over the median time.  The buffer is far
  larger than L2, so this is device-memory bandwidth.
* arithmetic: a large bf16 matrix product through whatever library torch uses
  (cuBLAS), ``2*M*N*K`` flops over the median time.

Inputs are random, never zeros: a matrix product of zeros can run measurably
faster than one of real data.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

import torch

from .timing import Stats, TimerConfig, gbps, make_timer, tflops


@dataclasses.dataclass(frozen=True)
class Peaks:
    bandwidth_gbps: float
    copy_bytes: int  # bytes read + written per copy
    copy_ms: float
    flops_tflops: float
    matmul_n: int
    matmul_dtype: str
    matmul_ms: float

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (
            f"copy {self.bandwidth_gbps:,.1f} GB/s ({self.copy_bytes / 2 / 2**20:,.0f} MiB device-to-device, "
            f"read+written) | {self.matmul_dtype} matmul {self.matmul_n}^3 {self.flops_tflops:,.2f} TFLOP/s"
        )


def _sizes(device_type: str, quick: bool):
    """(copy buffer bytes, square matmul size)."""
    if device_type == "cuda":
        # 1 GiB: twenty times an H100's L2.  8192^3 bf16: ~1.1 TFLOP, ~2 ms.
        return (256 << 20, 4096) if quick else (1 << 30, 8192)
    return (16 << 20, 512) if quick else (64 << 20, 1024)


def measure_peaks(device: torch.device, quick: bool = False) -> Peaks:
    """Measure copy bandwidth and bf16 matmul rate on ``device``."""
    copy_bytes, n = _sizes(device.type, quick)
    cfg = TimerConfig.quick(device.type) if quick else TimerConfig.full(device.type)
    # A buffer this size is not cached anyway; flushing would only cost time.
    cfg = dataclasses.replace(cfg, flush_l2=False)
    timer = make_timer(device, cfg)
    gen = torch.Generator(device=device).manual_seed(0)

    src = torch.randint(0, 256, (copy_bytes,), dtype=torch.uint8, device=device, generator=gen)
    dst = torch.empty_like(src)
    copy = Stats.of(timer(lambda: dst.copy_(src)))
    del src, dst

    a = torch.randn(n, n, device=device, generator=gen).to(torch.bfloat16)
    b = torch.randn(n, n, device=device, generator=gen).to(torch.bfloat16)
    mm = Stats.of(timer(lambda: torch.mm(a, b)))
    del a, b
    if device.type == "cuda":
        torch.cuda.empty_cache()

    return Peaks(
        bandwidth_gbps=gbps(2 * copy_bytes, copy.median),
        copy_bytes=2 * copy_bytes,
        copy_ms=copy.median,
        flops_tflops=tflops(2 * n**3, mm.median),
        matmul_n=n,
        matmul_dtype="bfloat16",
        matmul_ms=mm.median,
    )
