"""``instance_norm_act``: InstanceNorm (optional affine and running statistics) then ReLU / LeakyReLU / nothing.

The layer tail of the translation GANs' generators (pix2pix, CycleGAN:
Conv -> InstanceNorm -> ReLU on every layer).  Eager PyTorch runs
InstanceNorm as a statistics pass and a normalise pass, then the
activation as another read and write of the whole activation.

An instance norm of x (N, C, *) is a batch norm of the (1, N*C, *) tensor:
every (sample, channel) plane is one "channel".  So this op runs
:mod:`ganfast.ops.batch_norm_act`'s implementations on that view, and
inherits their numerics and their pass structure:

forward   one statistics pass (per-tile Welford/Chan partials merged in
          float64 on the ``triton`` backend: exact when |mean| >> std),
          then one pass that normalises, applies the affine (the (C,)
          weight and bias repeated over the batch) and the activation.
          Only x and two (N*C,) vectors are saved.
backward  one reduction pass (per plane: sums of gz and gz * (x - mean)),
          then one pass that writes dx, InstanceNorm's and the activation's
          backward fused; d weight and d bias sum the per-plane terms over
          the batch.

Layouts: a contiguous (NCHW) x is viewed as (1, N*C, *) without a copy.
Any other dense layout (channels_last) runs the same kernels once per
sample on ``x[n:n+1]`` (whose (1, C, *) planes are the channels) and
copies each sample's result into the output: N launches per pass and one
extra write of the output; a dedicated channels_last kernel would save
both (not written).

Derivatives: first order runs the selected backend's kernels
(``ganfast::instance_norm_act_backward``); a differentiable backward
(``create_graph=True``: R1, WGAN-GP through a translation discriminator
or a generator) recomputes through the reference with autograd, which
supports every order.

Eval with running statistics (``use_input_stats=False``) and the ``aten``
backend run ``F.instance_norm`` then the activation under plain autograd,
as ``nn.Sequential(nn.InstanceNorm2d, nn.ReLU())`` does (out of place:
see :func:`aten_forward`).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import _backend, _layout
from .._checks import check_choice, check_device, check_float, check_ndim, check_shape, check_tensor, require
from .._dtypes import HALF_DTYPES, compute_dtype
from ..ref import instance_norm_act as ref
from .batch_norm_act import norm_act_autograd, norm_scale_shift, register_backends

Tensor = torch.Tensor

OP = "instance_norm_act"

# instance_norm_act's kernels are batch_norm_act's, run on the (1, N*C, *) view.
register_backends(OP)


def _pieces(t: Tensor) -> Tuple[List[Tensor], bool]:
    """Batch-norm-shaped views of the dense ``t`` whose channels, in order, are t's (n, c) planes.

    ``([t.view(1, N*C, *)], True)`` when t is contiguous, else ``([t[n:n+1] for n], False)``.
    """
    n, c = t.shape[0], t.shape[1]
    if t.is_contiguous():
        return [t.view(1, n * c, *t.shape[2:])], True
    return [t[i:i + 1] for i in range(n)], False


def _assemble(outs: List[Tensor], flat: bool, like: Tensor) -> Tensor:
    if flat:
        return outs[0].view(like.shape)
    out = torch.empty_like(like, dtype=outs[0].dtype)
    for i, o in enumerate(outs):
        out[i:i + 1].copy_(o)
    return out


def _impl(backend: str, device: torch.device):
    """The host functions of ``backend``; ``aten`` (F.instance_norm under plain autograd, no registered op) has
    none, so a direct call of the registered op with it runs the ``torch`` implementation."""
    return _backend.select(OP, "torch" if backend == "aten" else backend, device)[1]


def _per_plane(v: Optional[Tensor], n: int) -> Optional[Tensor]:
    return None if v is None else v.repeat(n)


@torch.library.custom_op("ganfast::instance_norm_act", mutates_args=())
def _instance_norm_act_op(
    x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float, negative_slope: float, backend: str
) -> Tuple[Tensor, Tensor, Tensor]:
    """(out, per-plane mean, per-plane biased variance), the last two (N*C,) in float32 (float64 for float64 x)."""
    impl = _impl(backend, x.device)
    x = _layout.dense(x)
    n = x.shape[0]
    pieces, flat = _pieces(x)
    stats = [impl.channel_stats(p) for p in pieces]
    mean = torch.cat([m for m, _ in stats])
    var = torch.cat([v for _, v in stats])
    _, scale, shift = norm_scale_shift(_per_plane(weight, n), _per_plane(bias, n), var, eps)
    k = pieces[0].shape[1]
    outs = [impl.scale_shift_act(p, scale[i * k:(i + 1) * k], shift[i * k:(i + 1) * k], negative_slope,
                                 mean[i * k:(i + 1) * k]) for i, p in enumerate(pieces)]
    return _assemble(outs, flat, x), mean, var


def check_args(x: Any, weight: Any, bias: Any, eps: Any, negative_slope: Any) -> Tuple[float, float]:
    """Check the registered op's arguments: ``(eps, negative_slope)`` as floats.

    Called by :func:`instance_norm_act` and by both fake implementations.

    Raises:
        TypeError: ``x``, ``weight`` or ``bias`` is not a float tensor (the
            latter two may be None), or a number is not a number.
        ValueError: ``x`` is not (N, C, L), (N, C, H, W) or (N, C, D, H, W),
            or is empty; ``weight`` / ``bias`` are not (C,) on x's device;
            ``eps`` is not positive.
    """
    check_tensor(x, "x")
    check_ndim(x, "x", (3, 4, 5), "be (N, C, L), (N, C, H, W) or (N, C, D, H, W)")
    require(x.numel() > 0, ValueError, lambda: f"x must not be empty; got shape {tuple(x.shape)}")
    for t, name in ((weight, "weight"), (bias, "bias")):
        if check_tensor(t, name, optional=True) is not None:
            check_shape(t, name, (x.shape[1],), " (one value per channel of x)")
            check_device(t, name, x.device, "x")
    return check_float(eps, "eps", positive=True), check_float(negative_slope, "negative_slope")


@_instance_norm_act_op.register_fake
def _(x, weight, bias, eps, negative_slope, backend):
    check_args(x, weight, bias, eps, negative_slope)
    stats = x.new_empty((x.shape[0] * x.shape[1],), dtype=compute_dtype(x.dtype))
    return torch.empty_like(x), stats, torch.empty_like(stats)


@torch.library.custom_op("ganfast::instance_norm_act_backward", mutates_args=())
def _instance_norm_act_backward_op(
    grad: Tensor,
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    mean: Tensor,
    var: Tensor,
    eps: float,
    negative_slope: float,
    backend: str,
) -> Tuple[Tensor, Tensor, Tensor]:
    """(dx, d weight, d bias); the last two (C,) in the statistics dtype, as if affine."""
    impl = _impl(backend, x.device)
    x = _layout.dense(x)
    n, c = x.shape[0], x.shape[1]
    grad = _layout.like(grad, x)
    pieces, flat = _pieces(x)
    gpieces, _ = _pieces(grad)
    invstd, scale, shift = norm_scale_shift(_per_plane(weight, n), _per_plane(bias, n), var, eps)
    count = x.numel() // (n * c)
    k = pieces[0].shape[1]
    sums_gz, sums_gz_xc, dxs = [], [], []
    for i, (p, g) in enumerate(zip(pieces, gpieces)):
        s = slice(i * k, (i + 1) * k)
        sum_gz, sum_gz_xc = impl.scale_shift_act_backward_reduce(g, p, scale[s], shift[s], mean[s], negative_slope)
        dxs.append(impl.bn_act_backward_apply(g, p, scale[s], shift[s], mean[s], invstd[s], scale[s], sum_gz,
                                              sum_gz_xc, count, negative_slope))
        sums_gz.append(sum_gz)
        sums_gz_xc.append(sum_gz_xc)
    sum_gz, sum_gz_xc = torch.cat(sums_gz), torch.cat(sums_gz_xc)
    dweight = (sum_gz_xc * invstd).view(n, c).sum(0)
    return _assemble(dxs, flat, x), dweight, sum_gz.view(n, c).sum(0)


@_instance_norm_act_backward_op.register_fake
def _(grad, x, weight, bias, mean, var, eps, negative_slope, backend):
    check_args(x, weight, bias, eps, negative_slope)
    check_tensor(grad, "grad")
    check_shape(grad, "grad", tuple(x.shape), " (x's)")
    for t, name in ((mean, "mean"), (var, "var")):
        check_tensor(t, name, dtypes=(compute_dtype(x.dtype),))
        check_shape(t, name, (x.shape[0] * x.shape[1],), " (one value per (sample, channel) plane of x)")
    vec = mean.new_empty((x.shape[1],))
    return torch.empty_like(x), vec, torch.empty_like(vec)


_backward, _setup = norm_act_autograd(ref.instance_norm_act, _instance_norm_act_backward_op)
_instance_norm_act_op.register_autograd(_backward, setup_context=_setup)


def aten_forward(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], running_mean: Optional[Tensor],
                 running_var: Optional[Tensor], use_input_stats: bool, momentum: float, eps: float,
                 negative_slope: float) -> Tensor:
    """``F.instance_norm`` then the activation, under plain autograd (the ``aten`` backend and eval).

    Out of place: F.instance_norm's output is a view of a batch norm's, and an in-place activation on it
    makes autograd rebase the view (1.8x slower forward + backward on the CPU at 4x64x64x64, measured).
    """
    out = F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
    if negative_slope == 1.0:
        return out
    return torch.relu(out) if negative_slope == 0.0 else F.leaky_relu(out, negative_slope)


def instance_norm_act(
    x: Tensor,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    running_mean: Optional[Tensor] = None,
    running_var: Optional[Tensor] = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    act: str = "relu",
    negative_slope: float = 0.2,
    backend: Optional[str] = None,
) -> Tensor:
    """``act(F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps))``, fused.

    Instance normalization (Ulyanov, Vedaldi & Lempitsky 2016, eq. 2: each
    (sample, channel) plane minus its mean, over the square root of its
    biased variance + eps), the optional per-channel affine, then ReLU,
    LeakyReLU or nothing: the Conv -> InstanceNorm -> ReLU layers of
    pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017).  Arguments
    follow ``F.instance_norm``: with ``use_input_stats=True`` (what
    ``nn.InstanceNorm2d`` does unless ``track_running_stats`` in eval) the
    planes' own statistics normalise and ``running_mean`` / ``running_var``
    (if given) move toward the batch averages of the plane means and
    unbiased plane variances, with factor ``momentum``, in place; with
    ``use_input_stats=False`` the running statistics normalise.

    Args:
        x: ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``, float16,
            bfloat16, float32 or float64, any layout (contiguous runs as one
            (1, N*C, *) batch norm; channels_last once per sample).
        weight, bias: optional ``(C,)`` affine parameters (``affine=True``).
        running_mean, running_var: optional ``(C,)`` running statistics,
            both or neither; required with ``use_input_stats=False``.
        use_input_stats: normalise by each plane's statistics (default True).
        momentum: running-average factor in [0, 1] (default 0.1).
        eps: added to the variance (positive; default 1e-5, torch's).
        act: ``"relu"`` (default), ``"leaky_relu"`` or ``"linear"`` (none).
        negative_slope: the LeakyReLU slope (default 0.2, pix2pix's; used
            only with ``act="leaky_relu"``).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None
            for the current choice (:func:`ganfast.use_backend`).

    Returns:
        x's shape, dtype and layout.  Statistics accumulate in float32
        (float64 for float64 inputs).

    Raises:
        TypeError: a tensor argument is not a floating-point tensor, a
            number is not a number, ``use_input_stats`` is not a bool, or
            ``act`` is not a string.
        ValueError: ``act`` is not one of the three names; ``x`` is not 3-,
            4- or 5-D, or is empty; a vector is
            not (C,) on x's device; only one running statistic;
            ``use_input_stats=False`` without running statistics; ``eps`` not
            positive; ``momentum`` outside [0, 1]; one element per plane
            with ``use_input_stats=True`` (torch's rule: no variance); an
            unknown backend name.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order (the module docstring says which path
    serves which order).
    """
    eps, negative_slope = check_args(x, weight, bias, eps, negative_slope)
    check_choice(act, "act", tuple(ref.SLOPES))
    slope = ref.slope_of(act, negative_slope)
    if not isinstance(use_input_stats, bool):
        raise TypeError(f"use_input_stats must be a bool; got {type(use_input_stats).__name__}")
    momentum = check_float(momentum, "momentum")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1]; got {momentum}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (both or neither)")
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var")):
        if check_tensor(t, name, optional=True) is not None:
            check_shape(t, name, (x.shape[1],), " (one value per channel of x)")
            check_device(t, name, x.device, "x")
    if not use_input_stats and running_mean is None:
        raise ValueError("use_input_stats=False normalises by the running statistics: give running_mean and "
                         "running_var")
    count = math.prod(x.shape[2:])
    if use_input_stats and count <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(x.shape)}")
    backend = _backend.requested(backend)
    if not use_input_stats:  # the running statistics are read, not written: x's dtype for ATen
        w, b, rm, rv = (None if t is None else t.to(x.dtype) for t in (weight, bias, running_mean, running_var))
        return aten_forward(x, w, b, rm, rv, False, momentum, eps, slope)
    if _backend.resolve(OP, backend, x.device) == "aten":
        same = all(t is None or t.dtype == x.dtype for t in (weight, bias, running_mean, running_var))
        if x.dtype not in HALF_DTYPES and same:
            return aten_forward(x, weight, bias, running_mean, running_var, True, momentum, eps, slope)
        # as batch_norm_act: ATen's half-precision CPU norm is outside the reference's tolerance; and ATen
        # refuses parameters in another dtype than x (a float32 affine with float64 x), the op does not
        backend = "torch"
    out, mean, var = _instance_norm_act_op(x, weight, bias, eps, slope, backend)
    if running_mean is not None:
        with torch.no_grad():
            n, c = x.shape[0], x.shape[1]
            running_mean.mul_(1 - momentum).add_(mean.view(n, c).mean(0).to(running_mean.dtype), alpha=momentum)
            unbiased = (var * (count / (count - 1))).view(n, c).mean(0)
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    return out


#: Registered ops of this module, for opcheck.
CUSTOM_OPS = (_instance_norm_act_op, _instance_norm_act_backward_op)
