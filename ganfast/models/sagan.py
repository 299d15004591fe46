"""Self-attention GAN (Zhang, Goodfellow, Metaxas & Odena 2019, ICML; arXiv:1805.08318).

Self-attention in G and D at a middle-to-late feature map, spectral norm
in both networks, the hinge loss, and the two time-scale update rule
(Heusel et al. 2017): G at 1e-4, D at 4e-4, Adam (0, 0.9) (sec. 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List

from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .registry import register


@dataclass
class SAGANOptions(AdversarialOptions):
    loss: str = option("hinge", "Zhang et al. 2019, sec. 5")
    spectral_norm_g: bool = option(True, "Zhang et al. 2019, sec. 4.1: spectral norm in G as well")
    spectral_norm_d: bool = option(True, "Zhang et al. 2019, sec. 4.1")
    batch_norm_d: bool = option(False, "Zhang et al. 2019: spectral norm replaces it in D")
    lr_g: float = option(1e-4, "Zhang et al. 2019, sec. 4.2 (TTUR): 0.0001 for G")
    lr_d: float = option(4e-4, "Zhang et al. 2019, sec. 4.2 (TTUR): 0.0004 for D")
    betas: List[float] = option([0.0, 0.9], "Zhang et al. 2019, sec. 5: beta1 = 0, beta2 = 0.9")

    def resolve(self, method: Any) -> None:
        super().resolve(method)
        if self.arch != "conv":
            raise ValueError("model 'sagan' is convolutional (self-attention over feature maps): it needs image data")
        if self.self_attention is None:
            # the paper's best placement is a middle-to-late feature map (32x32 of 128x128):
            # here the last hidden resolution of G, which D also produces
            self.self_attention = max(4, self.sample_shape[1] // 2)


@register
class SAGAN(AdversarialGAN):
    name = "sagan"
    family = "architecture"
    paper = "Zhang, Goodfellow, Metaxas & Odena 2019, Self-Attention GANs, ICML (arXiv:1805.08318)"
    summary = "self-attention in G and D, spectral norm, hinge, TTUR 1e-4/4e-4"
    Options = SAGANOptions
