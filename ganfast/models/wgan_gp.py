"""WGAN with gradient penalty (Gulrajani et al. 2017, NeurIPS; arXiv:1704.00028).

Algorithm 1: lambda 10, five critic steps per generator step, Adam with
learning rate 1e-4 and betas (0, 0.9); no BatchNorm in the critic (the
penalty is per sample, sec. 4).  On the 2-D toys the paper uses ReLU MLPs
with three hidden layers of 512 and no normalisation in G.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List

from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .registry import register


@dataclass
class WGANGPOptions(AdversarialOptions):
    loss: str = option("wasserstein", "Gulrajani et al. 2017, eq. 3")
    gradient_penalty: float = option(10.0, "Gulrajani et al. 2017, Algorithm 1: lambda = 10")
    n_critic: int = option(5, "Gulrajani et al. 2017, Algorithm 1: n_critic = 5")
    lr_g: float = option(1e-4, "Gulrajani et al. 2017, Algorithm 1: alpha = 0.0001")
    lr_d: float = option(1e-4, "Gulrajani et al. 2017, Algorithm 1: alpha = 0.0001")
    betas: List[float] = option([0.0, 0.9], "Gulrajani et al. 2017, Algorithm 1: beta1 = 0, beta2 = 0.9")
    batch_norm_d: bool = option(False, "Gulrajani et al. 2017, sec. 4: no BatchNorm in the critic")

    def resolve(self, method: Any) -> None:
        super().resolve(method)
        if self.arch == "mlp" and len(self.sample_shape) == 1:
            if self.hidden is None:
                self.hidden = [512, 512, 512]  # the paper's toy networks (released code, gan_toy.py)
            self.batch_norm_g = False          # the paper's toy generator has none


@register
class WGANGP(AdversarialGAN):
    name = "wgan-gp"
    family = "objective and regularisation"
    paper = "Gulrajani et al. 2017, Improved Training of Wasserstein GANs, NeurIPS (arXiv:1704.00028)"
    summary = "gradient penalty 10, Adam 1e-4 (0, 0.9), n_critic 5"
    Options = WGANGPOptions

    # The 2-D mixtures within minutes on a CPU (the paper's toy runs took 100k iterations):
    # the released toy code's penalty weight 0.1 (a smaller lambda lets the critic be steep
    # enough to pull samples into 0.02-wide modes) and Adam betas (0.5, 0.9); Adam at 1e-3
    # decayed linearly to 0 (the decay is what tightens the clusters at the end), batch 512
    # and 128-unit layers (more, cheaper steps beat a wider network at equal time), and a
    # short EMA (0.99: a long one blurs clusters that are still moving). Measured: README.
    recommended = {"points": {"steps": 8000, "batch_size": 512, "lr_schedule": "linear", "ema_decay": 0.99,
                              "options": {"hidden": [128, 128, 128], "gradient_penalty": 0.1,
                                          "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.9]}}}
