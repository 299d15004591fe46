"""GAN methods on one training contract (``ganfast/models/README.md`` describes it, with an example).

``build(name, **options)`` returns a :class:`Method` with its paper's
defaults; ``names()`` lists the methods in the order of the literature;
``describe()`` gives one line each; ``families()`` groups them.  The
contract's pieces: :class:`Method` (networks, optimisers, phases,
schedules, EMA, sampling), :class:`Phase` and :class:`StepContext`
(:mod:`.phases`), typed options (:mod:`.options`), schedules
(:mod:`.schedules`).  Network families are in :mod:`ganfast.models.nets`,
one per file; each method is one file here.
"""

from .method import EMASpec, Method, OptimizerSpec
from .options import option
from .phases import Phase, StepContext
from .registry import REGISTRY, build, describe, families, get, names, register
from .schedules import Constant, Linear, Ramp, Steps
from .adversarial import AdversarialGAN, AdversarialOptions

# one file per method, imported in the order of the literature (the order `names()` gives; stylegan, a
# subclass of stylegan2, registers itself before it)
from . import gan, dcgan, cgan, acgan, infogan, wgan, wgan_gp, lsgan, sngan, sagan, unrolled, pacgan  # noqa: E402,F401
from . import progan, stylegan2, stylegan, pix2pix, cyclegan, recyclegan, lapgan, srgan  # noqa: E402,F401

__all__ = [
    "AdversarialGAN", "AdversarialOptions", "Constant", "EMASpec", "Linear", "Method", "OptimizerSpec", "Phase",
    "REGISTRY", "Ramp", "StepContext", "Steps", "build", "describe", "families", "get", "names", "option",
    "register",
]
