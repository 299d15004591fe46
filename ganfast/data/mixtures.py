"""The 2-D Gaussian mixtures used to measure mode collapse.

``ring8`` (8 modes on a circle) and ``grid25`` (a 5x5 grid) are the
synthetic benchmarks of Metz et al. 2017 (Unrolled GANs), Srivastava et al.
2017 (VEEGAN) and Lin et al. 2018 (PacGAN): every mode is far from the others
relative to its spread, so each generated point can be attributed to one
mode and a collapsed generator is plain to see (see
:func:`ganfast.metrics.mode_coverage`).
"""

from __future__ import annotations

import math
from typing import Dict, NamedTuple, Optional, Tuple

import torch

from ._checks import check_num_samples, check_seed, refuse_image_options
from .dataset import GANDataset

#: Points drawn when ``num_samples`` is not given.
DEFAULT_NUM_SAMPLES = 100_000


class Mixture(NamedTuple):
    description: str
    std: float
    centres: Tuple[Tuple[float, float], ...]


def _ring(count: int, radius: float) -> Tuple[Tuple[float, float], ...]:
    # cos(pi/2) is 6e-17 in floating point, not 0; rounding far below float32
    # precision makes the on-axis centres exact ((0, 2), (-2, 0), ...) and
    # adding 0.0 turns -0.0 into 0.0.
    def coord(v: float) -> float:
        return round(radius * v, 12) + 0.0

    angles = [2 * math.pi * k / count for k in range(count)]
    return tuple((coord(math.cos(a)), coord(math.sin(a))) for a in angles)


def _grid(values) -> Tuple[Tuple[float, float], ...]:
    return tuple((float(a), float(b)) for a in values for b in values)


#: name -> mixture; equal weights for every mode.
MIXTURES: Dict[str, Mixture] = {
    "ring8": Mixture("8 Gaussians on a circle of radius 2, std 0.02 (2-D points, mode-collapse benchmark)", 0.02,
                     _ring(8, 2.0)),
    "grid25": Mixture("25 Gaussians on the grid {-4,-2,0,2,4}^2, std 0.05 (2-D points, mode-collapse benchmark)", 0.05,
                      _grid((-4, -2, 0, 2, 4))),
}


def mixture_modes(name: str) -> Tuple[torch.Tensor, float]:
    """``(centres (M, 2) float32, std)`` of a built-in mixture, without sampling it."""
    if name not in MIXTURES:
        raise ValueError(f"unknown mixture {name!r}; choices: {', '.join(MIXTURES)}")
    m = MIXTURES[name]
    return torch.tensor(m.centres, dtype=torch.float32), m.std


def sample_mixture(name: str, num_samples: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` i.i.d. points of mixture ``name`` and the mode each came from.

    Deterministic: a private ``torch.Generator`` seeded with ``seed`` draws the
    mode of each point (uniformly), then its Gaussian offset.
    """
    centres, std = mixture_modes(name)
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(centres), (num_samples,), generator=g)
    noise = torch.randn(num_samples, 2, generator=g)
    return centres[which] + std * noise, which


def load_mixture(name: str, *, image_size=None, channels=None, num_samples: Optional[int] = None,
                 seed: int = 0) -> GANDataset:
    """A fixed, in-memory sample of mixture ``name`` (unlabeled: which mode a point came from is not a class)."""
    refuse_image_options(name, image_size, channels)
    n = check_num_samples(num_samples) or DEFAULT_NUM_SAMPLES
    x, _ = sample_mixture(name, n, check_seed(seed))
    centres, std = mixture_modes(name)
    return GANDataset(name, x, None, modes=centres, mode_std=std)
