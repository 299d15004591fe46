"""Autograd helpers every registered op shares.

Two ways an op's backward can be differentiated again (DESIGN.md, STYLE.md
convention 5), and one way to refuse:

* the backward is itself a registered op with its own autograd (bias_act's
  ``bias_act_grad``, which is linear in the incoming gradient);
* the backward recomputes through the reference with autograd when the
  gradient must itself be differentiable (``create_graph=True``: R1,
  WGAN-GP), which supports every order at the reference's cost, and only on
  the steps that ask for it: :func:`reference_grads`;
* the backward op has no derivative of its own, and asking for one raises
  instead of returning wrong numbers: :func:`first_order_only`.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import torch

Tensor = torch.Tensor

__all__ = [
    "differentiable_backward", "first_order_only", "no_context", "reference_grads", "register_first_order_only",
]


def differentiable_backward() -> bool:
    """Inside a backward: whether autograd records it (``create_graph=True``).

    Autograd runs a backward with grad mode on exactly when the gradient it
    computes must itself be differentiable.
    """
    return torch.is_grad_enabled()


def reference_grads(
    reference: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    needs: Sequence[bool],
    grad: Tensor,
) -> List[Optional[Tensor]]:
    """Gradients of ``reference(*inputs)`` against ``grad``, recorded for further differentiation.

    One entry per input: a tensor where ``needs`` is true (zeros where the
    reference does not depend on that input), None elsewhere.  The
    recomputation costs one reference forward and backward; the ops take it
    only when :func:`differentiable_backward` says so.
    """
    with torch.enable_grad():
        # Fresh views: when one input is computed from another (weight = v, bias = v.flip(0)), the gradient
        # with respect to the view is the partial derivative, as the backward must return; with respect to
        # the input itself autograd would add the path through the other input (counted twice then).
        inputs = [t.view_as(t) if n else t for t, n in zip(inputs, needs)]
        wrt = [t for t, n in zip(inputs, needs) if n]
        out = reference(*inputs)
        got = iter(torch.autograd.grad(out, wrt, grad, create_graph=True, allow_unused=True))
    grads = [next(got) if n else None for n in needs]
    return [torch.zeros_like(t) if g is None and n else g for g, t, n in zip(grads, inputs, needs)]


def first_order_only(op: str, hint: str = "") -> Callable[..., None]:
    """A ``register_autograd`` backward for a backward op that has no derivative: it raises.

    Raises (when called):
        NotImplementedError: naming ``op`` and, with ``hint``, what to do instead.
    """

    def backward(ctx, *grads):
        raise NotImplementedError(
            f"{op} supports first derivatives only; a second derivative (double backward) was requested"
            + (f"; {hint}" if hint else "")
        )

    return backward


def no_context(ctx, inputs, output) -> None:
    """``setup_context`` for :func:`first_order_only`: nothing to save."""


def register_first_order_only(backward_op: Any, op: str, recomputing: Optional[str] = None) -> None:
    """Give the registered ``backward_op`` an autograd that raises (:func:`first_order_only`).

    ``recomputing`` names the public function whose ``create_graph=True``
    path recomputes through the reference, for the message to point at.
    """
    hint = (f"differentiate {recomputing} with create_graph=True instead (it recomputes through the reference)"
            if recomputing else "")
    backward_op.register_autograd(first_order_only(op, hint), setup_context=no_context)
