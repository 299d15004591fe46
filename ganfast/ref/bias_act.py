"""Reference for ``bias_act``: fused bias + activation, in plain PyTorch.

This file is the definition of correct for every backend of
:func:`ganfast.ops.bias_act`.  It is imported by the torch backend, the tests
and the benchmarks alike.

    z  = x + bias          (bias broadcast along ``dim``)
    y0 = act(z) * gain
    y  = clamp(y0, -clamp, clamp)     (when ``clamp`` is given)

``act="prelu"`` (He et al. 2015, eq. 1) is ``z > 0 ? z : alpha * z`` with
``alpha`` a tensor of one slope per channel (broadcast along ``dim``, like
the bias) or one shared slope, shape ``(1,)``: torch.nn.PReLU's semantics.
Its gradient w.r.t. ``alpha`` is :func:`prelu_alpha_grad` (per element,
before the sum over everything but ``dim``), and :func:`prelu_grad2` holds
the cross terms of its double backward.

The arithmetic runs in float32 for float16/bfloat16/float32 inputs and in
float64 for float64 inputs; the result has the dtype of ``x``.

:func:`bias_act` is differentiable by autograd and is what the tests compare
against.  :func:`bias_act_grad` and :func:`bias_act_grad2` are the closed forms
of its first and second derivatives that the fast backends implement; the
tests check them against autograd of :func:`bias_act`, so the conventions at
kinks (relu at 0, clamp at its bounds, NaN) are torch's.
"""

from __future__ import annotations

from typing import Optional

import torch

# The activation table and the dtype rule are shared with the kernels, which
# must not import the reference: both live in leaf modules.
from .._activations import ACTIVATIONS, ALIASES, Activation, canonical_act, has_channel_slope, has_grad2
from .._dtypes import compute_dtype

Tensor = torch.Tensor

__all__ = [
    "ACTIVATIONS", "ALIASES", "Activation", "bias_act", "bias_act_grad", "bias_act_grad2", "canonical_act",
    "compute_dtype", "has_channel_slope", "has_grad2", "prelu_alpha_grad", "prelu_grad2",
]


def _pre(x: Tensor, bias: Optional[Tensor], dim: int) -> Tensor:
    z = x.to(compute_dtype(x.dtype))
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        z = z + bias.to(z.dtype).reshape(shape)
    return z


def _along(t: Tensor, z: Tensor, dim: int) -> Tensor:
    """A per-channel vector (or a single value, shape (1,)) in z's dtype, shaped to broadcast along ``dim``."""
    shape = [1] * z.dim()
    if shape:
        shape[dim] = -1
    return t.to(z.dtype).reshape(shape)


def _slope(spec: Activation, negative_slope: float, alpha: Optional[Tensor], z: Tensor, dim: int):
    """What the table's functions take as their slope: the float, or prelu's tensor shaped against z."""
    if not spec.channel_slope:
        return negative_slope
    if alpha is None:
        raise ValueError(f"act {spec.name!r} needs alpha, a tensor of slopes")
    return _along(alpha, z, dim)


def _through_clamp(grad: Tensor, z: Tensor, spec: Activation, alpha: float, gain: float,
                   clamp: Optional[float]) -> Tensor:
    """``grad`` (in z's dtype) after clamp's backward: a select, inclusive at the bounds, as torch's."""
    g = grad.to(z.dtype)
    if clamp is None:
        return g
    y0 = spec.fn(z, alpha) * gain
    return torch.where((y0 >= -clamp) & (y0 <= clamp), g, torch.zeros((), dtype=g.dtype, device=g.device))


def bias_act(x: Tensor, bias: Optional[Tensor] = None, act: str = "leaky_relu", negative_slope: float = 0.2,
             gain: float = 1.0, clamp: Optional[float] = None, dim: int = 1, alpha: Optional[Tensor] = None) -> Tensor:
    """Reference forward: ``clamp(act(x + bias) * gain, -clamp, clamp)``; ``alpha``: prelu's slopes."""
    spec = ACTIVATIONS[canonical_act(act)]
    z = _pre(x, bias, dim)
    y = spec.fn(z, _slope(spec, negative_slope, alpha, z, dim))
    if gain != 1:
        y = y * gain
    if clamp is not None:
        y = torch.clamp(y, -clamp, clamp)
    return y.to(x.dtype)


def bias_act_grad(grad: Tensor, x: Tensor, bias: Optional[Tensor], act: str, negative_slope: float, gain: float,
                  clamp: Optional[float], dim: int, alpha: Optional[Tensor] = None) -> Tensor:
    """d bias_act / d x applied to ``grad`` (equal to the gradient w.r.t. z).

    Returned in the dtype of ``x``.  Linear in ``grad``.
    """
    spec = ACTIVATIONS[canonical_act(act)]
    z = _pre(x, bias, dim)
    slope = _slope(spec, negative_slope, alpha, z, dim)
    # Chain rule in torch's order: clamp's backward, the gain, then the activation's backward.
    d = spec.backward(_through_clamp(grad, z, spec, slope, gain, clamp) * gain, z, slope)
    return d.to(x.dtype)


def _prelu_parts(grad: Tensor, x: Tensor, bias: Optional[Tensor], alpha: Tensor, gain: float,
                 clamp: Optional[float], dim: int):
    """``(z, a, gz, neg)``: z, the slopes against z, the gradient at prelu's output (after clamp and gain), and
    the selector of prelu's negative side, as torch's ``z > 0`` leaves it (NaN falls on the slope side)."""
    spec = ACTIVATIONS["prelu"]
    z = _pre(x, bias, dim)
    a = _along(alpha, z, dim)
    gz = _through_clamp(grad, z, spec, a, gain, clamp) * gain
    return z, a, gz, ~(z > 0)


def prelu_alpha_grad(grad: Tensor, x: Tensor, bias: Optional[Tensor], alpha: Tensor, gain: float,
                     clamp: Optional[float], dim: int) -> Tensor:
    """The gradient w.r.t. prelu's slope, per element: ``z > 0 ? 0 : gz * z``.

    ``gz`` is ``grad`` after clamp's backward and the gain.  Summed over
    every dimension but ``dim`` (and over ``dim`` too for a shared slope) it
    is d bias_act / d alpha applied to ``grad``, as torch.nn.functional.prelu's
    weight gradient.  In the compute dtype; linear in ``grad``; plain
    differentiable torch.
    """
    z, _, gz, neg = _prelu_parts(grad, x, bias, alpha, gain, clamp, dim)
    return torch.where(neg, gz * z, torch.zeros((), dtype=z.dtype, device=z.device))


def prelu_grad2(grad_dz: Optional[Tensor], grad_da: Optional[Tensor], grad: Tensor, x: Tensor,
                bias: Optional[Tensor], alpha: Tensor, gain: float, clamp: Optional[float], dim: int):
    """The cross terms of prelu's double backward, per element, in the compute dtype.

    The first backward maps ``grad`` to ``dz = z > 0 ? gz : a * gz`` and
    ``da = sum(z > 0 ? 0 : gz * z)`` (gz: ``grad`` through clamp and gain,
    which are piecewise constant in z and a).  Given the gradients
    ``grad_dz`` (like x) and ``grad_da`` (like alpha) of those outputs,
    returns ``(t_grad, t_z, t_a)``:

    * ``t_grad``: d<grad_da, da>/d grad, ``grad_da * mask * gain * (z > 0 ? 0 : z)``
      (the ``grad_dz`` half, linear, is the first backward itself);
    * ``t_z``: d<grad_da, da>/d z, ``grad_da * (z > 0 ? 0 : gz)`` (dz's own
      derivative in z is zero almost everywhere);
    * ``t_a``: d<grad_dz, dz>/d a, ``grad_dz * (z > 0 ? 0 : gz)``, per element
      (sum it like the slope gradient).

    ``None`` for a missing upstream gradient gives ``None`` terms.  Plain
    differentiable torch: third and higher derivatives follow from autograd.
    """
    z, a, gz, neg = _prelu_parts(grad, x, bias, alpha, gain, clamp, dim)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    side = torch.where(neg, gz, zero)
    t_grad = t_z = t_a = None
    if grad_da is not None:
        gda = _along(grad_da, z, dim)
        dgz = _through_clamp(torch.ones_like(z), z, ACTIVATIONS["prelu"], a, gain, clamp) * gain
        t_grad = gda * torch.where(neg, dgz * z, zero)
        t_z = gda * side
    if grad_dz is not None:
        t_a = grad_dz.to(z.dtype) * side
    return t_grad, t_z, t_a


def bias_act_grad2(grad_dz: Tensor, grad: Tensor, x: Tensor, bias: Optional[Tensor], act: str, negative_slope: float,
                   gain: float, clamp: Optional[float], dim: int) -> Tensor:
    """The input term of the double backward, d/dz <grad_dz, bias_act_grad(grad, z)>.

    ``grad_dz * grad * gain * act''(z) * mask``, in the compute dtype (float32
    or float64).  Plain differentiable torch, so third and higher derivatives
    follow from autograd.  Only for acts with :func:`has_grad2`.
    """
    spec = ACTIVATIONS[canonical_act(act)]
    if spec.grad2 is None:
        # prelu included: its double backward's terms are prelu_grad2's.
        raise ValueError(f"act {act!r} has no second-derivative term")
    z = _pre(x, bias, dim)
    g = _through_clamp(grad, z, spec, negative_slope, gain, clamp)
    out = grad_dz.to(z.dtype) * (g * gain) * spec.grad2(z, negative_slope)
    return out
