"""The Frechet distance between two Gaussians: FID from feature statistics.

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))

(Dowson & Landau 1982; Heusel et al. 2017, eq. 6).  The square-root trace is
:func:`ganfast.ops.sqrtm_trace`'s route: the eigenvalues of a symmetric PSD
matrix similar to ``S1 S2``, in float64, exact for rank-deficient and
near-singular covariances (see :mod:`ganfast.ref.sqrtm`).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np
import torch

from ..ops.sqrtm import product_eigvals
from ..ref.sqrtm import clip_spectrum

Tensor = torch.Tensor

#: A symmetric input may differ from its transpose by this much relative to
#: its largest entry (float64); covariances accumulated in float32 differ by
#: rounding, so the bound scales with the input's precision (see _sym_tol).
SYMMETRY_RTOL = 1e-6

#: Eigenvalues of S1 S2 below -NEGATIVE_RTOL * (largest eigenvalue) are not
#: rounding: an input is not positive semidefinite, and the distance would be
#: meaningless.  Between that and 0 they are rounding (a float32 covariance
#: stored as float64 has eigenvalues off by ~1e-7 relative) and count as 0.
NEGATIVE_RTOL = 1e-4


def _sym_tol(dtype: torch.dtype) -> float:
    return max(SYMMETRY_RTOL, 100 * torch.finfo(dtype).eps)


def as_float_tensor(x: Any, name: str) -> Tensor:
    """``x`` (tensor, numpy array or nested list) as a floating-point tensor; its own device and dtype kept."""
    if isinstance(x, Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, np.generic, list, tuple, float, int)):
        a = np.asarray(x)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers; got a numpy array of dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array; got {type(x).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be real; got complex dtype {t.dtype}")
    if t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers; got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def as_features(x: Any, name: str) -> Tensor:
    """``x`` as an ``(N, d)`` float tensor (``(N, d, 1, 1)``, as pooling layers return, is flattened)."""
    t = as_float_tensor(x, name)
    if t.dim() == 4 and t.shape[2:] == (1, 1):
        t = t.flatten(1)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, d) or (N, d, 1, 1); got {tuple(t.shape)}")
    return t


def _pick_device(tensors, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if t.device.type != "cpu":
            return t.device
    return torch.device("cpu")


def check_statistics(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any,
                     device: Any = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validate two (mean, covariance) pairs; return them as float64 tensors on one device.

    Raises TypeError / ValueError naming the offending argument: shapes
    (``mu`` of length ``d``, ``sigma`` of shape ``(d, d)``, the same ``d``
    for both pairs), NaN or inf, and covariances that are not symmetric.
    """
    names = ("mu1", "sigma1", "mu2", "sigma2")
    ts = [as_float_tensor(x, n) for x, n in zip((mu1, sigma1, mu2, sigma2), names)]
    m1, s1, m2, s2 = ts
    if m1.dim() != 1:
        raise ValueError(f"mu1 must be a 1-D vector (d,); got shape {tuple(m1.shape)}")
    d = m1.shape[0]
    if d == 0:
        raise ValueError("mu1 must not be empty")
    if m2.dim() != 1 or m2.shape[0] != d:
        raise ValueError(f"mu2 must have shape ({d},) like mu1; got {tuple(m2.shape)}")
    for s, n in ((s1, "sigma1"), (s2, "sigma2")):
        if s.dim() != 2 or s.shape[0] != s.shape[1]:
            raise ValueError(f"{n} must be a square matrix (d, d); got shape {tuple(s.shape)}")
        if s.shape[0] != d:
            raise ValueError(f"{n} must have shape ({d}, {d}) to match the means' length {d}; got {tuple(s.shape)}")
    dev = _pick_device(ts, device)
    out = []
    for t, n in zip(ts, names):
        t64 = t.to(device=dev, dtype=torch.float64)
        if not bool(torch.isfinite(t64).all()):
            bad = int((~torch.isfinite(t64)).sum())
            raise ValueError(f"{n} holds {bad} NaN or infinite value{'s' if bad > 1 else ''}")
        out.append(t64)
    for i, n in ((1, "sigma1"), (3, "sigma2")):
        s = out[i]
        scale = float(s.abs().max())
        asym = float((s - s.mT).abs().max())
        if asym > _sym_tol(ts[i].dtype) * scale:
            raise ValueError(
                f"{n} must be a symmetric covariance matrix; max |{n} - {n}.T| is {asym:.3g} against entries "
                f"up to {scale:.3g}"
            )
    return out[0], out[1], out[2], out[3]


def frechet_distance(
    mu1: Any,
    sigma1: Any,
    mu2: Any,
    sigma2: Any,
    *,
    method: str = "auto",
    backend: Optional[str] = None,
    device: Any = None,
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): FID from feature statistics.

    Args:
        mu1, mu2: means, shape ``(d,)``.
        sigma1, sigma2: covariances, shape ``(d, d)``, symmetric positive
            semidefinite (singular is fine: fewer samples than dimensions).
        method: route to ``tr sqrt(sigma1 sigma2)``, see
            :func:`ganfast.ops.sqrtm_trace` (``"auto"``, ``"cholesky"``,
            ``"eigh"``).
        backend: ganfast backend for the matrix square root (None: current).
        device: where to compute; default: the device of the first input
            that is a non-CPU tensor, else the CPU.

    All four may be numpy arrays, tensors on any device, or a mix; any float
    dtype.  Everything is computed in float64.

    Returns:
        The distance as a Python float, >= 0 (a result that rounding puts
        below zero, for identical statistics, is returned as 0.0).

    Raises:
        TypeError / ValueError naming the argument: wrong shapes or
        mismatched dimensions, NaN or inf, a non-symmetric sigma, or a sigma
        that is not positive semidefinite (an eigenvalue of ``sigma1 @
        sigma2`` below ``-1e-4`` times the largest).
    """
    if method not in ("auto", "cholesky", "eigh"):
        raise ValueError(f"method must be one of 'auto', 'cholesky', 'eigh'; got {method!r}")
    m1, s1, m2, s2 = check_statistics(mu1, sigma1, mu2, sigma2, device)
    spec = product_eigvals(s1, s2, method=method, backend=backend)
    names = {1: "sigma1", 2: "sigma2"}
    if spec.factored_min < -NEGATIVE_RTOL:
        raise ValueError(
            f"{names[spec.factored]} is not positive semidefinite: its smallest eigenvalue is "
            f"{spec.factored_min:.3g} times its largest; a covariance matrix has none below zero"
        )
    w = spec.eigvals
    if w.numel():
        top, low = float(w.max()), float(w.min())
        if low < -NEGATIVE_RTOL * max(top, 0.0) or (top <= 0.0 and low < 0.0):
            other = names[3 - spec.factored]
            raise ValueError(
                f"{other} is not positive semidefinite: {names[spec.factored]} @ {other} has the eigenvalue "
                f"{low:.6g} (largest {top:.6g}); a product of covariance matrices has none below zero"
            )
    tr_sqrt = clip_spectrum(w).sqrt().sum()
    diff = m1 - m2
    value = float(diff.dot(diff) + torch.trace(s1) + torch.trace(s2) - 2.0 * tr_sqrt)
    if not math.isfinite(value):  # cannot happen for the finite inputs checked above
        raise FloatingPointError(f"frechet_distance produced {value} from finite inputs; please report this")
    return max(value, 0.0)
