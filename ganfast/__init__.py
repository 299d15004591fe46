"""ganfast: a GAN engine for PyTorch whose hot paths run as fused Triton and CUDA kernels.

Subpackages are imported on first use (``ganfast.ops``, ``ganfast.nn``, ...),
so ``import ganfast`` stays cheap and loads neither Triton nor the CUDA
extension.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._backend import BackendUnavailable, available_backends, current_backend, use_backend
from ._version import __version__

__all__ = [
    "__version__",
    "BackendUnavailable",
    "available_backends",
    "current_backend",
    "use_backend",
    "ops",
    "nn",
    "metrics",
    "models",
    "train",
    "losses",
    "data",
]

# Subpackages reachable as attributes, imported lazily.
_SUBMODULES = ("ops", "nn", "metrics", "models", "train", "losses", "data", "ref", "kernels", "cli")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'ganfast' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_SUBMODULES))
