"""Wasserstein GAN (Arjovsky, Chintala & Bottou 2017, ICML; arXiv:1701.07875).

Algorithm 1: the critic's weights clipped to [-0.01, 0.01], RMSProp with
learning rate 5e-5, five critic steps per generator step; no sigmoid, no
log.  BatchNorm stays in G (their DCGAN generator) and leaves the critic so
that its output does not depend on the rest of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .registry import register


@dataclass
class WGANOptions(AdversarialOptions):
    loss: str = option("wasserstein", "Arjovsky et al. 2017, eq. 3")
    optimizer: str = option("rmsprop", "Arjovsky et al. 2017, Algorithm 1: RMSProp")
    lr_g: float = option(5e-5, "Arjovsky et al. 2017, Algorithm 1: alpha = 0.00005")
    lr_d: float = option(5e-5, "Arjovsky et al. 2017, Algorithm 1: alpha = 0.00005")
    n_critic: int = option(5, "Arjovsky et al. 2017, Algorithm 1: n_critic = 5")
    clip_d: float = option(0.01, "Arjovsky et al. 2017, Algorithm 1: c = 0.01")
    batch_norm_d: bool = option(False, "a per-sample critic (Gulrajani et al. 2017, sec. 4)")


@register
class WGAN(AdversarialGAN):
    name = "wgan"
    family = "objective and regularisation"
    paper = "Arjovsky, Chintala & Bottou 2017, Wasserstein GAN, ICML (arXiv:1701.07875)"
    summary = "Wasserstein critic, weight clipping 0.01, RMSProp 5e-5, n_critic 5"
    Options = WGANOptions
