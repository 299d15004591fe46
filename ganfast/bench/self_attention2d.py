"""Benchmark cases for ``ganfast.ops.self_attention2d`` (SAGAN attention over all H*W positions).

Shapes: the attention of a SAGAN block at 32x32, 64x64 and 128x128 feature
maps with 256 and 512 channels (query/key width ``channels // 8``), batch 64,
16 and 8: ``shape`` is ``(B, C, H, W)``, the block's input; the timed op takes
q, k ``(B, C/8, N)`` and v ``(B, C, N)``, ``N = H*W``, as the 1x1 projections
produce them (NCHW, flattened).

Baselines.  The harness times two baselines per case, ``eager`` and
``torch.compile`` of it, so each shape appears twice:

* ``naive``: what the SAGAN paper's reference code does, ``bmm`` + ``softmax``
  + ``bmm``, storing the ``(B, N, N)`` attention matrix (at 128x128, 4 GiB
  per copy at batch 8 in bfloat16);
* ``sdpa``: ``F.scaled_dot_product_attention(..., scale=1.0)`` on
  ``(B, 1, N, d)`` views, the fused-kernel route a PyTorch user would try.
  PyTorch's flash backend needs equal q/k/v widths, so SDPA falls back to its
  memory-efficient or math backend here.

In the ``sdpa`` cases the ``eager`` and ``compile`` rows are SDPA and
``torch.compile`` of SDPA, and the ganfast rows are timed again (the issue's
"not slower than SDPA" reads as ``speedup_vs_eager >= 1`` there).

Work counted (``s`` bytes per element, ``d = C/8``):

* bytes: forward reads q, k, v and writes the output,
  ``s B N (2d + 2C)``; the backward reads q, k, v, the output and its
  gradient and writes dq, dk, dv, ``s B N (4d + 4C)`` more (lse and delta,
  ``4 B N`` bytes each, are left out).  The naive form moves ``O(B N^2)``
  bytes on top of this, which is what a fused kernel saves.
* flops: the useful matrix products, forward ``2 B N^2 (d + C)`` (scores and
  ``P V``), backward ``4 B N^2 (d + C)`` (dV, dP, dQ, dK).  The fused backward
  also recomputes the scores (``2 B N^2 d`` per pass over the value
  channels), which is not counted: TFLOP/s reads as useful work.

The correctness check runs the baseline in float64.  At 128x128 a float64
``N x N`` matrix with its gradient would need ~70 GB, so in float64 only (a
dtype never timed) the baseline runs the same formula in blocks of queries
under activation checkpointing: memory ``O(B N * block)``, same result.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "self_attention2d"

# float64 reference blocks: queries per block.
_REFERENCE_BLOCK = 1024


class SelfAttentionCase(BenchCase):
    """``shape`` is the block input (B, C, H, W); params: ``reduction`` (d = C // reduction) and
    ``baseline`` (``"naive"`` or ``"sdpa"``)."""

    @property
    def dims(self):
        b, c, h, w = self.shape
        return b, c // self.params.get("reduction", 8), c, h * w

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        b, d, c, n = self.dims
        gen = torch.Generator(device=device).manual_seed(seed)
        # Drawn in float32 and cast, so every dtype sees the same values.  q and k
        # scaled by d^-1/4: unit-variance scores, a softmax neither flat nor one-hot.
        q = (torch.randn((b, d, n), device=device, generator=gen) * d ** -0.25).to(dtype)
        k = (torch.randn((b, d, n), device=device, generator=gen) * d ** -0.25).to(dtype)
        v = torch.randn((b, c, n), device=device, generator=gen).to(dtype)
        for t in (q, k, v):
            t.requires_grad_(requires_grad)
        return Inputs(args=(q, k, v), grads=[q, k, v] if requires_grad else [])

    def ganfast(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        return ganfast.ops.self_attention2d(q, k, v, backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        baseline = _sdpa_attention if self.params.get("baseline") == "sdpa" else _naive_attention

        def self_attention_eager(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            if q.dtype == torch.float64:  # the correctness reference only, never timed
                return _blocked_reference(q, k, v)
            return baseline(q, k, v)

        return self_attention_eager

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        b, d, c, n = self.dims
        fwd = s * b * n * (2 * d + 2 * c)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + s * b * n * (4 * d + 4 * c)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        b, d, c, n = self.dims
        fwd = 2 * b * n * n * (d + c)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return 3 * fwd
        raise ValueError(f"unknown pass {pass_!r}")


def _naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The SAGAN reference implementations' form: the (B, N, N) attention matrix in full."""
    attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)
    return torch.bmm(v, attn.transpose(1, 2))


def _sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PyTorch's fused attention, unscaled as SAGAN, on one-head (B, 1, N, d) views."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2).unsqueeze(1), k.transpose(1, 2).unsqueeze(1), v.transpose(1, 2).unsqueeze(1), scale=1.0
    )
    return out.squeeze(1).transpose(1, 2)


def _blocked_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``_naive_attention`` by blocks of queries, each recomputed in the backward (checkpointing)."""
    n = q.shape[2]
    if n <= _REFERENCE_BLOCK:
        return _naive_attention(q, k, v)
    blocks = [
        torch.utils.checkpoint.checkpoint(_naive_attention, q[:, :, i:i + _REFERENCE_BLOCK], k, v, use_reentrant=False)
        for i in range(0, n, _REFERENCE_BLOCK)
    ]
    return torch.cat(blocks, dim=2)


def _case(name: str, batch: int, channels: int, side: int, quick: bool = False, dtypes=("bfloat16", "float32"),
          **params: Any) -> List[SelfAttentionCase]:
    return [
        SelfAttentionCase(op=OP, name=f"{name} vs {baseline}", shape=(batch, channels, side, side),
                          params=dict(reduction=8, baseline=baseline, **params), dtypes=tuple(dtypes), quick=quick)
        for baseline in ("naive", "sdpa")
    ]


def cases() -> List[SelfAttentionCase]:
    """The self_attention2d benchmark table: ``--quick`` cases first, then the full set."""
    out: List[SelfAttentionCase] = []
    # --quick: small enough for the Triton interpreter on a CPU (d = 4, N = 64).
    out += _case("tiny", 2, 32, 8, quick=True)
    for channels in (256, 512):
        out += _case(f"sagan32 c{channels}", 64, channels, 32)
        # The targets: fwd+bwd >= 2x the naive form, not slower than SDPA.
        out += _case(f"sagan64 c{channels}", 16, channels, 64)
        # 16384 positions: the naive form stores 4 GiB per N x N matrix in bf16.
        out += _case(f"sagan128 c{channels}", 8, channels, 128, dtypes=("bfloat16",))
    return out
