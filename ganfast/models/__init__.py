"""GAN variants: generators, discriminators and the training step of each method.

``build(name, **options)`` returns a :class:`GANModel` with the method's
paper defaults; ``names()`` lists the methods; ``describe()`` gives one line
each.  The networks themselves are in :mod:`ganfast.models.nets`.
"""

from .base import COMMON_DEFAULTS, GANModel, StepContext
from .variants import REGISTRY, build, describe, names, register

__all__ = ["COMMON_DEFAULTS", "GANModel", "StepContext", "REGISTRY", "build", "describe", "names", "register"]
