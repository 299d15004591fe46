"""Dtype rules shared by the references, the host launchers and the kernels.

A leaf (imports nothing of ganfast), so ``kernels/`` and ``ganfast.ref`` can
both follow one rule without importing each other.

The rule every op follows: storage in float16, bfloat16, float32 or float64;
arithmetic in float32, except float64 inputs, which compute in float64.  Half
precision has 8 (bfloat16) or 11 (float16) significant bits, too few for sums
over a batch or a softmax row, and float32 is what tensor cores accumulate in
anyway; float64 stays float64 so that gradcheck and the float64 reference can
judge the fast path to ~1e-12.
"""

from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["FLOAT_DTYPES", "FLOAT_DTYPES_TEXT", "HALF_DTYPES", "compute_dtype"]

#: The storage dtypes every op accepts.
FLOAT_DTYPES: Tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

#: How messages name :data:`FLOAT_DTYPES`.
FLOAT_DTYPES_TEXT = "float16, bfloat16, float32 or float64"

#: 16-bit storage: computed in float32, rounded once on the way out.
HALF_DTYPES: Tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in for ``dtype`` storage: float64 stays float64, the rest compute in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
