"""Least-squares GAN (Mao et al. 2017, ICCV; arXiv:1611.04076).

The least-squares loss with the 0-1-1 coding a = 0, b = 1, c = 1 (eq. 9),
Adam with learning rate 2e-4 and beta1 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

from .adversarial import AdversarialGAN
from .dcgan import DCGANOptions
from .options import option
from .registry import register


@dataclass
class LSGANOptions(DCGANOptions):
    loss: str = option("least-squares", "Mao et al. 2017, eq. 9 (a-b-c = 0-1-1)")


@register
class LSGAN(AdversarialGAN):
    name = "lsgan"
    family = "objective and regularisation"
    paper = "Mao et al. 2017, Least Squares Generative Adversarial Networks, ICCV (arXiv:1611.04076)"
    summary = "least-squares loss (0-1-1 coding), Adam 2e-4 (0.5, 0.999)"
    Options = LSGANOptions
