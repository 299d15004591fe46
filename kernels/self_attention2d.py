"""Triton kernels for ``self_attention2d``: SAGAN attention, flash-attention style.

For one image with ``N = H*W`` positions, ``d`` query/key channels and ``C``
value channels, the naive form writes the ``N x N`` score matrix, reads it
for the softmax, writes the probabilities and reads them again for ``V P^T``:
about ``4 N^2`` elements of traffic (and as many bytes of memory), against
``(2d + 2C) N`` for reading q, k, v and writing the output.  At a 64x64 map
(N = 4096), C = 256, d = 32 that is 67M elements against 2.4M, and at 128x128
the score matrix alone is 1 GiB per image in float32.  These kernels keep a
tile of scores in registers and never write it (Dao et al. 2022, 2023):

* forward: one program per (query tile of BLOCK_M, value-channel block of
  BLOCK_C, image).  It walks the key tiles with an online softmax (running
  max ``m`` and sum ``l``, rescaling the accumulator when ``m`` grows) and
  writes its ``[BLOCK_M, BLOCK_C]`` output block, plus the log-sum-exp
  ``lse = m + log l`` of each query row (for the backward).  The value width C
  (256, 512: unlike FlashAttention's head dims, C != d) is split over the grid
  rather than held in registers; each channel block recomputes the cheap
  ``d``-wide scores, which costs ``d / BLOCK_C`` of the ``P V`` work.
* backward (FlashAttention-2, Algorithm 2): ``delta_i = sum_c dO[c, i] O[c, i]``
  in a small kernel, then one kernel per key tile for dK and dV (iterating
  over query tiles) and one per query tile for dQ (iterating over key tiles),
  both recomputing ``P = exp(S - lse)`` from q, k and the saved lse.  No
  atomics: every output element is written by exactly one program, so results
  are deterministic.  ``dP = dO^T V`` is a sum over all C channels, so C is
  walked in BLOCK_C blocks by an outer loop inside each program; the
  ``- delta`` term of ``dS = P (dP - delta)`` is added with the first block,
  which keeps dK and dQ exact sums of per-block terms.

Every tensor is addressed through its strides, so any layout of the
``(B, channels, N)`` arguments (the flattened output of a 1x1 convolution in
NCHW or channels_last, a transposed ``(B, N, channels)`` view, an expanded
gradient) is read where it lies, without a copy.  The query/key width d is
padded to a power of two in registers only (masked loads); nothing is padded
in memory.  Scores, softmax statistics and accumulators are float32 (float64
for float64 inputs); the matrix products take float16/bfloat16 operands as
they are (tensor cores) and float32 operands in IEEE precision (no TF32).
Memory is O(B N (C + d)): the outputs, the ``(B, N)`` lse and delta.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
import triton
import triton.language as tl

from ganfast._dtypes import compute_dtype
from ganfast.kernels._common import acc_type, dot_upcast, scalar, split_scalar

# -- device functions -----------------------------------------------------------------


@triton.jit
def _ranges(start, n, BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    """``start + arange(BLOCK)`` (64-bit when INDEX64) and its mask ``< n``."""
    offs = start + tl.arange(0, BLOCK)
    if INDEX64:
        offs = offs.to(tl.int64)
    return offs, offs < n


@triton.jit
def _load_rows(base, offs_r, mask_r, stride_r, offs_c, mask_c, stride_c):
    """A ``[rows, cols]`` tile of ``base[r * stride_r + c * stride_c]``, zero outside the masks."""
    ptrs = base + offs_r[:, None] * stride_r + offs_c[None, :] * stride_c
    return tl.load(ptrs, mask=mask_r[:, None] & mask_c[None, :], other=0.0)


@triton.jit
def _dot(a, b, ACC: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """``a @ b`` accumulated in ACC.

    UPCAST (``_common.dot_upcast``: bfloat16 under the CPU interpreter only)
    widens the operands to float32 first.
    """
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION, out_dtype=ACC)


# -- kernels ----------------------------------------------------------------------------


@triton.jit
def _fwd_kernel(
    q_ptr,  # *T, (B, d_qk, N) through strides
    k_ptr,  # *T, (B, d_qk, N)
    v_ptr,  # *T, (B, d_v, N)
    o_ptr,  # *T, (B, d_v, N) output
    lse_ptr,  # *ACC, (B, N) output: log-sum-exp of each query's scores
    n_pos,  # N = H * W
    d_qk,
    d_v,
    s_qb, s_qd, s_qn,  # strides of q, in elements (batch, channel, position)
    s_kb, s_kd, s_kn,
    s_vb, s_vc, s_vn,
    s_ob, s_oc, s_on,
    s_lb, s_ln,
    scale_hi,  # score scale, hi + lo (see _common.scalar)
    scale_lo,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    PRECISION: tl.constexpr,  # tl.dot input precision: "ieee" (fp32/fp64 operands are exact)
    UPCAST: tl.constexpr,  # float32 dot operands (bfloat16 under the interpreter, see _dot)
    INDEX64: tl.constexpr,  # 64-bit offsets within an image
    BLOCK_M: tl.constexpr,  # query positions per program
    BLOCK_N: tl.constexpr,  # key positions per step
    BLOCK_D: tl.constexpr,  # d_qk rounded up to a power of two >= 16 (masked)
    BLOCK_C: tl.constexpr,  # value channels per program
):
    pid_m = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    q_ptr += b * s_qb
    k_ptr += b * s_kb
    v_ptr += b * s_vb
    offs_m, mask_m = _ranges(pid_m * BLOCK_M, n_pos, BLOCK_M, INDEX64)
    offs_c, mask_c = _ranges(pid_c * BLOCK_C, d_v, BLOCK_C, INDEX64)
    offs_d, mask_d = _ranges(0, d_qk, BLOCK_D, INDEX64)
    scale = scalar(scale_hi, scale_lo, ACC)

    q = _load_rows(q_ptr, offs_m, mask_m, s_qn, offs_d, mask_d, s_qd)  # [M, D]
    m_i = tl.full([BLOCK_M], float("-inf"), ACC)
    l_i = tl.zeros([BLOCK_M], ACC)
    acc = tl.zeros([BLOCK_M, BLOCK_C], ACC)
    for start in range(0, n_pos, BLOCK_N):
        offs_n, mask_n = _ranges(start, n_pos, BLOCK_N, INDEX64)
        k = _load_rows(k_ptr, offs_d, mask_d, s_kd, offs_n, mask_n, s_kn)  # [D, N]
        s = _dot(q, k, ACC, PRECISION, UPCAST) * scale
        s = tl.where(mask_n[None, :], s, float("-inf"))
        # Online softmax: every tile holds at least one real key, so m_new is finite.
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _load_rows(v_ptr, offs_n, mask_n, s_vn, offs_c, mask_c, s_vc)  # [N, C]
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, ACC, PRECISION, UPCAST)
        m_i = m_new

    out = acc / l_i[:, None]
    o_ptrs = o_ptr + b * s_ob + offs_m[:, None] * s_on + offs_c[None, :] * s_oc
    tl.store(o_ptrs, out.to(o_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_c[None, :])
    if pid_c == 0:
        tl.store(lse_ptr + b * s_lb + offs_m * s_ln, m_i + tl.log(l_i), mask=mask_m)


@triton.jit
def _delta_kernel(
    o_ptr,  # *T, (B, d_v, N) forward output
    g_ptr,  # *T, (B, d_v, N) incoming gradient dO
    delta_ptr,  # *ACC, (B, N) output: sum_c dO[c, i] * O[c, i]
    n_pos,
    d_v,
    s_ob, s_oc, s_on,
    s_gb, s_gc, s_gn,
    s_db, s_dn,
    ACC: tl.constexpr,
    INDEX64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid_m = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    o_ptr += b * s_ob
    g_ptr += b * s_gb
    offs_m, mask_m = _ranges(pid_m * BLOCK_M, n_pos, BLOCK_M, INDEX64)
    delta = tl.zeros([BLOCK_M], ACC)
    for c0 in range(0, d_v, BLOCK_C):
        offs_c, mask_c = _ranges(c0, d_v, BLOCK_C, INDEX64)
        o = _load_rows(o_ptr, offs_m, mask_m, s_on, offs_c, mask_c, s_oc).to(ACC)
        g = _load_rows(g_ptr, offs_m, mask_m, s_gn, offs_c, mask_c, s_gc).to(ACC)
        delta += tl.sum(o * g, 1)
    tl.store(delta_ptr + b * s_db + offs_m * s_dn, delta, mask=mask_m)


@triton.jit
def _bwd_kernel(
    q_ptr, k_ptr, v_ptr,  # *T, forward inputs
    g_ptr,  # *T, (B, d_v, N) incoming gradient dO
    lse_ptr,  # *ACC, (B, N)
    delta_ptr,  # *ACC, (B, N)
    dq_ptr,  # *T, (B, d_qk, N) output (DQ)
    dk_ptr,  # *T, (B, d_qk, N) output (not DQ)
    dv_ptr,  # *T, (B, d_v, N) output (not DQ)
    n_pos,
    d_qk,
    d_v,
    s_qb, s_qd, s_qn,
    s_kb, s_kd, s_kn,
    s_vb, s_vc, s_vn,
    s_gb, s_gc, s_gn,
    s_lb, s_ln,  # lse and delta share their (contiguous) strides
    s_dqb, s_dqd, s_dqn,
    s_dkb, s_dkd, s_dkn,
    s_dvb, s_dvc, s_dvn,
    scale_hi,
    scale_lo,
    DQ: tl.constexpr,  # this launch writes dQ (one program per query tile), else dK and dV (per key tile)
    ACC: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    INDEX64: tl.constexpr,
    BLOCK_M: tl.constexpr,  # query positions per program (DQ) or per step
    BLOCK_N: tl.constexpr,  # key positions per step (DQ) or per program
    BLOCK_D: tl.constexpr,
    BLOCK_C: tl.constexpr,  # value channels per outer step
):
    # The two backward sweeps share their arguments and prologue; DQ picks
    # the sweep at compile time.  Both recompute P = exp(S - lse) from q, k
    # and the saved lse, and dS = P (dP - delta) with dP = dO^T V summed over
    # the value channels in BLOCK_C blocks (delta enters with the first block,
    # so dK and dQ are exact sums of per-block terms).
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    q_ptr += b * s_qb
    k_ptr += b * s_kb
    v_ptr += b * s_vb
    g_ptr += b * s_gb
    lse_ptr += b * s_lb
    delta_ptr += b * s_lb
    offs_d, mask_d = _ranges(0, d_qk, BLOCK_D, INDEX64)
    scale = scalar(scale_hi, scale_lo, ACC)

    if DQ:
        offs_m, mask_m = _ranges(pid * BLOCK_M, n_pos, BLOCK_M, INDEX64)
        q = _load_rows(q_ptr, offs_m, mask_m, s_qn, offs_d, mask_d, s_qd)  # [M, D]
        lse = tl.load(lse_ptr + offs_m * s_ln, mask=mask_m, other=0.0)
        delta = tl.load(delta_ptr + offs_m * s_ln, mask=mask_m, other=0.0)
        dq = tl.zeros([BLOCK_M, BLOCK_D], ACC)
        for c0 in range(0, d_v, BLOCK_C):
            offs_c, mask_c = _ranges(c0, d_v, BLOCK_C, INDEX64)
            g = _load_rows(g_ptr, offs_m, mask_m, s_gn, offs_c, mask_c, s_gc)  # [M, C], kept for the sweep
            for n0 in range(0, n_pos, BLOCK_N):
                offs_n, mask_n = _ranges(n0, n_pos, BLOCK_N, INDEX64)
                k = _load_rows(k_ptr, offs_d, mask_d, s_kd, offs_n, mask_n, s_kn)  # [D, N]
                s = _dot(q, k, ACC, PRECISION, UPCAST) * scale
                p = tl.where(mask_n[None, :], tl.exp(s - lse[:, None]), 0.0)
                v = _load_rows(v_ptr, offs_c, mask_c, s_vc, offs_n, mask_n, s_vn)  # [C, N]
                dp = _dot(g, v, ACC, PRECISION, UPCAST)
                if c0 == 0:
                    dp -= delta[:, None]
                ds = p * dp
                dq += _dot(ds.to(k.dtype), tl.trans(k), ACC, PRECISION, UPCAST)
        dq_ptrs = dq_ptr + b * s_dqb + offs_m[:, None] * s_dqn + offs_d[None, :] * s_dqd
        tl.store(dq_ptrs, (dq * scale).to(dq_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_d[None, :])
    else:
        offs_n, mask_n = _ranges(pid * BLOCK_N, n_pos, BLOCK_N, INDEX64)
        k = _load_rows(k_ptr, offs_d, mask_d, s_kd, offs_n, mask_n, s_kn)  # [D, N]
        dk = tl.zeros([BLOCK_N, BLOCK_D], ACC)
        for c0 in range(0, d_v, BLOCK_C):
            offs_c, mask_c = _ranges(c0, d_v, BLOCK_C, INDEX64)
            v = _load_rows(v_ptr, offs_c, mask_c, s_vc, offs_n, mask_n, s_vn)  # [C, N]
            dv = tl.zeros([BLOCK_N, BLOCK_C], ACC)
            for m0 in range(0, n_pos, BLOCK_M):
                offs_m, mask_m = _ranges(m0, n_pos, BLOCK_M, INDEX64)
                q = _load_rows(q_ptr, offs_m, mask_m, s_qn, offs_d, mask_d, s_qd)  # [M, D]
                lse = tl.load(lse_ptr + offs_m * s_ln, mask=mask_m, other=0.0)
                s = _dot(q, k, ACC, PRECISION, UPCAST) * scale  # [M, N]
                p = tl.where(mask_m[:, None] & mask_n[None, :], tl.exp(s - lse[:, None]), 0.0)
                g = _load_rows(g_ptr, offs_m, mask_m, s_gn, offs_c, mask_c, s_gc)  # [M, C]
                dv += _dot(tl.trans(p.to(g.dtype)), g, ACC, PRECISION, UPCAST)
                dp = _dot(g, v, ACC, PRECISION, UPCAST)  # [M, N], this block's share
                if c0 == 0:
                    dp -= tl.load(delta_ptr + offs_m * s_ln, mask=mask_m, other=0.0)[:, None]
                ds = p * dp
                dk += _dot(tl.trans(ds.to(q.dtype)), q, ACC, PRECISION, UPCAST)
            dv_ptrs = dv_ptr + b * s_dvb + offs_n[:, None] * s_dvn + offs_c[None, :] * s_dvc
            tl.store(dv_ptrs, dv.to(dv_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_c[None, :])
        dk_ptrs = dk_ptr + b * s_dkb + offs_n[:, None] * s_dkn + offs_d[None, :] * s_dkd
        tl.store(dk_ptrs, (dk * scale).to(dk_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_d[None, :])


# -- host functions -------------------------------------------------------------------


def _pow2(n: int, lo: int) -> int:
    return max(lo, triton.next_power_of_2(n))


def _config(n_pos: int, d_qk: int, d_v: int, dtype: torch.dtype, index64: bool = False) -> Dict[str, int]:
    """Block sizes and warps for one problem: the one place they are chosen.

    ``tl.dot`` needs every tile dimension >= 16.  Position tiles of 64 keep
    the ``[64, 64]`` score tile and a ``[64, BLOCK_C]`` accumulator in
    registers; BLOCK_C trades recomputed scores (``d / BLOCK_C`` of the
    ``P V`` work) against register pressure, smaller for 4- and 8-byte
    operands.  float32 and float64 dots run on FMA units, whose operand
    layouts hold a whole ``[BLOCK_M, BLOCK_D]`` row block per thread group:
    there the position tile shrinks as d grows (``BLOCK_M * BLOCK_D`` at
    most 64 x 32 for float32, 32 x 32 for float64), and 16-bit operands
    with d >= 64 take BLOCK_C = 64; 64-bit indexing (``index64``) halves
    the position tile.  Those limits are what compiling every
    configuration for sm_90 and sm_80 requires (no register spills, shared
    memory within the block limit: ``python -m ganfast.kernels.aot
    --filter self_attention2d``); not tuned for speed on a GPU yet
    (bench/RESULTS.md).
    """
    size = dtype.itemsize
    block_d = _pow2(d_qk, 16)
    block_pos = min(64, _pow2(n_pos, 16))
    if size == 2:
        block_pos = min(block_pos, 64 if block_d <= 64 else 32)
        block_c = 128 if block_d <= 32 else 64
    elif size == 4:
        block_pos = min(block_pos, 32 if block_d <= 32 else 16)
        block_c = 32
    else:
        block_pos = min(block_pos, 32 if block_d <= 16 else 16)
        block_c = 32 if block_d <= 16 else 16
    if index64:  # 64-bit offsets: more registers a tile element, half the position tile
        block_pos = max(16, block_pos // 2)
        block_c = min(block_c, 64)
    block_c = min(block_c, _pow2(d_v, 16))
    if block_pos * max(block_d, block_c) <= 16 * 16:
        warps = 2  # a 16 x 16 problem: with 4 warps ptxas spills a few bytes (sm_90)
    elif size == 2 and block_pos == 16 and block_d > 64:
        warps = 4  # with 8, ptxas spills the 16-bit dK/dV tile on sm_80
    elif (block_pos * block_c >= 64 * 128 or block_d > 64 or (index64 and block_d >= 64)
          or (index64 and block_pos >= 32 and (size == 2 or block_c >= 64))):
        warps = 8
    else:
        warps = 4
    return dict(BLOCK_M=block_pos, BLOCK_N=block_pos, BLOCK_D=block_d, BLOCK_C=block_c, num_warps=warps)


def _index64(cfg: Dict[str, int], *tensors: torch.Tensor) -> bool:
    """Whether an offset within one image (tiles overhanging the edges included) may reach 2^31."""
    over = max(cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_D"], cfg["BLOCK_C"])
    extent = 0
    for t in tensors:
        extent = max(extent, sum((size - 1 + over) * abs(stride) for size, stride in zip(t.shape[1:], t.stride()[1:])))
    return extent >= 2**31


def _launch_args(q: torch.Tensor, v: torch.Tensor, scale: float, *tensors: torch.Tensor):
    """(constexpr flags, block config, split scale) for one launch over ``tensors`` (64-bit offsets: smaller tiles)."""
    flags = dict(ACC=acc_type(q.dtype), PRECISION="ieee", UPCAST=dot_upcast(q.dtype))
    cfg = _config(q.shape[2], q.shape[1], v.shape[1], q.dtype)
    if tensors and _index64(cfg, *tensors):
        cfg = _config(q.shape[2], q.shape[1], v.shape[1], q.dtype, index64=True)
    return flags, cfg, split_scalar(scale)


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(out, lse)``: out ``(B, d_v, N)`` contiguous in v's dtype, lse ``(B, N)`` in the compute dtype.

    Allocates only those two tensors: O(B N (d_v + 1)).
    """
    batch, d_qk, n_pos = q.shape
    d_v = v.shape[1]
    out = torch.empty((batch, d_v, n_pos), dtype=v.dtype, device=v.device)
    lse = torch.empty((batch, n_pos), dtype=compute_dtype(q.dtype), device=q.device)
    flags, cfg, scale2 = _launch_args(q, v, scale, q, k, v, out)
    warps = cfg.pop("num_warps")
    grid = (triton.cdiv(n_pos, cfg["BLOCK_M"]), triton.cdiv(d_v, cfg["BLOCK_C"]), batch)
    _fwd_kernel[grid](
        q, k, v, out, lse,
        n_pos, d_qk, d_v,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), *lse.stride(),
        *scale2,
        INDEX64=_index64(cfg, q, k, v, out), **flags,
        num_warps=warps, **cfg,
    )
    return out, lse


def backward(
    grad: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dq, dk, dv)``, contiguous, in the inputs' dtype, from the forward's ``out`` and ``lse``.

    Allocates the three gradients and one ``(B, N)`` delta: O(B N (2 d_qk + d_v + 1)).
    """
    batch, d_qk, n_pos = q.shape
    d_v = v.shape[1]
    grad = grad.to(v.dtype)  # no copy when it already is (any strides are read as they are)
    lse = lse.contiguous()
    flags, cfg, scale2 = _launch_args(q, v, scale, q, k, v, out, grad)
    warps = cfg.pop("num_warps")
    index64 = _index64(cfg, q, k, v, out, grad)
    delta = torch.empty_like(lse)
    dq = torch.empty((batch, d_qk, n_pos), dtype=q.dtype, device=q.device)
    dk = torch.empty((batch, d_qk, n_pos), dtype=k.dtype, device=k.device)
    dv = torch.empty((batch, d_v, n_pos), dtype=v.dtype, device=v.device)

    _delta_kernel[(triton.cdiv(n_pos, cfg["BLOCK_M"]), batch)](
        out, grad, delta, n_pos, d_v, *out.stride(), *grad.stride(), *delta.stride(),
        ACC=flags["ACC"], INDEX64=index64, BLOCK_M=cfg["BLOCK_M"], BLOCK_C=cfg["BLOCK_C"], num_warps=4,
    )
    args = (q, k, v, grad, lse, delta, dq, dk, dv, n_pos, d_qk, d_v, *q.stride(), *k.stride(), *v.stride(),
            *grad.stride(), *lse.stride(), *dq.stride(), *dk.stride(), *dv.stride(), *scale2)
    common = dict(INDEX64=index64, num_warps=warps, **flags, **cfg)
    _bwd_kernel[(triton.cdiv(n_pos, cfg["BLOCK_N"]), batch)](*args, DQ=False, **common)
    _bwd_kernel[(triton.cdiv(n_pos, cfg["BLOCK_M"]), batch)](*args, DQ=True, **common)
    return dq, dk, dv
