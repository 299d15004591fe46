"""Spectrally normalised GAN (Miyato et al. 2018, ICLR; arXiv:1802.05957).

Spectral normalisation on every layer of D (no BatchNorm there), the hinge
loss (eq. 16-17), and setting C of table 1 for the standard CNN: Adam with
learning rate 2e-4, betas (0.5, 0.999), one D step per G step.
"""

from __future__ import annotations

from dataclasses import dataclass

from .adversarial import AdversarialGAN
from .dcgan import DCGANOptions
from .options import option
from .registry import register


@dataclass
class SNGANOptions(DCGANOptions):
    loss: str = option("hinge", "Miyato et al. 2018, eq. 16-17")
    spectral_norm_d: bool = option(True, "Miyato et al. 2018, sec. 2.1")
    batch_norm_d: bool = option(False, "Miyato et al. 2018, sec. 4: spectral norm replaces it in D")


@register
class SNGAN(AdversarialGAN):
    name = "sngan"
    family = "objective and regularisation"
    paper = "Miyato et al. 2018, Spectral Normalization for GANs, ICLR (arXiv:1802.05957)"
    summary = "spectral norm in D, hinge loss, Adam 2e-4 (0.5, 0.999)"
    Options = SNGANOptions
