"""Checking an op's backend against its float64 reference.

One helper, :func:`check_op`, used by the test of every op: forward, first
derivatives and second derivatives of a backend in a given dtype against the
reference evaluated in float64 on the same input values, plus
``torch.autograd.gradcheck`` / ``gradgradcheck`` in float64 where the backend
runs in float64.  Tolerances live in :data:`TOLERANCES` (per element) and
:data:`NORM_TOLERANCES` (the benchmark's norm-wise gate), one table for the
whole project.

:func:`backend_cases` is what the test suite parametrises ``backend`` with:
every backend the registry (``ganfast._backend.OPS``) lists for an op, the
device it is tested on here, and whether it can run there, so a new backend
is tested everywhere without editing a test.
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from . import _backend
from ._errors import Availability

Tensor = torch.Tensor

#: (dtype, derivative order) -> (rtol, atol).  An element passes when
#: ``|got - want| <= atol * max|want| + rtol * |want|``: relative error per
#: element, with a floor proportional to the tensor's scale so that entries
#: that are near zero through cancellation (sums over a batch) are judged
#: against the magnitude of the tensor, not their own.
#: float32: DESIGN.md's 1e-5 relative.  float16/bfloat16: DESIGN.md's 1e-2;
#: bfloat16 keeps 8 significant bits, so one rounding of an output is already
#: 2**-9 ~ 2e-3 relative, and a gradient summed over a batch from rounded
#: terms needs the 1e-2 floor.
TOLERANCES: Dict[Tuple[torch.dtype, int], Tuple[float, float]] = {
    (torch.float64, 0): (1e-10, 1e-12),
    (torch.float64, 1): (1e-10, 1e-12),
    (torch.float64, 2): (1e-10, 1e-12),
    (torch.float32, 0): (1e-5, 1e-6),
    (torch.float32, 1): (1e-5, 1e-6),
    (torch.float32, 2): (1e-5, 1e-6),
    (torch.float16, 0): (1e-2, 1e-3),
    (torch.float16, 1): (1e-2, 1e-3),
    (torch.float16, 2): (1e-2, 1e-3),
    (torch.bfloat16, 0): (1e-2, 1e-3),
    (torch.bfloat16, 1): (1e-2, 1e-2),
    (torch.bfloat16, 2): (1e-2, 1e-2),
}

#: Largest input (elements) that gradcheck / gradgradcheck are run on: they
#: evaluate the op once per input element.
GRADCHECK_MAX_NUMEL = 4096

#: dtype -> norm-wise relative error, ``||got - want|| / ||want||``, that
#: ``ganfast bench`` (and the pytest-benchmark suites) accept before timing a
#: provider.  It differs from :data:`TOLERANCES` on purpose:
#: * it judges whole outputs and every gradient at benchmark sizes (up to
#:   64M elements, gradients summed over batches of thousands), against
#:   float64 *eager PyTorch*, the baseline the benchmark times, not the
#:   reference; a per-element bound would fail on the one element in a
#:   million whose value cancels to near zero, which a norm does not see;
#: * its job is to stop a wrong kernel from being timed, not to certify one
#:   (the tests do that per element, with :data:`TOLERANCES`).
#: float32: every provider computes in float32, and sums of millions of
#: float32 terms stay far under 1e-4.  bfloat16 / float16: the eager
#: baseline itself rounds to the storage type after every step (add,
#: activation, gain), which alone reaches a few 1e-3 in bfloat16 (2^-9 per
#: rounding) and ~1e-3 in float16 (2^-11).
NORM_TOLERANCES: Dict[torch.dtype, float] = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 5e-3}


def tolerance(dtype: torch.dtype, order: int = 0) -> Tuple[float, float]:
    """``(rtol, atol)`` of :data:`TOLERANCES` for ``dtype`` and derivative ``order``."""
    return TOLERANCES[(dtype, order)]


def norm_tolerance(dtype: torch.dtype) -> float:
    """The norm-wise bound of :data:`NORM_TOLERANCES` (1e-2 for a dtype it does not list)."""
    return NORM_TOLERANCES.get(dtype, 1e-2)


class BackendCase(NamedTuple):
    """One backend of an op as the tests see it here."""

    backend: str
    device: str
    availability: Availability


def device_for(backend: str) -> str:
    """The device type ``backend`` is tested on here.

    ``torch`` runs on the CPU (the reference needs no GPU), and so does
    ``aten`` (the CPU's ``auto``); the others on the GPU when one is
    visible, else on the CPU, where the ``triton`` kernels run under the
    interpreter and ``cuda`` reports why it cannot.
    """
    if backend in ("torch", "aten"):
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def backend_cases(op: str) -> List[BackendCase]:
    """Every backend of ``op`` (its row in ``ganfast._backend.OPS``), its test device and availability."""
    return [BackendCase(b, device_for(b), _backend.status(op, b, device_for(b)))
            for b in _backend.spec(op).backends]


def runnable_backends(op: str) -> List[str]:
    """The backends of ``op`` that can run here (on their :func:`test_device`)."""
    return [c.backend for c in backend_cases(op) if c.availability]


def assert_close(got: Optional[Tensor], want: Optional[Tensor], dtype: torch.dtype, order: int, what: str,
                 slack: Optional[Tensor] = None) -> None:
    """Compare ``got`` (computed in ``dtype``) with the float64 ``want``.

    NaN and inf must appear in the same places with the same signs.
    ``slack``: an element-wise allowance (float64, ``want``'s shape) added to
    the bound, for an error the op's design admits beyond the table's
    (:func:`check_op`'s ``forward_slack``).
    """
    if got is None or want is None:
        if got is None and want is None:
            return
        # A missing gradient stands for zeros; anything else is a mismatch.
        present = got if got is not None else want
        if torch.count_nonzero(present) == 0:
            return
        raise AssertionError(f"{what}: one side has no gradient, the other is non-zero")
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != reference {tuple(want.shape)}"
    g = got.detach().to(torch.float64)
    w = want.detach().to(torch.float64)
    nan_g, nan_w = torch.isnan(g), torch.isnan(w)
    if not torch.equal(nan_g, nan_w):
        raise AssertionError(f"{what}: NaN at {int((nan_g != nan_w).sum())} places where the reference differs")
    inf_g, inf_w = torch.isinf(g), torch.isinf(w)
    if not torch.equal(inf_g, inf_w) or not torch.equal(g[inf_g], w[inf_w]):
        raise AssertionError(f"{what}: inf differs from the reference")
    finite = ~(nan_w | inf_w)
    g, w = g[finite], w[finite]
    if w.numel() == 0:
        return
    rtol, atol = tolerance(dtype, order)
    scale = w.abs().max()
    err = (g - w).abs()
    bound = atol * scale + rtol * w.abs()
    if slack is not None:
        bound = bound + slack.detach().to(torch.float64).expand(finite.shape)[finite]
    bad = err > bound
    if bool(bad.any()):
        i = int(torch.argmax((err - bound).flatten()))
        raise AssertionError(
            f"{what} ({dtype}, order {order}): {int(bad.sum())} of {w.numel()} elements exceed "
            f"rtol={rtol}, atol={atol}*{float(scale):.3g}; worst: got {float(g.flatten()[i])!r}, "
            f"want {float(w.flatten()[i])!r}"
        )


def _grads(out: Tensor, inputs: Sequence[Tensor], seed: Tensor, create_graph: bool):
    return torch.autograd.grad(out, inputs, seed, create_graph=create_graph, allow_unused=True)


def check_op(
    fast: Callable[..., Tensor],
    reference: Callable[..., Tensor],
    inputs: Sequence[Optional[Tensor]],
    *,
    differentiable: Sequence[int],
    order: int = 2,
    gradcheck: Optional[bool] = None,
    generator: Optional[torch.Generator] = None,
    forward_slack: Optional[Callable[..., Tensor]] = None,
) -> None:
    """Check ``fast(*inputs)`` against ``reference`` in float64.

    Args:
        fast: the backend under test; called with ``inputs`` as given.
        reference: the reference; called with float64 copies of ``inputs``.
        inputs: tensors (or None) in the dtype under test, fresh random values.
        differentiable: indices of the inputs to differentiate with respect to.
        order: highest derivative order to compare (0, 1 or 2).
        gradcheck: also run gradcheck (and gradgradcheck for order 2) on
            ``fast`` in float64.  None (default): when every input has at
            most :data:`GRADCHECK_MAX_NUMEL` elements, else not; True: always,
            and ValueError when an input is larger (gradcheck evaluates the
            op once per element); False: never.
        generator: source of the random upstream gradients.
        forward_slack: called with the float64 inputs, an element-wise
            allowance added to the forward's bound: only for an error the
            op's design admits and documents (a half-precision operand that
            the kernel forms itself, as modulated_conv2d's x * s), written
            as a rounding-error bound (unit roundoff x the sum of absolute
            terms), never as a looser tolerance.
    """
    dtype = next(t.dtype for t in inputs if t is not None)

    def leaf(t: Optional[Tensor], i: int, to: Optional[torch.dtype] = None) -> Optional[Tensor]:
        if t is None:
            return None
        t = t.detach()
        if to is not None:
            t = t.to(to)
        return t.requires_grad_(i in differentiable and order > 0)

    xs = [leaf(t, i) for i, t in enumerate(inputs)]
    rs = [leaf(t, i, torch.float64) for i, t in enumerate(inputs)]
    y = fast(*xs)
    r = reference(*rs)
    assert y.dtype == dtype, f"output dtype {y.dtype} != input dtype {dtype}"
    slack = None
    if forward_slack is not None:
        with torch.no_grad():
            slack = forward_slack(*[None if t is None else t.detach() for t in rs])
    assert_close(y, r, dtype, 0, "forward", slack)
    if order == 0:
        return

    diff_x = [xs[i] for i in differentiable if xs[i] is not None]
    diff_r = [rs[i] for i in differentiable if rs[i] is not None]
    # The reference gets the upstream gradient the op under test gets: rounded to its dtype.
    seed = torch.randn(y.shape, generator=generator, dtype=torch.float64, device="cpu").to(y.device)
    seed = seed.to(dtype).to(torch.float64)
    gx = _grads(y, diff_x, seed.to(dtype), create_graph=order > 1)
    gr = _grads(r, diff_r, seed, create_graph=order > 1)
    for k, (a, b) in enumerate(zip(gx, gr)):
        assert_close(a, b, dtype, 1, f"gradient {k}")

    if order > 1:
        # Gradient of <grads, v> w.r.t. the inputs: the double backward that
        # R1 and WGAN-GP penalties take.
        vs = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(dtype).to(torch.float64).to(t.device)
              for t in diff_r]
        sx = sum((a * v.to(a.dtype)).sum() for a, v in zip(gx, vs) if a is not None and a.requires_grad)
        sr = sum((b * v).sum() for b, v in zip(gr, vs) if b is not None and b.requires_grad)
        ggx = _grads(sx, diff_x, None, False) if torch.is_tensor(sx) else [None] * len(diff_x)
        ggr = _grads(sr, diff_r, None, False) if torch.is_tensor(sr) else [None] * len(diff_r)
        for k, (a, b) in enumerate(zip(ggx, ggr)):
            assert_close(a, b, dtype, 2, f"second derivative {k}")

    small = all(t is None or t.numel() <= GRADCHECK_MAX_NUMEL for t in inputs)
    if gradcheck and not small:
        big = max(t.numel() for t in inputs if t is not None)
        raise ValueError(f"check_op: gradcheck=True needs inputs of at most {GRADCHECK_MAX_NUMEL} elements; the "
                         f"largest has {big} (pass smaller inputs, or gradcheck=None to run it only where small)")
    if gradcheck is None:
        gradcheck = small
    if gradcheck:
        ds = [leaf(t, i, torch.float64) for i, t in enumerate(inputs)]

        def f(*diff):
            args = list(ds)
            for i, t in zip([i for i in differentiable if ds[i] is not None], diff):
                args[i] = t
            return fast(*args)

        diff_d = tuple(ds[i] for i in differentiable if ds[i] is not None)
        assert torch.autograd.gradcheck(f, diff_d, eps=1e-6, atol=1e-5, rtol=1e-4)
        if order > 1:
            assert torch.autograd.gradgradcheck(f, diff_d, eps=1e-6, atol=1e-5, rtol=1e-4)
