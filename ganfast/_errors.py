"""The errors and availability record every layer of ganfast shares.

A leaf: it imports nothing of ganfast (and not even torch), so the dispatch
module, the CUDA-extension loader and the argument checks can all use it
without importing each other.  The public names are re-exported where users
find them: ``ganfast.BackendUnavailable`` and ``ganfast._backend``.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Availability", "BackendUnavailable"]


class BackendUnavailable(RuntimeError):
    """A backend was asked for explicitly but cannot run here.

    The message says why, and how to make it available.
    """


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend can run, and if not, why and how to fix it."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available

    def __str__(self) -> str:
        return "available" if self.available else f"unavailable: {self.reason}"
