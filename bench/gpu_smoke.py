"""CUDA correctness smoke: every op, every backend, every dtype, one realistic shape, against float64.

    python bench/gpu_smoke.py [--device cuda] [--jobs 8] [--strict] [--json OUT.json]
    python bench/gpu_smoke.py --device cpu --tiny          # CI: torch/aten, and triton under TRITON_INTERPRET=1

What it checks.  For every op of ``ganfast._backend.OPS`` (the registry, so a
new op or backend is covered without editing this file's loops), every
backend that op lists, and every storage dtype (float16, bfloat16, float32,
float64): the forward pass and the first derivatives with respect to every
differentiable input, at ONE realistic shape (a DCGAN-64 layer at batch 128,
a StyleGAN2 feature map, FID's 2048-d statistics; ``--tiny``: odd toy sizes),
against the op's reference (``ganfast.ref``, or the torch definition the op's
tests use) evaluated in float64 on the same input values.  The tests
(``pytest -m gpu``) certify every op per element at small odd sizes, to
second order; this is the fast check that the kernels also hold at the
sizes they will run at, on the machine they will run on.

How it judges.  The project's two tolerance tables (``ganfast.testing``),
nothing of its own:

* float64: per element, ``testing.assert_close`` (``TOLERANCES``, by
  derivative order).  Sums of ~1e5 float64 terms stay ~1e-14 of the largest
  term, far inside the table's 1e-12 floor.
* float32, bfloat16, float16: norm-wise, ``||got - want|| / ||want||`` against
  ``testing.norm_tolerance`` (``NORM_TOLERANCES``), the gate ``ganfast bench``
  puts before timing.  At realistic sizes a per-element bound fails on the
  few elements in a million that cancel to near zero, or that sit within one
  rounding of an activation's kink (the half-precision value then lands on
  the other side of it and its gradient differs by ``(1 - slope) g``, in eager
  PyTorch too): ``NORM_TOLERANCES``' docstring says why it is norm-wise.
  After a half-precision convolution so many pre-activations sit that close
  that even the norm moves past the table, so the conv blocks run with slope
  1.0 in float16/bfloat16, as their tests do (see ``block_inputs`` below).
* float32 is IEEE float32: TF32 is switched off for cuDNN and cuBLAS in the
  smoke's processes (PyTorch lets cuDNN convolve in TF32 by default).
* NaN and inf must appear where the reference has them (``rel_err`` is inf
  otherwise).  Before each call on a GPU the allocator's memory is poisoned
  with NaN bytes, so an output element the kernel never writes reads NaN.

A backend that cannot run here is reported ``skip`` with the registry's
reason; ``--strict`` (the GPU check) counts it as a failure, since on the
GPU machine every backend must run.  Exit status: 0 when every case passed,
1 otherwise.  ``--jobs N`` checks N ops at once in spawned processes (Triton
compiles each kernel variant on first use, ~0.1-2.4 s of CPU each, which
dominates a GPU run; an op's lines are then printed when it finishes).  On
SIGTERM (``timeout``) it prints the summary of what finished and exits 124.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")
SHORT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}

# Bytes of NaN (0xFF: every float format's all-ones exponent with a non-zero
# mantissa) written into a freed block before each GPU call, so that the
# caching allocator hands the op's outputs memory that reads NaN until written.
POISON_BYTES = 1 << 30


# --- the cases ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SmokeCase:
    """One op at one shape: how to make its inputs, call it, and call its reference.

    ``make(dtype, device, gen, tiny)`` returns the inputs in ``dtype`` (and
    None, or plain numbers such as a slope, which pass through unchanged);
    ``fast(*inputs, backend=...)`` calls the op; ``reference(*inputs)`` is
    called on float64 copies of the tensors; ``differentiable`` are the input
    positions the first derivatives are taken with respect to.
    """

    op: str
    real: str  # the realistic shape, and where it comes from
    tiny: str
    make: Callable[..., List[Any]]
    fast: Callable[..., Any]
    reference: Callable[..., Any]
    differentiable: Tuple[int, ...] = ()


def _randn(gen, device, dtype, *shape, scale=1.0, shift=0.0):
    """Fresh normal values, drawn in float64 (so every dtype rounds the same draw), never zeros."""
    import torch

    t = torch.randn(shape, generator=gen, dtype=torch.float64, device=gen.device) * scale + shift
    return t.to(device=device, dtype=dtype)


def _acc(dtype):
    """Per-channel parameters as a mixed-precision model holds them: float32 (float64 for float64)."""
    import torch

    return torch.float64 if dtype == torch.float64 else torch.float32


def _psd(gen, device, dtype, d):
    """A well-conditioned covariance (eigenvalues in ~[0.5, 3]): rounding to 16 bits keeps it PSD."""
    import torch

    x = torch.randn(d, 2 * d, generator=gen, dtype=torch.float64, device=gen.device)
    a = 0.5 * torch.eye(d, dtype=torch.float64, device=gen.device) + (x @ x.mT) / (2 * d)
    return a.to(device=device, dtype=dtype)


def cases() -> Dict[str, SmokeCase]:
    """The smoke table, one row per op of ``ganfast._backend.OPS``."""
    import torch
    import torch.nn.functional as F

    import ganfast.ops
    from ganfast.ops.batch_norm_act import batch_norm_act_train
    from ganfast.ops.conv_affine_act import conv_affine_act, eval_affine
    from ganfast.ref import batch_norm_act as ref_bn
    from ganfast.ref import bias_act as ref_bias_act
    from ganfast.ref import bias_act_pixel_norm as ref_bapn
    from ganfast.ref import conv_bn_act as ref_cba
    from ganfast.ref import conv_transpose_bn_act as ref_ctba
    from ganfast.ref import feature_stats as ref_fs
    from ganfast.ref import instance_norm_act as ref_in
    from ganfast.ref import minibatch_discrimination as ref_mbd
    from ganfast.ref import minibatch_stddev as ref_mbstd
    from ganfast.ref import modulated_conv2d as ref_mc
    from ganfast.ref import self_attention2d as ref_sa
    from ganfast.ref import sqrtm as ref_sqrtm
    from ganfast.ref import upfirdn2d as ref_ufd

    lrelu = dict(act="leaky_relu", negative_slope=0.2, gain=math.sqrt(2.0))  # StyleGAN's lrelu

    def bias_act_inputs(dtype, device, gen, tiny):
        n, c, h, w = (2, 5, 3, 7) if tiny else (32, 512, 32, 32)
        return [_randn(gen, device, dtype, n, c, h, w, scale=2.0), _randn(gen, device, dtype, c)]

    def bapn_inputs(dtype, device, gen, tiny):
        n, c, h, w = (2, 5, 3, 7) if tiny else (16, 256, 64, 64)
        return [_randn(gen, device, dtype, n, c, h, w, scale=2.0), _randn(gen, device, dtype, c)]

    def ufd_inputs(dtype, device, gen, tiny):
        n, c, h, w = (2, 5, 7, 6) if tiny else (16, 128, 256, 256)
        return [_randn(gen, device, dtype, n, c, h, w)]

    def ufd_ref(x):  # downsample2d with StyleGAN2's [1, 3, 3, 1]: down 2, padding 1 on every side
        return ref_ufd.upfirdn2d(x, ganfast.ops.setup_filter(device=x.device, dtype=x.dtype), (1, 1), (2, 2),
                                 (1, 1, 1, 1))

    def mc_inputs(dtype, device, gen, tiny):
        n, c, r = (2, 5, 6) if tiny else (16, 512, 32)
        return [_randn(gen, device, dtype, n, c, r, r), _randn(gen, device, dtype, c, c, 3, 3),
                _randn(gen, device, dtype, n, c, scale=0.5, shift=1.0)]

    def mc_ref(x, w, s):  # StyleGAN2's upsampling synthesis conv: 3x3, up 2, [1, 3, 3, 1], demodulated
        return ref_mc.modulated_conv2d(x, w, s, None, ganfast.ops.setup_filter(device=x.device, dtype=x.dtype), True,
                                       2, 1, 1)

    def bn_inputs(dtype, device, gen, tiny):
        n, c, h, w = (3, 5, 4, 6) if tiny else (128, 128, 16, 16)
        return [_randn(gen, device, dtype, n, c, h, w, scale=2.0, shift=0.5),
                _randn(gen, device, _acc(dtype), c, scale=0.2, shift=1.0), _randn(gen, device, _acc(dtype), c)]

    def block_inputs(dtype, device, gen, tiny, transposed, slope=None):
        """x, weight, gamma, beta, running mean, running var of a k4 s2 p1 block (BatchNorm's in float32),
        then the activation's slope when ``slope`` is given.

        In float16/bfloat16 the slope is 1.0 (no kink), as in the tests' half-precision checks
        (tests/test_conv_bn_act.py, test_half_precision): a pre-activation within one rounding of the
        convolution's output from 0 lands on either side of the kink, and its gradient then differs by
        (1 - slope) g, in eager PyTorch too.  Measured on the CPU with the torch backend at these shapes,
        gradients off norm-wise by 5.4e-3 (fp16) and 1.5e-2 (bf16) for conv_bn_act's slope 0.2, 1.3e-2
        and 1.8e-2 for conv_transpose_bn_act's ReLU, against norm_tolerance's 5e-3 and 2e-2; with slope
        1.0, 1.7e-3 and 2.9e-3 for both.  The kink is checked in float32 and float64.
        """
        if transposed:
            n, cin, cout, hw = (2, 4, 5, (3, 4)) if tiny else (128, 256, 128, (8, 8))
        else:
            n, cin, cout, hw = (2, 3, 5, (7, 6)) if tiny else (128, 64, 128, (32, 32))
        wshape = (cin, cout, 4, 4) if transposed else (cout, cin, 4, 4)
        acc = _acc(dtype)
        return [_randn(gen, device, dtype, n, cin, *hw), _randn(gen, device, dtype, *wshape, scale=(cin * 4) ** -0.5),
                _randn(gen, device, acc, cout, scale=0.2, shift=1.0), _randn(gen, device, acc, cout, scale=0.5),
                _randn(gen, device, acc, cout, scale=0.3),
                (torch.rand(cout, generator=gen, dtype=torch.float64, device=gen.device) + 0.5).to(device, acc)] + (
            [] if slope is None else [1.0 if dtype in (torch.float16, torch.bfloat16) else slope])

    bn_args = dict(momentum=0.1, eps=1e-5, stride=2, padding=1)

    def conv_t_inputs(dtype, device, gen, tiny):
        n, cin, cout, hw = (2, 3, 5, (4, 5)) if tiny else (128, 128, 64, (16, 16))
        return [_randn(gen, device, dtype, n, cin, *hw), _randn(gen, device, dtype, cin, cout, 4, 4, scale=0.25),
                _randn(gen, device, dtype, cout)]

    def in_inputs(dtype, device, gen, tiny):
        n, c, h, w = (3, 5, 4, 6) if tiny else (8, 64, 256, 256)
        return [_randn(gen, device, dtype, n, c, h, w, scale=2.0, shift=0.5),
                _randn(gen, device, dtype, c, scale=0.2, shift=1.0), _randn(gen, device, dtype, c)]

    def fs_inputs(dtype, device, gen, tiny):
        n, d = (37, 24) if tiny else (500, 2048)
        x = _randn(gen, device, dtype, n, d, scale=0.6, shift=0.2).relu()  # Inception pool3-like features
        return [x, x.to(torch.float64).mean(0)]

    def fs_fast(x, shift, backend):
        total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        ganfast.ops.feature_stats(x, shift, total, gram, backend=backend)
        return torch.cat([total[None], gram])

    def fs_ref(x, shift):
        total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        ref_fs.feature_stats(x, shift, total, gram)
        return torch.cat([total[None], gram])

    def mbd_inputs(dtype, device, gen, tiny):
        b, a, k, d = (9, 16, 6, 5) if tiny else (256, 8192, 100, 5)
        return [_randn(gen, device, dtype, b, a), _randn(gen, device, dtype, a, k, d, scale=a ** -0.5)]

    def mbstd_inputs(dtype, device, gen, tiny):
        return [_randn(gen, device, dtype, *((8, 5, 3, 4) if tiny else (16, 256, 64, 64)))]

    def sa_inputs(dtype, device, gen, tiny):
        b, c, n = (2, 6, 30) if tiny else (64, 256, 32 * 32)
        d = max(c // 8, 4)
        # q and k scaled by d^-1/4: unit-variance scores, a softmax neither flat nor one-hot.
        return [_randn(gen, device, dtype, b, d, n, scale=d ** -0.25), _randn(gen, device, dtype, b, d, n,
                                                                               scale=d ** -0.25),
                _randn(gen, device, dtype, b, c, n)]

    def psd(dtype, device, gen, tiny, count=1):
        return [_psd(gen, device, dtype, 12 if tiny else 2048) for _ in range(count)]

    table = [
        SmokeCase("bias_act", "32x512x32x32 leaky_relu (a StyleGAN2 32^2 synthesis map)", "2x5x3x7",
                  bias_act_inputs, lambda x, b, backend: ganfast.ops.bias_act(x, b, backend=backend, **lrelu),
                  lambda x, b: ref_bias_act.bias_act(x, b, **lrelu), (0, 1)),
        SmokeCase("bias_act_pixel_norm", "16x256x64x64 lrelu 0.2 + pixel norm (ProGAN G at 64^2)", "2x5x3x7",
                  bapn_inputs, lambda x, b, backend: ganfast.ops.bias_act_pixel_norm(x, b, backend=backend),
                  lambda x, b: ref_bapn.bias_act_pixel_norm(x, b), (0, 1)),
        SmokeCase("batch_norm_act", "128x128x16x16 training (DCGAN-64 D layer 2's BatchNorm)", "3x5x4x6",
                  bn_inputs,
                  lambda y, g, b, backend: batch_norm_act_train(y, g, b, None, None, 0.1, 1e-5, 0.2, backend),
                  lambda y, g, b: ref_bn.batch_norm_act(y, None, None, g, b, True, 0.1, 1e-5, 0.2), (0, 1, 2)),
        SmokeCase("conv_affine_act", "128x64x32x32 k4s2 -> 128 eval (DCGAN-64 D layer 2, inference)", "2x3x7x6",
                  lambda *a: block_inputs(*a, transposed=False),
                  lambda x, w, g, b, rm, rv, backend: conv_affine_act(
                      x, w, *eval_affine(None, g, b, rm, rv, 1e-5, x.dtype), (2, 2), (1, 1), (0, 0), False, 0.2,
                      backend),
                  lambda x, w, g, b, rm, rv: ref_cba.conv_bn_act(x, w, None, g, b, rm, rv, False, 0.1, 1e-5, 2, 1,
                                                                 0.2)),
        SmokeCase("conv_bn_act", "128x64x32x32 k4s2 -> 128 training (DCGAN-64 D layer 2)", "2x3x7x6",
                  lambda *a: block_inputs(*a, transposed=False, slope=0.2),
                  lambda x, w, g, b, rm, rv, slope, backend: ganfast.ops.conv_bn_act(
                      x, w, None, g, b, rm, rv, True, negative_slope=slope, backend=backend, **bn_args),
                  lambda x, w, g, b, rm, rv, slope: ref_cba.conv_bn_act(x, w, None, g, b, rm, rv, True,
                                                                        negative_slope=slope, **bn_args),
                  (0, 1, 2, 3)),
        SmokeCase("conv_transpose2d", "128x128x16x16 k4s2 -> 64 (DCGAN-64 G layer 4's convolution)", "2x3x4x5",
                  conv_t_inputs,
                  lambda x, w, b, backend: ganfast.ops.conv_transpose2d(x, w, b, 2, 1, 0, backend=backend),
                  lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 0), (0, 1, 2)),
        SmokeCase("conv_transpose_bn_act", "128x256x8x8 k4s2 -> 128 training, ReLU (DCGAN-64 G layer 3)",
                  "2x4x3x4", lambda *a: block_inputs(*a, transposed=True, slope=0.0),
                  lambda x, w, g, b, rm, rv, slope, backend: ganfast.ops.conv_transpose_bn_act(
                      x, w, None, g, b, rm, rv, True, negative_slope=slope, backend=backend, **bn_args),
                  lambda x, w, g, b, rm, rv, slope: ref_ctba.conv_transpose_bn_act(
                      x, w, None, g, b, rm, rv, True, negative_slope=slope, **bn_args),
                  (0, 1, 2, 3)),
        SmokeCase("instance_norm_act", "8x64x256x256 affine + ReLU (CycleGAN G's first layer at 256^2)",
                  "3x5x4x6", in_inputs,
                  lambda x, g, b, backend: ganfast.ops.instance_norm_act(x, g, b, backend=backend),
                  lambda x, g, b: ref_in.instance_norm_act(x, None, None, g, b, True, 0.1, 1e-5, 0.0), (0, 1, 2)),
        SmokeCase("feature_stats", "500x2048 (one FID batch of Inception features)", "37x24", fs_inputs,
                  fs_fast, fs_ref),
        SmokeCase("minibatch_discrimination", "B=256, A=8192, K=100, D=5 (the issue's shape)", "B=9 A=16 K=6",
                  mbd_inputs, lambda x, T, backend: ganfast.ops.minibatch_discrimination(x, T, backend=backend),
                  ref_mbd.minibatch_discrimination, (0, 1)),
        SmokeCase("minibatch_stddev", "16x256x64x64, group 4 (ProGAN D at 64^2)", "8x5x3x4", mbstd_inputs,
                  lambda x, backend: ganfast.ops.minibatch_stddev(x, 4, 1, backend=backend),
                  lambda x: ref_mbstd.minibatch_stddev(x, 4, 1), (0,)),
        SmokeCase("modulated_conv2d", "16x512x32x32 -> 512, 3x3, up 2 (StyleGAN2 synthesis at 64^2)", "2x5x6x6",
                  mc_inputs, lambda x, w, s, backend: ganfast.ops.modulated_conv2d(x, w, s, up=2, padding=1,
                                                                                   backend=backend),
                  mc_ref, (0, 1, 2)),
        SmokeCase("self_attention2d", "B=64, C=256, 32x32 (SAGAN block at 32^2; N=1024, d=32)", "B=2 C=6 N=30",
                  sa_inputs, lambda q, k, v, backend: ganfast.ops.self_attention2d(q, k, v, backend=backend),
                  ref_sa.self_attention2d, (0, 1, 2)),
        SmokeCase("upfirdn2d", "16x128x256x256 downsample2d, [1, 3, 3, 1] (StyleGAN2 D at 256^2)", "2x5x7x6",
                  ufd_inputs, lambda x, backend: ganfast.ops.downsample2d(x, backend=backend), ufd_ref, (0,)),
        SmokeCase("sqrtm", "2048x2048 (FID's covariance size)", "12x12", psd,
                  lambda a, backend: ganfast.ops.sqrtm(a, backend=backend), ref_sqrtm.sqrtm_psd, (0,)),
        SmokeCase("sqrtm_trace", "2048x2048 pair (FID from Inception statistics)", "12x12 pair",
                  lambda *a: psd(*a, count=2),
                  lambda s1, s2, backend: ganfast.ops.sqrtm_trace(s1, s2, backend=backend),
                  ref_sqrtm.sqrtm_trace, (0, 1)),
    ]
    return {c.op: c for c in table}


# --- one check ---------------------------------------------------------------------------------


def judge(got, want, dtype, order: int, what: str) -> Tuple[float, Optional[str]]:
    """``(||got - want|| / ||want||, None if it passes else why)`` for one output or gradient."""
    import torch

    from ganfast import testing
    from ganfast.bench.case import rel_err

    if got is None or want is None:
        present = got if got is not None else want
        if present is None or torch.count_nonzero(present) == 0:
            return 0.0, None  # a missing gradient stands for zeros
        return math.inf, f"{what}: one side has no gradient, the other is non-zero"
    err = rel_err(got, want)
    if dtype == torch.float64:
        try:
            testing.assert_close(got, want, dtype, order, what)
        except AssertionError as e:
            return err, str(e)
        return err, None
    tol = testing.norm_tolerance(dtype)
    if not err <= tol:  # NaN-safe
        return err, f"{what}: ||got - want|| / ||want|| = {err:.3g} > {tol:g} (norm_tolerance({SHORT[str(dtype)[6:]]}))"
    return err, None


def poison(device) -> None:
    """Fill a large freed block with NaN bytes so that the next allocations read NaN until written."""
    import torch

    if device.type != "cuda":
        return
    block = torch.empty(POISON_BYTES, dtype=torch.uint8, device=device)
    block.fill_(255)
    del block


def check(case: SmokeCase, backend: str, dtype, device, tiny: bool, seed: int) -> Dict[str, Any]:
    """Forward and first derivatives of ``case`` on ``backend`` in ``dtype``: a result record."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    inputs = case.make(dtype, device, gen, tiny)

    def leaf(t, i, to=None):
        if not isinstance(t, torch.Tensor):
            return t  # None, or a parameter such as a slope
        t = t.detach() if to is None else t.detach().to(to)
        return t.requires_grad_(i in case.differentiable)

    xs = [leaf(t, i) for i, t in enumerate(inputs)]
    rs = [leaf(t, i, torch.float64) for i, t in enumerate(inputs)]
    poison(device)
    y = case.fast(*xs, backend=backend)
    r = case.reference(*rs)
    errs = {}
    failures = []
    errs["fwd"], why = judge(y, r, dtype, 0, "forward")
    if why:
        failures.append(why)
    diff_x = [xs[i] for i in case.differentiable]
    if diff_x:
        diff_r = [rs[i] for i in case.differentiable]
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64, device=gen.device).to(device)
        poison(device)
        gx = torch.autograd.grad(y, diff_x, upstream.to(y.dtype), allow_unused=True)
        gr = torch.autograd.grad(r, diff_r, upstream, allow_unused=True)
        worst = 0.0
        for k, (a, b) in enumerate(zip(gx, gr)):
            e, why = judge(a, b, dtype, 1, f"gradient {k}")
            worst = max(worst, e) if not math.isnan(e) else math.inf
            if why:
                failures.append(why)
        errs["grad"] = worst
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"errors": errs, "failures": failures}


def run_op(op: str, device_name: str, tiny: bool, dtypes: Sequence[str], backends: Optional[Sequence[str]],
           strict: bool, seed: int, emit: Optional[Callable[[List[Dict[str, Any]]], None]] = None
           ) -> List[Dict[str, Any]]:
    """Every (backend, dtype) of ``op``: one record each, returned (from a worker process with ``--jobs``)
    or passed to ``emit`` as each is made."""
    import torch

    from ganfast import _backend
    from ganfast.bench.case import DTYPES

    all_dtypes = dict(DTYPES, float64=torch.float64)
    device = torch.device(device_name)
    # float32 means IEEE float32 here, as in the tolerance table: cuDNN's default TF32 convolutions (10-bit
    # mantissa products, ~3e-4 relative) would fail every float32 case that convolves through cuDNN (the
    # torch and aten backends, and the training path of the fused blocks) for a reason that is no kernel's.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    case = cases()[op]
    out = []
    for backend in _backend.spec(op).backends:
        if backends and backend not in backends:
            continue
        avail = _backend.status(op, backend, device.type)
        for dname in dtypes:
            rec = {"op": op, "backend": backend, "dtype": dname, "shape": case.tiny if tiny else case.real,
                   "errors": {}, "seconds": 0.0}
            if not avail:
                rec.update(status="FAIL" if strict else "skip", message=f"cannot run here: {avail.reason}")
                out.append(rec)
                if emit:
                    emit([rec])
                continue
            t0 = time.perf_counter()
            try:
                res = check(case, backend, all_dtypes[dname], device, tiny, seed)
                rec.update(errors=res["errors"], status="FAIL" if res["failures"] else "ok",
                           message="; ".join(res["failures"]))
            except Exception as err:  # one broken case must not hide the others
                first = (str(err).strip().splitlines() or [""])[0]
                rec.update(status="ERROR", message=f"{type(err).__name__}: {first[:400]}")
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            out.append(rec)
            if emit:
                emit([rec])
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


# --- the command -------------------------------------------------------------------------------


def _fmt(e: Optional[float]) -> str:
    return "-" if e is None else f"{e:.1e}"


def line(rec: Dict[str, Any]) -> str:
    errs = rec["errors"]
    s = (f"{rec['status']:<5} {rec['op']:<24} {rec['backend']:<7} {SHORT[rec['dtype']]:<5} "
         f"fwd {_fmt(errs.get('fwd')):>7}  grad {_fmt(errs.get('grad')):>7}  {rec['seconds']:6.2f} s")
    return s + (f"  {rec['message']}" if rec.get("message") else "")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda (default when visible) or cpu")
    p.add_argument("--tiny", action="store_true", help="odd toy sizes instead of the realistic ones (CPU, CI)")
    p.add_argument("--op", dest="ops", action="extend", nargs="+", metavar="OP", help="only these ops")
    p.add_argument("--backend", dest="backends", action="extend", nargs="+", metavar="NAME",
                   help="only these backends (default: every backend each op lists)")
    p.add_argument("--dtype", dest="dtypes", action="extend", nargs="+", choices=DTYPE_NAMES, metavar="DTYPE",
                   help=f"only these dtypes (default: all of {', '.join(DTYPE_NAMES)})")
    p.add_argument("--jobs", type=int, default=1, help="ops checked at once, in spawned processes (default 1)")
    p.add_argument("--strict", action="store_true", help="a backend that cannot run here is a failure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write every record to FILE")
    p.add_argument("--list", action="store_true", help="print the ops and their shapes, run nothing")
    a = p.parse_args(argv)

    import torch  # defines no Triton kernel: early enough to decide on the interpreter

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        # Triton picks the interpreter when a kernel is defined, so before ganfast is imported;
        # the spawned workers inherit it.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from ganfast import _backend

    table = cases()
    missing = sorted(set(_backend.ops()) - set(table))
    if missing:
        print(f"gpu_smoke: no smoke case for op(s) {', '.join(missing)}: add a row to cases()", file=sys.stderr)
        return 2
    ops = a.ops or sorted(table)
    unknown = sorted(set(ops) - set(table))
    if unknown:
        p.error(f"unknown op(s) {', '.join(unknown)}; ops: {', '.join(sorted(table))}")
    if a.list:
        for op in ops:
            print(f"{op:<24} {'/'.join(_backend.spec(op).backends):<24} {table[op].tiny if a.tiny else table[op].real}")
        return 0
    dtypes = a.dtypes or list(DTYPE_NAMES)
    what = "tiny" if a.tiny else "realistic"
    print(f"gpu_smoke: {len(ops)} ops x their backends x {len(dtypes)} dtypes, {what} shapes, on {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else "")
          + f"; torch {torch.__version__}; jobs {a.jobs}", flush=True)

    records: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    args = (device, a.tiny, dtypes, a.backends, a.strict, a.seed)

    def emit(recs: List[Dict[str, Any]]) -> None:
        records.extend(recs)
        for rec in recs:
            print(line(rec), flush=True)

    def summary(done: Sequence[str], pending: Sequence[str]) -> int:
        counts: Dict[str, int] = {}
        for rec in records:
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        bad = [r for r in records if r["status"] in ("FAIL", "ERROR")]
        text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"gpu_smoke: {len(records)} cases ({text}) in {time.perf_counter() - t0:.1f} s"
              + (f"; NOT RUN (stopped): {', '.join(pending)}" if pending else ""), flush=True)
        for rec in bad:
            print(f"  {rec['status']}: {rec['op']} {rec['backend']} {SHORT[rec['dtype']]}: {rec['message']}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"device": device, "tiny": a.tiny, "records": records, "not_run": list(pending)}, f,
                          indent=1)
        return 1 if bad or pending else 0

    done: List[str] = []

    def stopped(signum, frame):  # `timeout` sends SIGTERM: say what finished before going
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stopped)
    pool = None
    try:
        if a.jobs <= 1 or len(ops) == 1:
            for op in ops:
                run_op(op, *args, emit=emit)
                done.append(op)
        else:
            import concurrent.futures as cf
            import multiprocessing

            # Largest first: the slowest op bounds the run.
            heavy = ["conv_transpose_bn_act", "conv_transpose2d", "conv_affine_act", "sqrtm_trace", "sqrtm",
                     "self_attention2d", "conv_bn_act"]
            order = [op for op in heavy if op in ops] + [op for op in ops if op not in heavy]
            ctx = multiprocessing.get_context("spawn")  # a CUDA context cannot be forked
            pool = cf.ProcessPoolExecutor(max_workers=a.jobs, mp_context=ctx)
            futures = {pool.submit(run_op, op, *args): op for op in order}
            for fut in cf.as_completed(futures):
                op = futures[fut]
                try:
                    emit(fut.result())
                except Exception as err:  # the worker died (a crash inside a kernel, say)
                    emit([{"op": op, "backend": "*", "dtype": dtypes[0], "shape": "", "errors": {},
                           "seconds": 0.0, "status": "ERROR", "message": f"worker: {type(err).__name__}: {err}"}])
                done.append(op)
            pool.shutdown()
    except KeyboardInterrupt:
        # `timeout` signals the whole process group, workers included: report, and do not wait for them.
        summary(done, [op for op in ops if op not in done])
        sys.stdout.flush()
        os._exit(124)
    return summary(done, [])


if __name__ == "__main__":
    sys.exit(main())
