"""Reference for ``bias_act``: fused bias + activation, in plain PyTorch.

This file is the definition of correct for every backend of
:func:`ganfast.ops.bias_act`.  It is imported by the torch backend, the tests
and the benchmarks alike.

    z  = x + bias          (bias broadcast along ``dim``)
    y0 = act(z) * gain
    y  = clamp(y0, -clamp, clamp)     (when ``clamp`` is given)

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
from .._activations import ACTIVATIONS, ALIASES, Activation, canonical_act, has_grad2
from .._dtypes import compute_dtype

Tensor = torch.Tensor

__all__ = [
    "ACTIVATIONS", "ALIASES", "Activation", "bias_act", "bias_act_grad", "bias_act_grad2", "canonical_act",
    "compute_dtype", "has_grad2",
]


def _pre(x: Tensor, bias: Optional[Tensor], dim: int) -> Tensor:
    z = x.to(compute_dtype(x.dtype))
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        z = z + bias.to(z.dtype).reshape(shape)
    return z


def _through_clamp(grad: Tensor, z: Tensor, spec: Activation, alpha: float, gain: float,
                   clamp: Optional[float]) -> Tensor:
    """``grad`` (in z's dtype) after clamp's backward: a select, inclusive at the bounds, as torch's."""
    g = grad.to(z.dtype)
    if clamp is None:
        return g
    y0 = spec.fn(z, alpha) * gain
    return torch.where((y0 >= -clamp) & (y0 <= clamp), g, torch.zeros((), dtype=g.dtype, device=g.device))


def bias_act(x: Tensor, bias: Optional[Tensor] = None, act: str = "leaky_relu", negative_slope: float = 0.2,
             gain: float = 1.0, clamp: Optional[float] = None, dim: int = 1) -> Tensor:
    """Reference forward: ``clamp(act(x + bias) * gain, -clamp, clamp)``."""
    spec = ACTIVATIONS[canonical_act(act)]
    y = spec.fn(_pre(x, bias, dim), negative_slope)
    if gain != 1:
        y = y * gain
    if clamp is not None:
        y = torch.clamp(y, -clamp, clamp)
    return y.to(x.dtype)


def bias_act_grad(grad: Tensor, x: Tensor, bias: Optional[Tensor], act: str, negative_slope: float, gain: float,
                  clamp: Optional[float], dim: int) -> Tensor:
    """d bias_act / d x applied to ``grad`` (equal to the gradient w.r.t. z).

    Returned in the dtype of ``x``.  Linear in ``grad``.
    """
    spec = ACTIVATIONS[canonical_act(act)]
    z = _pre(x, bias, dim)
    # Chain rule in torch's order: clamp's backward, the gain, then the activation's backward.
    d = spec.backward(_through_clamp(grad, z, spec, negative_slope, gain, clamp) * gain, z, negative_slope)
    return d.to(x.dtype)


def bias_act_grad2(grad_dz: Tensor, grad: Tensor, x: Tensor, bias: Optional[Tensor], act: str, negative_slope: float,
                   gain: float, clamp: Optional[float], dim: int) -> Tensor:
    """The input term of the double backward, d/dz <grad_dz, bias_act_grad(grad, z)>.

    ``grad_dz * grad * gain * act''(z) * mask``, in the compute dtype (float32
    or float64).  Plain differentiable torch, so third and higher derivatives
    follow from autograd.  Only for acts with :func:`has_grad2`.
    """
    spec = ACTIVATIONS[canonical_act(act)]
    if spec.grad2 is None:
        raise ValueError(f"act {act!r} has no second-derivative term")
    z = _pre(x, bias, dim)
    g = _through_clamp(grad, z, spec, negative_slope, gain, clamp)
    out = grad_dz.to(z.dtype) * (g * gain) * spec.grad2(z, negative_slope)
    return out
