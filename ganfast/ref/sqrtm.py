"""Reference for the matrix square-root ops: ``tr sqrt(S1 S2)`` and ``sqrt(A)``.

The Frechet distance needs ``tr sqrt(S1 S2)`` for two covariance matrices
(symmetric positive semidefinite, PSD).  The product ``S1 S2`` is not
symmetric, which is why the common route (``scipy.linalg.sqrtm`` on the
product: a complex Schur decomposition) is slow and can return complex
values.  But the product is *similar to a symmetric PSD matrix*: with any
factor ``S1 = F F^T`` (``F`` is ``d x r``),

    S1 S2 = F (F^T S2 F) F^+        (when S1 is positive definite F^+ = F^-1)

so the non-zero eigenvalues of ``S1 S2`` are those of the symmetric PSD
``C = F^T S2 F`` (``r x r``), and

    tr sqrt(S1 S2) = sum_i sqrt(lambda_i(C)).

Only eigenvalues are needed, never eigenvectors: ``eigvalsh`` of one
symmetric matrix, the cheapest full eigen-computation LAPACK and cuSOLVER
have.  The factor is a Cholesky factor when ``S1`` is numerically positive
definite (``cholesky_ex`` says so without raising); otherwise ``S2`` is
tried (``tr sqrt(S1 S2) = tr sqrt(S2 S1)``), and when both are singular
(fewer samples than dimensions) the factor comes from ``eigh``:
``F = V_r diag(sqrt(w_r))`` over the eigenvalues above rounding level, which
also shrinks ``C`` to ``r x r``.  Each route is backward stable: the answer
is the exact one for inputs perturbed by a few units of float64 rounding.

Everything runs in float64 (inputs of any float dtype are promoted first):
in float32 the trace, a difference of numbers in the thousands, is off by
whole FID points on realistic spectra.

Rounding and rank deficiency.  Eigenvalues of ``C`` within rounding of zero
(``|lambda| <= n * eps * lambda_max``, ``n`` the size of ``C``) are taken as
exactly 0, so that the rounding noise of true zero eigenvalues (rank
deficient covariances) cannot add ``sqrt(noise)`` terms; this is the only
approximation, and it changes the trace by at most ``n * sqrt(n * eps *
lambda_max)``, the same as the rounding error any float64 method has there.
Eigenvalues below ``-n * eps * lambda_max`` are not rounding: they mean an
input is not PSD; :func:`product_eigvals` returns them as they are, for the
caller (``frechet_distance``) to report.  Nothing here returns a complex
number or NaN for finite PSD inputs.

Everything is plain PyTorch and runs on any device; it is the definition the
``torch`` backend of :mod:`ganfast.ops.sqrtm` runs and the tests compare with.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import torch

Tensor = torch.Tensor

EPS = torch.finfo(torch.float64).eps

#: The routes to the spectrum of S1 S2 (see the module docstring).
#: ``newton_schulz`` is an approximate candidate kept for measurement only.
METHODS = ("auto", "cholesky", "eigh", "newton_schulz")


def symmetric(s: Tensor) -> Tensor:
    """``(s + s^T) / 2`` in float64: covariances computed in float32 are symmetric only to rounding."""
    s = s.to(torch.float64)
    return (s + s.mT) * 0.5


def rounding_level(w: Tensor) -> Tensor:
    """Eigenvalues at or below this are rounding noise around zero (0-d tensor)."""
    if w.numel() == 0:
        return torch.zeros((), dtype=w.dtype, device=w.device)
    return w.numel() * EPS * w.abs().max()


def cholesky_factor(s: Tensor) -> Optional[Tensor]:
    """Lower Cholesky factor of the symmetric ``s``, or None when ``s`` is not numerically positive definite."""
    L, info = torch.linalg.cholesky_ex(s)
    return L if int(info) == 0 else None


def eigh_factor(s: Tensor) -> Tensor:
    """``F`` (``d x r``) with ``s = F F^T``: eigenvectors scaled by the square roots of the
    eigenvalues above rounding level; the rest (zero, or negative by rounding) are dropped."""
    w, V = torch.linalg.eigh(s)
    keep = w > rounding_level(w)
    return V[:, keep] * w[keep].sqrt()


@dataclasses.dataclass
class Spectrum:
    """What :func:`product_eigvals` found.

    ``eigvals``: float64 eigenvalues of ``C = F^T S_other F`` (ascending, raw:
    negative ones from rounding are left in); ``S1 S2`` has these and
    ``d - len(eigvals)`` more zeros.  ``route``: ``"cholesky"`` or ``"eigh"``.
    ``factored``: 1 or 2, the input that was factored (the other is
    ``S_other``).  ``factored_min``: for the ``eigh`` route, the smallest
    eigenvalue of the factored input divided by its largest (negative
    beyond rounding means it is not PSD); 0.0 for Cholesky, which succeeds
    only on positive definite matrices.
    """

    eigvals: Tensor
    route: str
    factored: int
    factored_min: float = 0.0


def product_eigvals(s1: Tensor, s2: Tensor, method: str = "auto") -> Spectrum:
    """The non-zero spectrum of ``S1 S2``, as the eigenvalues of a symmetric PSD matrix ``C``."""
    if method not in ("auto", "cholesky", "eigh"):
        raise ValueError(f"method must be one of 'auto', 'cholesky', 'eigh'; got {method!r}")
    s1, s2 = symmetric(s1), symmetric(s2)
    F, other, factored, factored_min = None, s2, 1, 0.0
    if method in ("auto", "cholesky"):
        F = cholesky_factor(s1)
        if F is None:
            F, other, factored = cholesky_factor(s2), s1, 2
        if F is None and method == "cholesky":
            raise ValueError(
                "method='cholesky' needs sigma1 or sigma2 to be numerically positive definite, and neither is "
                "(fewer samples than dimensions?); use method='auto' or 'eigh'"
            )
    route = "cholesky"
    if F is None:
        route, other, factored = "eigh", s2, 1
        w, V = torch.linalg.eigh(s1)
        top = float(w.abs().max())
        factored_min = float(w.min()) / top if top > 0 else 0.0
        keep = w > rounding_level(w)
        F = V[:, keep] * w[keep].sqrt()
    C = symmetric(F.mT @ (other @ F))
    return Spectrum(torch.linalg.eigvalsh(C), route, factored, factored_min)


def clip_spectrum(w: Tensor) -> Tensor:
    """Eigenvalues within rounding of zero (either sign) set to exactly 0."""
    return torch.where(w > rounding_level(w), w, torch.zeros((), dtype=w.dtype, device=w.device))


def sqrtm_trace(s1: Tensor, s2: Tensor, method: str = "auto") -> Tensor:
    """``tr sqrt(S1 S2)`` for symmetric PSD ``S1``, ``S2``: a float64 0-d tensor.

    Non-finite inputs give NaN (LAPACK would raise on them).
    """
    if not bool(torch.isfinite(s1).all() & torch.isfinite(s2).all()):
        return torch.full((), float("nan"), dtype=torch.float64, device=s1.device)
    if method == "newton_schulz":
        return sqrtm_trace_newton_schulz(s1, s2)
    return clip_spectrum(product_eigvals(s1, s2, method).eigvals).sqrt().sum()


def _half_inverse_sqrt_term(a: Tensor, b: Tensor) -> Tensor:
    """``d/dB tr sqrt(A B)`` for symmetric PSD ``A``, ``B``: ``1/2 F U L^{-1/2} U^T F^T``
    with ``A = F F^T`` and ``F^T B F = U L U^T``.

    Eigenvalues of ``F^T B F`` at rounding level contribute nothing: there
    the derivative is infinite (``sqrt`` at 0), and this returns the
    derivative restricted to the directions where it is finite.
    """
    L = cholesky_factor(a)
    F = L if L is not None else eigh_factor(a)
    lam, U = torch.linalg.eigh(symmetric(F.mT @ (b @ F)))
    pos = lam > rounding_level(lam)
    inv_sqrt = torch.where(pos, lam.clamp_min(torch.finfo(lam.dtype).tiny).rsqrt(), torch.zeros_like(lam))
    FU = F @ U
    return symmetric((FU * inv_sqrt) @ FU.mT) * 0.5


def sqrtm_trace_grad(grad: Tensor, s1: Tensor, s2: Tensor) -> Tuple[Tensor, Tensor]:
    """Gradients of ``tr sqrt(S1 S2)`` w.r.t. ``S1`` and ``S2`` (float64, symmetric), times ``grad``.

    ``f(S1, S2) = f(S2, S1)``, so one formula serves both: for positive
    definite inputs ``d f / d S2 = 1/2 L C^{-1/2} L^T`` with ``S1 = L L^T``,
    ``C = L^T S2 L``.  The forward symmetrizes its inputs, so the gradient
    w.r.t. an unsymmetric perturbation is this symmetric matrix.
    """
    s1, s2 = symmetric(s1), symmetric(s2)
    g = grad.to(torch.float64)
    return g * _half_inverse_sqrt_term(s2, s1), g * _half_inverse_sqrt_term(s1, s2)


# -- the square root of a matrix ---------------------------------------------------------


def psd_eigh(a: Tensor) -> Tuple[Tensor, Tensor]:
    """``(s, V)``: square roots of the clipped eigenvalues of the symmetric ``a`` and its eigenvectors."""
    w, V = torch.linalg.eigh(symmetric(a))
    return clip_spectrum(w).sqrt(), V


def sqrtm_psd(a: Tensor) -> Tensor:
    """The principal (symmetric PSD) square root of a symmetric PSD matrix, in float64.

    Eigenvalues within rounding of zero, and negative ones, are taken as 0:
    for a PSD input that is the exact root up to rounding; for an input
    with genuinely negative eigenvalues it is the root of its nearest PSD
    matrix (in the Frobenius norm).
    """
    s, V = psd_eigh(a)
    return symmetric((V * s) @ V.mT)


def sqrtm_psd_grad(grad: Tensor, a: Tensor) -> Tensor:
    """Gradient of :func:`sqrtm_psd` (Daleckii-Krein): ``V ((V^T G V) / (s_i + s_j)) V^T``.

    Pairs with ``s_i + s_j = 0`` (both eigenvalues zero) contribute nothing:
    the derivative is infinite there.
    """
    s, V = psd_eigh(a)
    den = s[:, None] + s[None, :]
    k = torch.where(den > 0, 1.0 / den.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(den))
    g = symmetric(grad)
    return symmetric(V @ ((V.mT @ g @ V) * k) @ V.mT)


def sqrtm_product(s1: Tensor, s2: Tensor) -> Tensor:
    """A square root of the (non-symmetric) product ``S1 S2`` of two symmetric PSD matrices.

    Returns ``X = R (R S2 R)^{1/2} R^+`` with ``R = S1^{1/2}`` and ``R^+`` its
    pseudo-inverse.  When ``S1`` is positive definite this is the principal
    square root of ``S1 S2`` (``X @ X = S1 S2``, eigenvalues the non-negative
    square roots of those of ``S1 S2``), the matrix ``scipy.linalg.sqrtm``
    computes, but real by construction.  When ``S1`` is singular the product
    may have no square root at all (a nilpotent Jordan block at 0); ``X`` then
    still has the square roots of ``S1 S2``'s eigenvalues as eigenvalues, so
    ``tr X = tr sqrt(S1 S2)``, and ``X @ X = S1 S2 P`` with ``P`` the
    projector onto the range of ``S1``.
    """
    s, V = psd_eigh(s1)
    R = symmetric((V * s) @ V.mT)
    inv = torch.where(s > 0, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))
    R_pinv = symmetric((V * inv) @ V.mT)
    Y = sqrtm_psd(R @ symmetric(s2) @ R)
    return R @ Y @ R_pinv


# -- an approximate candidate route, kept for measurement -------------------------------------


def sqrtm_trace_newton_schulz(s1: Tensor, s2: Tensor, iters: int = 40) -> Tensor:
    """``tr sqrt(S1 S2)`` by the coupled Newton-Schulz iteration in float32 with a float64 correction.

    Matmul-only (tensor-core friendly), so it is the GPU candidate the issue
    names; it is NOT exact and ``auto`` never picks it.  ``P = S1 S2 / c``
    (``c = ||S1 S2||_F`` bounds the spectrum) is iterated in float32:
    ``T = (3I - Z Y) / 2; Y <- Y T; Z <- T Z`` (``Y -> P^{1/2}``,
    ``Z -> P^{-1/2}``), then one Newton correction of the trace in float64,
    ``tr Y + tr(Z (P - Y^2)) / 2``.  Eigenvalues far below ``c`` converge
    slowly (an eigenvalue ``x`` needs about ``log(1/x) / log 2.25``
    iterations), so rank-deficient and ill-conditioned spectra stay off by
    up to ``sqrt`` of the unconverged eigenvalues; the bench shows how far.
    """
    s1, s2 = symmetric(s1), symmetric(s2)
    P = s1 @ s2
    c = torch.linalg.matrix_norm(P)
    if float(c) == 0.0:
        return torch.zeros((), dtype=torch.float64, device=s1.device)
    P = P / c
    eye32 = torch.eye(P.shape[0], dtype=torch.float32, device=P.device)
    Y, Z = P.to(torch.float32), eye32.clone()
    best, state = float("inf"), (Y, Z)
    for _ in range(iters):
        # Keep the iterate with the smallest residual ||I - Z Y||: eigenvalues
        # that rounding made slightly negative blow up (T grows without
        # bound for them) and would turn everything into inf and NaN.
        ZY = Z @ Y
        res = float(torch.linalg.matrix_norm(eye32 - ZY))
        if res < best:
            best, state = res, (Y, Z)
        elif not res < 1e3 * best:
            break
        T = 1.5 * eye32 - 0.5 * ZY
        Y, Z = Y @ T, T @ Z
    Y, Z = state
    Y64, Z64 = Y.to(torch.float64), Z.to(torch.float64)
    E = P - Y64 @ Y64
    t = torch.diagonal(Y64).sum() + 0.5 * (Z64 * E.mT).sum()
    return t * c.sqrt()
