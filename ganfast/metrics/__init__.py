"""Evaluation metrics for generative models: FID, IS, KID, and what they are built from.

* :func:`frechet_distance`: FID from two (mean, covariance) pairs, exact in
  float64 (:func:`ganfast.ops.sqrtm_trace` does the matrix square root).
* :class:`FeatureStats`: streaming mean and covariance of features, merged
  across processes, saved to and loaded from pytorch-fid's ``.npz`` format.
* :class:`InceptionV3`: the FID variant of Inception-v3 (pool3, 2048
  features), weights from a local file (:func:`load_inception`); nothing is
  ever downloaded.
* :class:`FID`: feed real and generated images (or features) batch by batch,
  then ``compute()``.
* :func:`inception_score` and :func:`kernel_inception_distance`.
"""

from .fid import FID, feature_extractor
from .frechet import frechet_distance
from .inception import INCEPTION_WEIGHTS_ENV, INCEPTION_WEIGHTS_FILE, InceptionV3, load_inception
from .mode_coverage import ModeCoverage, mode_coverage
from .scores import inception_score, kernel_inception_distance
from .stats import FeatureStats

__all__ = [
    "FID",
    "FeatureStats",
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_FILE",
    "InceptionV3",
    "ModeCoverage",
    "feature_extractor",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "load_inception",
    "mode_coverage",
]
