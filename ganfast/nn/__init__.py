"""Drop-in modules built on :mod:`ganfast.ops`."""

from .bias_act import BiasAct

__all__ = ["BiasAct"]
