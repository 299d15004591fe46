"""Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784).

The label is fed to both networks: an embedding concatenated to z in G,
one-hot label maps concatenated to D's input channels.  Training as DCGAN's.
"""

from __future__ import annotations

from .adversarial import AdversarialGAN
from .dcgan import DCGANOptions
from .registry import register


@register
class CGAN(AdversarialGAN):
    name = "cgan"
    family = "conditional"
    paper = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets (arXiv:1411.1784)"
    summary = "conditional GAN, labels fed to G and D"
    Options = DCGANOptions
    conditional = True
    requires = ("image", "label")
    sample_conditions = ("label",)
