"""The FID metric object: images (or features) in, batch by batch; a float out.

Example::

    fid = ganfast.metrics.FID(weights="pt_inception-2015-12-05-6726825d.pth", device="cuda")
    for real in loader:
        fid.update(real, real=True)          # (N, 3, H, W), floats in [0, 1] or uint8
    for _ in range(steps):
        fid.update(generator(z()).add(1).div(2), real=False)
    print(fid.compute())

Reference statistics computed once can be reused (``fid.set_real("real.npz")``
or ``FID(real_stats="real.npz")``, pytorch-fid's files included).  Any
``nn.Module`` (or function) mapping images to ``(N, d)`` features can stand in
for Inception: ``FID(feature_extractor=my_net)``.  Under ``torch.distributed``
each rank feeds its share and ``compute()`` combines all ranks.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch
import torch.nn as nn

from .frechet import frechet_distance
from .inception import load_inception
from .stats import FeatureStats

Tensor = torch.Tensor
Extractor = Union[nn.Module, Callable[[Tensor], Tensor]]

#: Float images may stray this far outside [0, 1] (resampling overshoot) before they are rejected.
RANGE_SLACK = 1e-3

#: Images with a side below this many pixels carry too little for Inception (resized to 299): FID warns.
MIN_IMAGE_SIDE = 16


def reliability_warnings(counts: dict, num_features: int, min_side: Optional[int] = None) -> list:
    """Why an FID may not mean much: the messages (empty when none applies).

    ``counts`` maps a name ("real", "A") to its number of samples.  Below
    ``num_features`` samples (2048 for Inception) a covariance is singular
    and FID is biased upward by far more than its differences between
    models (Chong and Forsyth 2020, fig. 1); papers use 50,000 (at least
    10,000).  Images smaller than :data:`MIN_IMAGE_SIDE` pixels are
    upsampled ~20x to 299 and give features of blur.
    """
    out = []
    for name, n in counts.items():
        if n is not None and n < num_features:
            out.append(f"FID from {n:,} {name} samples is unreliable: below {num_features:,} (the feature "
                       f"dimension) the covariance is singular and FID is biased upward; use 10,000 or more "
                       f"(50,000 in most papers)")
    if min_side is not None and min_side < MIN_IMAGE_SIDE:
        out.append(f"images of {min_side} pixel(s) on a side are below the {MIN_IMAGE_SIDE}-pixel minimum: "
                   f"resized to 299 for Inception they give features of blur, and the FID means little")
    return out


def prepare_images(images: Any, name: str = "images") -> Tensor:
    """Check a batch of images and return float32 in [0, 1]: ``(N, C, H, W)``, uint8 (0..255) or float (0..1).

    Float images outside [0, 1] raise: the usual cause is generator output in
    [-1, 1], which must be mapped with ``(x + 1) / 2`` first.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W); got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    if not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0..255) or floating point (0..1); got {images.dtype}")
    x = images.detach().to(torch.float32)
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (lo >= -RANGE_SLACK and hi <= 1 + RANGE_SLACK):
            hint = " (generator output in [-1, 1]? map it with (x + 1) / 2)" if lo < 0 else ""
            raise ValueError(f"{name} must be in [0, 1]; got values from {lo:.4g} to {hi:.4g}{hint}")
        x = x.clamp(0.0, 1.0)
    return x


def feature_extractor(model: Optional[Extractor] = None, *, weights: Any = None,
                      device: Any = None) -> Callable[[Tensor], Tensor]:
    """A function ``images in [0, 1] -> (N, d) float features`` around ``model``.

    ``model`` None: the FID Inception-v3 (:func:`load_inception` with
    ``weights``).  An ``nn.Module`` is put in eval mode and moved to
    ``device`` (when given), and gets the images in its parameters' dtype;
    outputs of shape ``(N, d, 1, 1)`` are flattened.
    Features are computed without gradients.
    """
    if model is None:
        model = load_inception(weights, device=device)
    elif isinstance(model, nn.Module):
        model.eval()
        if device is not None:
            model.to(device)
    elif not callable(model):
        raise TypeError(f"feature_extractor must be an nn.Module or a callable; got {type(model).__name__}")
    run_device = torch.device(device) if device is not None else None

    def extract(images: Tensor) -> Tensor:
        x = prepare_images(images)
        if run_device is not None:
            x = x.to(run_device)
        elif isinstance(model, nn.Module):
            p = next(iter(model.parameters()), None)
            if p is not None:
                x = x.to(p.device)
        if isinstance(model, nn.Module):
            p = next((q for q in model.parameters() if q.is_floating_point()), None)
            if p is not None and p.dtype != x.dtype:
                x = x.to(p.dtype)  # a half or double network gets images in its own dtype
        with torch.no_grad():
            f = model(x)
        if isinstance(f, (list, tuple)):  # e.g. pytorch-fid's InceptionV3 returns a list of blocks
            f = f[-1]
        if not isinstance(f, Tensor):
            raise TypeError(f"the feature extractor must return a tensor; got {type(f).__name__}")
        if f.dim() == 4 and f.shape[2:] == (1, 1):
            f = f.flatten(1)
        if f.dim() != 2 or f.shape[0] != x.shape[0]:
            raise ValueError(
                f"the feature extractor must return (N, d) features for N={x.shape[0]} images; got shape "
                f"{tuple(f.shape)}"
            )
        return f

    return extract


class FID:
    """Frechet Inception Distance, accumulated batch by batch.

    Args:
        feature_extractor: an ``nn.Module`` or function mapping images in
            [0, 1] ``(N, C, H, W)`` to ``(N, d)`` (or ``(N, d, 1, 1)``)
            features.  None: the FID Inception-v3, loaded on first use from
            ``weights`` (or ``$GANFAST_INCEPTION_WEIGHTS``; see
            :func:`load_inception`).  Only image updates need it:
            :meth:`update_features` and :meth:`compute` do not.
        weights: path of the Inception weights file.
        device: where features are computed and accumulated; default: the
            device of the images (the extractor is moved there).
        real_stats: reference statistics to start from: a
            :class:`FeatureStats` or an ``.npz`` path (pytorch-fid's format).
        method, backend: passed to :func:`frechet_distance`.
        stats_backend: backend of the statistics update op.
    """

    def __init__(
        self,
        feature_extractor: Optional[Extractor] = None,
        *,
        weights: Any = None,
        device: Any = None,
        real_stats: Any = None,
        method: str = "auto",
        backend: Optional[str] = None,
        stats_backend: Optional[str] = None,
    ) -> None:
        self._model = feature_extractor
        self._weights = weights
        self.device = torch.device(device) if device is not None else None
        self.method = method
        self.backend = backend
        self.stats_backend = stats_backend
        self._extract: Optional[Callable[[Tensor], Tensor]] = None
        self.real = FeatureStats(device=self.device, backend=stats_backend)
        self.fake = FeatureStats(device=self.device, backend=stats_backend)
        if real_stats is not None:
            self.set_real(real_stats)

    # -- features -----------------------------------------------------------------------

    def extract(self, images: Tensor) -> Tensor:
        """Features of a batch of images (loads the Inception weights on first use)."""
        if self._extract is None:
            device = self.device
            if device is None and isinstance(images, Tensor):
                device = images.device
            self._extract = feature_extractor(self._model, weights=self._weights, device=device)
        return self._extract(images)

    def update(self, images: Tensor, real: bool) -> "FID":
        """Add a batch of images, ``(N, 3, H, W)`` uint8 or floats in [0, 1], to the real or generated set."""
        return self.update_features(self.extract(images), real=real)

    def update_features(self, features: Any, real: bool) -> "FID":
        """Add precomputed features ``(N, d)`` to the real (``real=True``) or generated set."""
        if not isinstance(real, bool):
            raise TypeError(f"real must be True (reference images) or False (generated images); got {real!r}")
        (self.real if real else self.fake).update(features)
        return self

    def set_real(self, stats: Any) -> "FID":
        """Use fixed reference statistics: a :class:`FeatureStats` or a path to an ``.npz`` file."""
        if isinstance(stats, FeatureStats):
            self.real = stats.copy()
        else:
            self.real = FeatureStats.load(stats, device=self.device, backend=self.stats_backend)
        return self

    def reset(self, real: bool = True, fake: bool = True) -> "FID":
        """Forget the accumulated real and/or generated statistics."""
        if real:
            self.real = FeatureStats(device=self.device, backend=self.stats_backend)
        if fake:
            self.fake = FeatureStats(device=self.device, backend=self.stats_backend)
        return self

    # -- result -------------------------------------------------------------------------

    def _synced(self, stats: FeatureStats, sync: bool) -> FeatureStats:
        if sync and stats.mergeable:
            return stats.copy().all_reduce()
        return stats

    def compute(self, sync: Optional[bool] = None) -> float:
        """The FID between the real and generated statistics (a float).

        ``sync``: combine the statistics of every process first (default:
        when ``torch.distributed`` is initialized; a collective call then,
        every rank must make it).  The local statistics are not changed.
        """
        import torch.distributed as dist

        if sync is None:
            sync = dist.is_available() and dist.is_initialized()
        real, fake = self._synced(self.real, sync), self._synced(self.fake, sync)
        for stats, which in ((real, "real"), (fake, "generated")):
            if stats.mergeable and stats.count < 2:
                raise ValueError(f"FID needs at least 2 {which} samples; got {stats.count}")
        if real.num_features != fake.num_features:
            raise ValueError(f"real features have {real.num_features} dimensions, generated {fake.num_features}")
        import warnings
        for message in reliability_warnings({"real": real.count if real.mergeable else None,
                                             "generated": fake.count if fake.mergeable else None},
                                            real.num_features):
            warnings.warn(message, stacklevel=2)
        return frechet_distance(real.mean(), real.covariance(), fake.mean(), fake.covariance(),
                                method=self.method, backend=self.backend)

    def __repr__(self) -> str:
        return f"FID(real={self.real!r}, fake={self.fake!r})"
