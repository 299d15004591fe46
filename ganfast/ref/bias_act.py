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

import dataclasses
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Activation:
    """One row of the activation table that drives every backend.

    ``fn(z, alpha)``      the activation.
    ``backward(g, z, alpha)``  g * act'(z), computed as torch's own backward
                          does (a select at kinks for relu / leaky_relu, a
                          product otherwise), so that NaN and inf land where
                          they land in torch.
    ``grad2(z, alpha)``   its second derivative, or ``None`` where it is zero
                          almost everywhere (piecewise linear acts): the
                          double backward then has no input term.
    """

    name: str
    fn: Callable[[Tensor, float], Tensor]
    backward: Callable[[Tensor, Tensor, float], Tensor]
    grad2: Optional[Callable[[Tensor, float], Tensor]]


def _relu_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    # torch: threshold_backward(g, relu(z), 0), zero where the *result* is <= 0
    # (so a NaN input passes the gradient through).
    return torch.where(torch.relu(z) <= 0, torch.zeros((), dtype=g.dtype, device=g.device), g)


def _lrelu_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    # torch: leaky_relu_backward, z > 0 ? g : g * slope.
    return torch.where(z > 0, g, g * alpha)


def _tanh_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    t = torch.tanh(z)
    return g * (1 - t * t)


def _tanh_grad2(z: Tensor, alpha: float) -> Tensor:
    t = torch.tanh(z)
    return -2 * t * (1 - t * t)


def _sigmoid_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return g * (s * (1 - s))


def _sigmoid_grad2(z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s) * (1 - 2 * s)


def _silu_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return g * (s * (1 + z * (1 - s)))


def _silu_grad2(z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s) * (2 + z * (1 - 2 * s))


ACTIVATIONS: Dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", lambda z, a: z, lambda g, z, a: g, None),
        Activation("relu", lambda z, a: torch.relu(z), _relu_backward, None),
        Activation("leaky_relu", lambda z, a: F.leaky_relu(z, a), _lrelu_backward, None),
        Activation("tanh", lambda z, a: torch.tanh(z), _tanh_backward, _tanh_grad2),
        Activation("sigmoid", lambda z, a: torch.sigmoid(z), _sigmoid_backward, _sigmoid_grad2),
        Activation("silu", lambda z, a: F.silu(z), _silu_backward, _silu_grad2),
    )
}

#: Other names users write for the same activations.
ALIASES: Dict[str, str] = {"lrelu": "leaky_relu", "swish": "silu", "identity": "linear", "none": "linear"}


def canonical_act(act: str) -> str:
    """The table name for ``act`` (aliases resolved), or a ValueError."""
    if not isinstance(act, str):
        raise TypeError(f"act must be a string; got {type(act).__name__}")
    name = ALIASES.get(act.lower(), act.lower())
    if name not in ACTIVATIONS:
        valid = sorted(ACTIVATIONS) + sorted(ALIASES)
        raise ValueError(f"act must be one of {valid}; got {act!r}")
    return name


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


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


def bias_act(
    x: Tensor,
    bias: Optional[Tensor] = None,
    act: str = "leaky_relu",
    negative_slope: float = 0.2,
    gain: float = 1.0,
    clamp: Optional[float] = None,
    dim: int = 1,
) -> Tensor:
    """Reference forward: ``clamp(act(x + bias) * gain, -clamp, clamp)``."""
    spec = ACTIVATIONS[canonical_act(act)]
    y = spec.fn(_pre(x, bias, dim), negative_slope)
    if gain != 1:
        y = y * gain
    if clamp is not None:
        y = torch.clamp(y, -clamp, clamp)
    return y.to(x.dtype)


def bias_act_grad(
    grad: Tensor,
    x: Tensor,
    bias: Optional[Tensor],
    act: str,
    negative_slope: float,
    gain: float,
    clamp: Optional[float],
    dim: int,
) -> Tensor:
    """d bias_act / d x applied to ``grad`` (equal to the gradient w.r.t. z).

    Returned in the dtype of ``x``.  Linear in ``grad``.
    """
    spec = ACTIVATIONS[canonical_act(act)]
    z = _pre(x, bias, dim)
    # Chain rule in torch's order: clamp's backward, the gain, then the activation's backward.
    d = spec.backward(_through_clamp(grad, z, spec, negative_slope, gain, clamp) * gain, z, negative_slope)
    return d.to(x.dtype)


def has_grad2(act: str) -> bool:
    """Whether ``act``'s second derivative is non-zero somewhere."""
    return ACTIVATIONS[canonical_act(act)].grad2 is not None


def bias_act_grad2(
    grad_dz: Tensor,
    grad: Tensor,
    x: Tensor,
    bias: Optional[Tensor],
    act: str,
    negative_slope: float,
    gain: float,
    clamp: Optional[float],
    dim: int,
) -> Tensor:
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
