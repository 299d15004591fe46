"""DCGAN (Radford, Metz & Chintala 2015, arXiv:1511.06434, ICLR 2016).

Strided convolutions in D, fractionally strided in G, BatchNorm in both
(not on G's output or D's input), ReLU/Tanh in G, LeakyReLU(0.2) in D
(sec. 3); Adam with learning rate 2e-4 and beta1 0.5, weights from
N(0, 0.02) (sec. 4).  Each BatchNorm block runs as one fused ganfast layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .registry import register


@dataclass
class DCGANOptions(AdversarialOptions):
    lr_g: float = option(2e-4, "Radford et al. 2015, sec. 4: learning rate 0.0002")
    lr_d: float = option(2e-4, "Radford et al. 2015, sec. 4: learning rate 0.0002")
    init: str = option("dcgan", "Radford et al. 2015, sec. 4: weights from N(0, 0.02)")


@register
class DCGAN(AdversarialGAN):
    name = "dcgan"
    family = "foundational"
    paper = "Radford, Metz & Chintala 2015, Unsupervised Representation Learning with DCGANs (arXiv:1511.06434)"
    summary = "strided/fractionally strided convs, BatchNorm, Adam 2e-4 (0.5, 0.999)"
    Options = DCGANOptions
    # `ganfast train` with no arguments: 16x16 digits, batch 128 as in the paper, about 4
    # minutes on a 2-core CPU
    recommended = {"image": {"steps": 3000, "batch_size": 128}}
