"""ganfast: a GAN engine for PyTorch whose hot paths run as fused Triton and CUDA kernels.

Everything is imported on first use (``ganfast.ops``, ``ganfast.nn``, ...,
and the dispatch functions too), so ``import ganfast`` stays cheap and loads
neither Triton nor the CUDA extension, and importing a leaf module such as
``ganfast._errors`` loads nothing else of ganfast.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ._errors import BackendUnavailable

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

# Names defined in a submodule, imported with it on first access.
_LAZY = {
    "__version__": "_version",
    "available_backends": "_backend",
    "current_backend": "_backend",
    "use_backend": "_backend",
}

if os.environ.get("GANFAST_BACKEND", "").strip():
    # A backend chosen in the environment is checked now, so that a typo fails
    # at `import ganfast` rather than at the first op.
    importlib.import_module("._backend", __name__)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganfast' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_SUBMODULES) | set(_LAZY))
