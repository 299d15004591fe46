"""Device and host helpers every Triton kernel file shares.

* float64 scalars: Triton passes a Python float to a kernel as float32, so a
  float64 scalar (a leaky-ReLU slope, an eps, 1 / count) would lose all but 24
  bits.  :func:`split_scalar` sends it as two float32s, hi + lo (48
  significant bits), and :func:`scalar` rebuilds it in the accumulation
  dtype: the float64 paths are then exact to ~1e-14 instead of float32's 1e-7.
* :func:`flat_offsets`: one program's block of a flat walk over ``n``
  elements, with 64-bit offsets where ``n + BLOCK`` may pass 2^31.
* :func:`acc_type`: the Triton accumulation dtype of ganfast's dtype rule
  (:mod:`ganfast._dtypes`: float32, float64 for float64 inputs).
* :func:`dot_upcast`: whether ``tl.dot`` operands must be widened first (the
  CPU interpreter misreads bfloat16 ones).

Nothing here queries a device at import.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import triton
import triton.language as tl

from ganfast._dtypes import compute_dtype
from ganfast.kernels import INTERPRET

__all__ = ["acc_type", "dot_upcast", "flat_offsets", "scalar", "split_scalar"]


@triton.jit
def scalar(hi, lo, ACC: tl.constexpr):
    """The float64-exact scalar sent as ``split_scalar(v)``, in the accumulation dtype ``ACC``."""
    return tl.cast(hi, ACC) + tl.cast(lo, ACC)


@triton.jit
def flat_offsets(n, BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    """This program's ``BLOCK`` offsets of a flat walk over ``n`` elements, and their mask."""
    pid = tl.program_id(0)
    if INDEX64:
        start = pid.to(tl.int64) * BLOCK
    else:
        start = pid * BLOCK
    offs = start + tl.arange(0, BLOCK)
    return offs, offs < n


def split_scalar(v: float) -> Tuple[float, float]:
    """``v`` as float32 hi + lo, for :func:`scalar`."""
    hi = float(np.float32(v))
    return hi, float(np.float32(v - hi))


def acc_type(dtype: torch.dtype) -> tl.dtype:
    """Triton's accumulation dtype for ``dtype`` storage: tl.float64 for float64, else tl.float32."""
    return tl.float64 if compute_dtype(dtype) == torch.float64 else tl.float32


@triton.jit
def round_bf16(v):
    """float32 ``v`` rounded to the nearest bfloat16 (ties to even), kept as float32.

    What ``v.to(tl.bfloat16)`` gives on a GPU; the CPU interpreter (triton
    3.9) truncates instead, even with ``fp_downcast_rounding="rtne"``.  For
    kernels that round a float32 product to bfloat16 and then, under the
    interpreter (:func:`dot_upcast`), feed it to a float32 dot.  Finite
    inputs only (NaN payloads and overflow to inf are not modelled).
    """
    bits = v.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


def dot_upcast(dtype: torch.dtype) -> bool:
    """Whether ``tl.dot`` must see float32 operands for ``dtype`` storage.

    The CPU interpreter (triton 3.6 and 3.9) keeps bfloat16 as uint16 and its
    dot multiplies those integers.  Widening is exact (bfloat16 products are
    exact in float32), so the result is what a GPU's bfloat16 MMA with float32
    accumulation gives.  On a GPU the operands stay as they are.
    """
    return INTERPRET and dtype == torch.bfloat16
