"""The ``sqrtm_trace`` benchmark cases by their former module name.

They live in :mod:`ganfast.bench.sqrtm_trace` (one name per op); this module
keeps ``from ganfast.bench.sqrtm import ...`` working.
"""

from .sqrtm_trace import FrechetCase, cases, frechet_eigvals, frechet_scipy  # noqa: F401

__all__ = ["FrechetCase", "cases", "frechet_eigvals", "frechet_scipy"]
