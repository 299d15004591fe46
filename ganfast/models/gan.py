"""The original GAN (Goodfellow et al. 2014, "Generative Adversarial Nets", NeurIPS; arXiv:1406.2661).

MLPs for G and D (the paper's D is a maxout network with dropout), the
minimax game with the non-saturating generator loss the paper recommends in
practice (sec. 3).  The paper trains with SGD and momentum; we use Adam, as
every later reproduction does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .registry import register


@dataclass
class GANOptions(AdversarialOptions):
    arch: Optional[str] = option("mlp", "Goodfellow et al. 2014, sec. 5: multilayer perceptrons")
    loss: str = option("non-saturating", "Goodfellow et al. 2014, sec. 3: maximise log D(G(z))")
    batch_norm_g: bool = option(False, "Goodfellow et al. 2014: no normalisation")
    batch_norm_d: bool = option(False, "Goodfellow et al. 2014: no normalisation")
    lr_g: float = option(2e-4, "Adam as in Radford et al. 2015 (the paper: SGD with momentum)")
    lr_d: float = option(2e-4, "Adam as in Radford et al. 2015 (the paper: SGD with momentum)")
    init: str = option("default", "Goodfellow et al. 2014: the layers' own initialisation")


@register
class GAN(AdversarialGAN):
    name = "gan"
    family = "foundational"
    paper = "Goodfellow et al. 2014, Generative Adversarial Nets, NeurIPS (arXiv:1406.2661)"
    summary = "MLP generator and discriminator, non-saturating loss"
    Options = GANOptions
    # 2-D mixtures: the budget of the unrolled-GAN experiment's baseline (batch 512, 20k+ steps;
    # about a minute on a CPU)
    recommended = {"points": {"steps": 20000, "batch_size": 512}}
