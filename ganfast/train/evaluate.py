"""Metrics during training: FID, KID and mode coverage of the EMA networks' samples.

``Trainer`` runs an :class:`Evaluator` every ``eval_every`` steps (``--eval-every``)
and logs its numbers beside the losses; ``best_metric`` keeps the best
checkpoint (``checkpoints/best.pt``).

* ``fid``: Frechet distance between feature statistics of ``num_samples`` real
  images (a fixed seeded subset, computed once) and as many samples
  (Heusel et al. 2017); :class:`ganfast.metrics.FID`.
* ``kid``: kernel inception distance on the same features (Binkowski et al.
  2018); :func:`ganfast.metrics.kernel_inception_distance`, logged as its mean.
* ``coverage``: on the 2-D mixtures, modes covered and the share of
  high-quality samples (:func:`ganfast.metrics.mode_coverage`), logged as
  ``modes_covered`` and ``high_quality``.

FID and KID need a feature extractor: any ``nn.Module`` or function mapping
images in [0, 1] ``(N, C, H, W)`` to ``(N, d)``, a TorchScript file of one,
or the FID Inception-v3 weights file (pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth``); nothing is downloaded.

Samples are drawn with a private generator seeded the same way at every
evaluation (the same latents each time, so successive numbers compare like
with like) inside ``torch.random.fork_rng``: evaluating never moves the
training RNG, so exact resume holds with evaluation on.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ..data.batch import Batch

__all__ = ["Evaluator", "METRICS", "BEST_DIRECTION", "load_feature_extractor"]

#: metric name -> the columns it logs
METRICS: Dict[str, Sequence[str]] = {"fid": ("fid",), "kid": ("kid",), "coverage": ("modes_covered", "high_quality")}
#: logged column -> +1 when higher is better, -1 when lower is better
BEST_DIRECTION: Dict[str, int] = {"fid": -1, "kid": -1, "modes_covered": 1, "high_quality": 1}

_CHUNK = 250


def load_feature_extractor(spec: Any, device: Any = None) -> Callable[[Tensor], Tensor]:
    """A feature extractor from ``spec``: a module or function, a saved module, or the Inception weights file.

    A saved module is a ``torch.export`` program (``torch.export.save``, a
    ``.pt2`` file, with a dynamic batch dimension) or a TorchScript file
    (``torch.jit.save``); either maps images in [0, 1] ``(N, C, H, W)`` to
    ``(N, d)``.  ``"inception"`` is the FID Inception-v3 from its usual places.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that is none of those.
        TypeError: a ``spec`` of another type.
    """
    from ..metrics import feature_extractor, load_inception

    if isinstance(spec, (nn.Module,)) or (callable(spec) and not isinstance(spec, (str, os.PathLike))):
        return feature_extractor(spec, device=device)
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"eval_features must be a module, a function or a file path; got {type(spec).__name__}")
    path = os.fspath(spec)
    if path == "inception":
        return feature_extractor(load_inception(None, device=device))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"eval_features: no such file {path} (expected a torch.export .pt2 program or a "
                                f"TorchScript module mapping images in [0, 1] to (N, d) features, or the FID "
                                f"Inception weights file)")
    module = None
    if path.endswith(".pt2"):
        try:
            program = torch.export.load(path).module()
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"eval_features: cannot load the exported program {path}: {err}") from err
        # an exported program is a graph, not an nn.Module that can switch to eval mode: call it as a function
        return feature_extractor(lambda x: program(x), device=device)
    else:
        try:
            module = torch.jit.load(path, map_location=device or "cpu")
        except (RuntimeError, ValueError):
            module = None
    if module is not None:
        return feature_extractor(module, device=device)
    try:
        return feature_extractor(load_inception(path, device=device))
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"eval_features: {path} is neither a saved module (.pt2 or TorchScript) nor the FID "
                         f"Inception weights ({err})") from err


def default_metrics(dataset: Any) -> List[str]:
    """``coverage`` on a Gaussian mixture, ``fid`` and ``kid`` on images."""
    if getattr(dataset, "modes", None) is not None:
        return ["coverage"]
    if getattr(dataset, "kind", "image") == "image":
        return ["fid", "kid"]
    return []


class Evaluator:
    """Computes ``metrics`` for a method's samples against ``dataset``.

    Args:
        metrics: names from :data:`METRICS`.
        dataset: the training dataset (real images or the mixture).
        num_samples: real and generated samples per evaluation.
        features: the feature extractor spec (see :func:`load_feature_extractor`);
            needed for ``fid`` and ``kid``.
        device: where samples and features are computed.
        seed: seeds the real subset and the generated latents.

    Raises:
        ValueError: an unknown metric, coverage on data without modes, FID/KID on points.
        FileNotFoundError: FID/KID without a feature extractor (the message says which file to give).
    """

    def __init__(self, metrics: Sequence[str], dataset: Any, *, num_samples: int, features: Any = None,
                 device: Any = "cpu", seed: int = 0) -> None:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown evaluation metric(s) {unknown}; choose from {list(METRICS)}")
        if not metrics:
            raise ValueError("no evaluation metric was chosen")
        self.metrics = list(metrics)
        self.dataset = dataset
        self.num_samples = int(num_samples)
        self.device = torch.device(device)
        self.seed = int(seed)
        if "coverage" in self.metrics and getattr(dataset, "modes", None) is None:
            raise ValueError(f"metric 'coverage' needs a Gaussian mixture (ring8, grid25); dataset "
                             f"{getattr(dataset, 'name', '?')!r} has no modes")
        self._extract: Optional[Callable[[Tensor], Tensor]] = None
        self._real: Optional[Tensor] = None
        if any(m in ("fid", "kid") for m in self.metrics):
            if getattr(dataset, "kind", "image") != "image":
                raise ValueError("FID and KID compare images; this dataset holds points (use metric 'coverage')")
            if features is None:
                features = "inception"
            self._extract = load_feature_extractor(features, device=self.device)

    def columns(self) -> List[str]:
        return [c for m in self.metrics for c in METRICS[m]]

    # -- real side ------------------------------------------------------------------------------------

    def _real_batches(self, n: int):
        g = torch.Generator().manual_seed(self.seed + 4242)
        order = torch.randperm(len(self.dataset), generator=g)[:n]
        for start in range(0, len(order), _CHUNK):
            idx = order[start:start + _CHUNK]
            if hasattr(self.dataset, "batch"):
                yield self.dataset.batch(idx, 0)
            else:
                yield Batch.from_any(torch.utils.data.default_collate([self.dataset[int(i)] for i in idx]))

    def _features(self, images: Tensor) -> Tensor:
        x = ((images.float() + 1) / 2).clamp_(0, 1)
        return self._extract(x.to(self.device)).double().cpu()

    def real_features(self, field: str = "image") -> Tensor:
        """Features of batch field ``field`` of the fixed real subset (computed once)."""
        if self._real is None:
            # a frames field (B, T, C, H, W) contributes the first frame of each run (what video methods sample)
            self._real = torch.cat([self._features(_first_frames(getattr(b, field)))
                                    for b in self._real_batches(self.num_samples)])
        return self._real

    # -- one evaluation ---------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, model: Any, networks: Mapping[str, nn.Module]) -> Tensor:
        """``num_samples`` samples of ``model`` with ``networks`` swapped in, in eval mode, on the CPU."""
        g = torch.Generator().manual_seed(self.seed + 777)
        chunks = []
        batches = self._real_batches(self.num_samples)
        done = 0
        while done < self.num_samples:
            n = min(_CHUNK, self.num_samples - done)
            real = next(batches, None)
            inputs = model.sample_inputs(n, generator=g, batch=real.to(self.device) if real is not None else None)
            inputs = {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in inputs.items()}
            chunks.append(model.sample(networks=networks, **inputs).float().cpu())
            done += n
        return torch.cat(chunks)

    def __call__(self, model: Any, networks: Mapping[str, nn.Module]) -> Dict[str, float]:
        """The metrics of ``model``'s samples (networks replaced by ``networks``), as floats by column."""
        from ..metrics import FID, kernel_inception_distance, mode_coverage

        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            fake = self.generate(model, networks)
        out: Dict[str, float] = {}
        if "coverage" in self.metrics:
            cov = mode_coverage(fake, self.dataset)
            out["modes_covered"] = float(cov.modes_covered)
            out["high_quality"] = float(cov.high_quality)
        if self._extract is not None:
            real_f = self.real_features(getattr(model, "sample_field", "image"))
            fake_f = torch.cat([self._features(fake[i:i + _CHUNK]) for i in range(0, len(fake), _CHUNK)])
            if "fid" in self.metrics:
                fid = FID()
                fid.update_features(real_f, real=True).update_features(fake_f, real=False)
                out["fid"] = float(fid.compute(sync=False))
            if "kid" in self.metrics:
                size = min(1000, len(real_f), len(fake_f))
                out["kid"] = kernel_inception_distance(real_f, fake_f, num_subsets=50, subset_size=size)[0]
        return out


def _first_frames(x: Tensor) -> Tensor:
    """``x[:, 0]`` for runs of frames ``(B, T, C, H, W)``; images ``(B, C, H, W)`` as they are."""
    return x[:, 0] if x.dim() == 5 else x
