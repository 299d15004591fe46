"""Inception Score and Kernel Inception Distance, in float64.

* Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``
  over ``splits`` equal parts of the samples; mean and standard deviation
  over the parts, as the reference implementation reports them.
* Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD
  GANs"): the unbiased estimate of the squared MMD between two feature sets
  with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, averaged
  over random subsets; mean and standard deviation over the subsets.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

from .frechet import as_features

Tensor = torch.Tensor


def _features(x: Any, name: str) -> Tensor:
    t = as_features(x, name)
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


def _row_sum_tolerance(x: Any) -> float:
    """How far from 1 a row of probabilities in ``x``'s dtype may sum: a softmax rounded to float16 sums
    within ~3e-4 of 1 over 1008 classes, to bfloat16 within ~2.3e-3; one unit in the last place of 1
    (2^-10, 2^-7) covers them.  1e-4 for float32 / float64 (and inputs of other types)."""
    dtype = getattr(x, "dtype", None)
    name = str(dtype).replace("torch.", "")
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}.get(name, 0.0)
    return max(1e-4, eps)


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int; got {v!r}")
    return v


def inception_score(
    preds: Any, splits: int = 10, *, kind: str = "auto"
) -> Tuple[float, float]:
    """Inception Score ``(mean, std)`` from class logits or probabilities.

    Args:
        preds: ``(N, C)`` logits or probabilities (rows of non-negative
            numbers summing to 1), numpy or torch; for FID's network the
            1008 logits of :meth:`InceptionV3.logits`.
        splits: the samples are cut, in order, into ``splits`` parts of
            ``N // splits`` (the remainder is dropped, as the reference code
            does); the score is computed per part.
        kind: ``"logits"``, ``"probs"``, or ``"auto"``: probabilities when
            every entry is in [0, 1] and every row sums to 1 within the
            rounding of ``preds``' dtype (1e-4; 2^-10 for float16, 2^-7 for
            bfloat16: a softmax rounded to half precision sums only that
            close to 1, and taking it for logits would softmax it twice and
            give about 1), else logits.

    Returns:
        ``(mean, std)`` over the parts (std with ``ddof=0``, as the
        reference).  Uniform predictions give exactly 1; ``C`` equally
        frequent, perfectly confident classes give ``C``.
    """
    tol = _row_sum_tolerance(preds)
    p = _features(preds, "preds")
    splits = _positive_int(splits, "splits")
    if kind not in ("auto", "logits", "probs"):
        raise ValueError(f"kind must be 'auto', 'logits' or 'probs'; got {kind!r}")
    n = p.shape[0]
    if n < splits:
        raise ValueError(f"preds has {n} rows, fewer than splits={splits}; need at least one sample per split")
    is_probs = bool((p >= 0).all()) and bool((p <= 1).all()) and bool(((p.sum(1) - 1).abs() <= tol).all())
    if kind == "probs" and not is_probs:
        worst = float((p.sum(1) - 1).abs().max())
        raise ValueError(f"preds given as probabilities must be in [0, 1] with rows summing to 1 (within {tol:.3g} "
                         f"for {getattr(preds, 'dtype', 'this input')}); the worst row is off by {worst:.3g}")
    if kind == "logits" or (kind == "auto" and not is_probs):
        logp = torch.log_softmax(p, dim=1)
        probs = logp.exp()
    else:
        probs = p / p.sum(1, keepdim=True)
        logp = torch.log(probs)  # -inf where p = 0: multiplied by 0 below (xlogy)
    part = n // splits
    scores = []
    for k in range(splits):
        q, lq = probs[k * part:(k + 1) * part], logp[k * part:(k + 1) * part]
        py = q.mean(0)
        # KL(q || py) per row: sum q (log q - log py), with 0 log 0 = 0.
        kl = (torch.where(q > 0, q * lq, 0.0) - torch.special.xlogy(q, py.expand_as(q))).sum(1)
        scores.append(torch.exp(kl.mean()))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3: diagonal terms of K_xx, K_yy excluded."""
    m, d = x.shape
    n = y.shape[0]
    kxx = (x @ x.mT / d + 1) ** 3
    kyy = (y @ y.mT / d + 1) ** 3
    kxy = (x @ y.mT / d + 1) ** 3
    sxx = (kxx.sum() - torch.diagonal(kxx).sum()) / (m * (m - 1))
    syy = (kyy.sum() - torch.diagonal(kyy).sum()) / (n * (n - 1))
    return sxx + syy - 2 * kxy.sum() / (m * n)


def kernel_inception_distance(
    feats1: Any,
    feats2: Any,
    num_subsets: int = 100,
    subset_size: int = 1000,
    *,
    seed: Optional[int] = 0,
    generator: Optional[torch.Generator] = None,
) -> Tuple[float, float]:
    """Kernel Inception Distance ``(mean, std)`` between two feature sets.

    Args:
        feats1, feats2: ``(N1, d)`` and ``(N2, d)`` features (for KID, the
            2048 pool3 features of :class:`InceptionV3`), numpy or torch;
            computed in float64 on the first one's device.
        num_subsets: how many random subset pairs to average over.
        subset_size: samples drawn without replacement from each set per
            subset; capped at ``min(N1, N2)`` (as the reference code does),
            which must be at least 2.
        seed: seeds a private generator so that the result is reproducible
            (default 0); None uses ``generator`` or torch's global one.
        generator: a ``torch.Generator`` (CPU) to draw subsets from, used
            when ``seed`` is None.

    Returns:
        ``(mean, std)`` of the unbiased MMD^2 estimates over the subsets
        (std with ``ddof=0``).  The estimate is unbiased, so it is close to
        0 (and may be slightly negative) for samples of one distribution.
    """
    x = _features(feats1, "feats1")
    y = _features(feats2, "feats2").to(x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feats1 and feats2 must have the same number of features; got {x.shape[1]} and {y.shape[1]}")
    num_subsets = _positive_int(num_subsets, "num_subsets")
    subset_size = _positive_int(subset_size, "subset_size")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set; got {x.shape[0]} and {y.shape[0]}")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    values = []
    for _ in range(num_subsets):
        ix = torch.randperm(x.shape[0], generator=generator)[:m].to(x.device)
        iy = torch.randperm(y.shape[0], generator=generator)[:m].to(x.device)
        values.append(_mmd2_unbiased(x[ix], y[iy]))
    v = torch.stack(values)
    return float(v.mean()), float(v.std(unbiased=False))
