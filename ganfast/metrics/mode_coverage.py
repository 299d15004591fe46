"""Mode coverage of a generator trained on a 2-D Gaussian mixture (``ring8``, ``grid25``).

The measure of Srivastava et al. 2017 (VEEGAN) and Lin et al. 2018 (PacGAN,
section 5.1): each generated point goes to its nearest mode centre and is
*high quality* when it lies within ``num_std`` standard deviations of it
(3 in both papers).  A mode is *covered* when at least ``min_samples``
high-quality points landed on it.  PacGAN draws 2500 samples and requires
20 per mode, i.e. a mode holding under 0.8% of the samples counts as lost;
the default ``min_samples = max(1, ceil(0.008 * N))`` keeps that share for
any ``N``.  (A perfect generator puts 1/8 or 1/25 of its samples on each
mode, far above 0.8%.)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import List, Optional

import numpy as np
import torch

__all__ = ["ModeCoverage", "mode_coverage"]

# PacGAN's threshold as an exact fraction: 0.008 * 2500 is 20.000000000000004
# in floating point, whose ceiling would ask for 21 samples instead of 20.
_MIN_SHARE_NUM, _MIN_SHARE_DEN = 8, 1000


@dataclasses.dataclass(frozen=True)
class ModeCoverage:
    """Result of :func:`mode_coverage`.

    Attributes:
        modes_covered: modes with at least ``min_samples`` high-quality samples.
        num_modes: modes in the mixture.
        high_quality: share of all samples within ``num_std`` stds of their nearest mode (0..1).
        counts: high-quality samples per mode, in the order of the dataset's ``modes``.
        num_samples: samples scored.
        min_samples: high-quality samples a mode needed to count as covered.
    """

    modes_covered: int
    num_modes: int
    high_quality: float
    counts: List[int]
    num_samples: int
    min_samples: int

    def __str__(self) -> str:
        return (
            f"{self.modes_covered}/{self.num_modes} modes covered, "
            f"{100 * self.high_quality:.1f}% high-quality samples ({self.num_samples} samples)"
        )

    def as_dict(self) -> dict:
        """Plain fields (a fresh ``counts`` list), for logs and JSON."""
        return dataclasses.asdict(self)


def default_min_samples(num_samples: int) -> int:
    """``max(1, ceil(0.008 * num_samples))``, computed exactly (PacGAN: 20 of 2500)."""
    return max(1, -(-num_samples * _MIN_SHARE_NUM // _MIN_SHARE_DEN))


def _modes_of(dataset):
    if isinstance(dataset, str):
        from ganfast.data.mixtures import MIXTURES, mixture_modes

        if dataset not in MIXTURES:
            raise ValueError(f"dataset {dataset!r} has no modes to cover; choices: {', '.join(MIXTURES)}")
        return mixture_modes(dataset)
    modes, std = getattr(dataset, "modes", None), getattr(dataset, "mode_std", None)
    if modes is None or std is None:
        name = getattr(dataset, "name", type(dataset).__name__)
        raise ValueError(
            f"dataset {name!r} has no mode centres; mode coverage is defined for the Gaussian mixtures "
            f"(ring8, grid25)"
        )
    return torch.as_tensor(modes), float(std)


def _as_points(samples, dim: int) -> torch.Tensor:
    if isinstance(samples, torch.Tensor):
        x = samples.detach().to("cpu", torch.float64)
    elif isinstance(samples, np.ndarray):
        if not (np.issubdtype(samples.dtype, np.floating) or np.issubdtype(samples.dtype, np.integer)):
            raise TypeError(f"samples must hold real numbers, got dtype {samples.dtype}")
        x = torch.from_numpy(np.asarray(samples, dtype=np.float64))
    else:
        raise TypeError(f"samples must be a torch.Tensor or numpy.ndarray, got {type(samples).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"samples must have shape (N, {dim}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("samples is empty; need at least one generated point")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"samples holds {bad} non-finite point(s) (NaN or inf): the generator has diverged")
    return x


def _nearest(x: torch.Tensor, centres: torch.Tensor, chunk: int = 65536):
    """(squared distance to, index of) each point's nearest centre, in float64.

    Direct differences rather than cdist's matrix-product shortcut, which loses
    digits exactly where it matters: points near the 3-std boundary.  Chunked so
    a million samples never build a million-by-M-by-2 temporary.
    """
    d2s, idx = [], []
    for i in range(0, x.shape[0], chunk):
        d2 = (x[i:i + chunk, None, :] - centres[None, :, :]).pow(2).sum(-1)
        d, j = d2.min(dim=1)
        d2s.append(d)
        idx.append(j)
    return torch.cat(d2s), torch.cat(idx)


def mode_coverage(samples, dataset, *, num_std: float = 3.0, min_samples: Optional[int] = None) -> ModeCoverage:
    """How many modes of a Gaussian mixture the generated ``samples`` cover (see the module docstring).

    Args:
        samples: ``(N, 2)`` generated points, a tensor (any device) or numpy array.
        dataset: ``"ring8"``, ``"grid25"``, or a dataset with ``modes`` and ``mode_std``
            (what :func:`ganfast.data.load` returns for them).
        num_std: a sample is high quality within ``num_std * mode_std`` (Euclidean) of its nearest mode.
        min_samples: high-quality samples a mode needs to be covered; default
            ``max(1, ceil(0.008 * N))``.
    """
    if isinstance(num_std, bool) or not isinstance(num_std, numbers.Real) or not 0 < num_std < math.inf:
        raise ValueError(f"num_std must be a positive finite number, got {num_std!r}")
    modes, std = _modes_of(dataset)
    centres = modes.to(torch.float64)
    x = _as_points(samples, centres.shape[1])
    n = x.shape[0]
    if min_samples is None:
        min_samples = default_min_samples(n)
    elif isinstance(min_samples, bool) or not isinstance(min_samples, numbers.Integral) or min_samples < 1:
        raise ValueError(f"min_samples must be a positive int, got {min_samples!r}")

    nearest_d2, nearest = _nearest(x, centres)
    # Squared distance against squared radius: a point on the boundary counts as inside.
    good = nearest_d2 <= (num_std * std) ** 2
    counts = torch.bincount(nearest[good], minlength=len(centres)).tolist()
    covered = sum(c >= min_samples for c in counts)
    return ModeCoverage(
        modes_covered=int(covered),
        num_modes=len(centres),
        high_quality=float(good.sum()) / n,
        counts=[int(c) for c in counts],
        num_samples=int(n),
        min_samples=int(min_samples),
    )
