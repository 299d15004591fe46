"""StyleGAN (Karras, Laine & Aila 2019, CVPR; arXiv:1812.04948): the first style-based generator.

Networks: :mod:`ganfast.models.nets.stylegan` (mapping network, constant
input, AdaIN layer epilogues with noise, one toRGB; ProGAN's discriminator).
Training is StyleGAN2's loop (:mod:`ganfast.models.stylegan2`) with the
first paper's settings, from NVlabs/stylegan ``train.py`` and
``training/loss.py`` (``G_logistic_nonsaturating``, ``D_logistic_simplegp``):

    G:  L_G = E softplus(-D(G(ws))), ws style-mixed with probability 0.9 (sec. 3.1)
    D:  L_D = E softplus(D(G(z))) + E softplus(-D(x)) + gamma / 2 E ||grad_x D(x)||^2, every step
        (gamma 10: the released config; R1 not lazy, no path-length term: both came with StyleGAN2)
    Adam betas (0, 0.99), eps 1e-8; G_ema with a half-life of 10k images (``G_smoothing_kimg``),
    no ramp-up.

Not reproduced: progressive growing (the released code grows StyleGAN the
way ProGAN does; here the networks train at their final resolution, the
"fixed" structure of ``G_synthesis``; ``--model progan`` grows), and the
per-resolution learning-rate and batch schedules that go with it: the
learning rate is the schedule's value at the final resolution.  The
upsampling and downsampling run as StyleGAN2's [1, 3, 3, 1] resampling
(equal to the released nearest + conv + [1, 2, 1] blur away from the
border; :mod:`ganfast.models.nets.stylegan` explains).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from torch import nn

from .nets.stylegan import StyleGANDiscriminator, StyleGANGenerator
from .options import option, square_power_of_two
from .registry import register
from .stylegan2 import StyleGAN2, StyleGAN2Options

__all__ = ["StyleGAN", "StyleGANOptions"]

_CODE = "NVlabs/stylegan"


@dataclass
class StyleGANOptions(StyleGAN2Options):
    z_dim: int = option(512, "Karras et al. 2019, sec. 2: 512-d latent spaces Z and W", min=1)
    w_dim: int = option(512, "Karras et al. 2019, sec. 2", min=1)
    mapping_lr: float = option(0.01, f"{_CODE}, networks_stylegan.py: G_mapping mapping_lrmul = 0.01",
                               help="learning-rate multiplier of the mapping network", min=0, min_exclusive=True)
    w_avg_beta: float = option(0.995, f"{_CODE}, networks_stylegan.py: dlatent_avg_beta = 0.995", min=0, max=1)
    mbstd_group_size: int = option(4, f"{_CODE}, networks_stylegan.py: D_basic mbstd_group_size = 4",
                                   help="minibatch standard deviation group (0 or 1: no such layer)", min=0)
    betas: List[float] = option([0.0, 0.99], f"{_CODE}, train.py: G_opt beta1 = 0, beta2 = 0.99", length=2,
                                min=0, max=1)
    eps: float = option(1e-8, f"{_CODE}, train.py: G_opt epsilon = 1e-8", min=0, min_exclusive=True)
    channel_base: int = option(16384, f"{_CODE}, networks_stylegan.py: nf(stage) = min(8192 / 2^stage, 512) at "
                                      "stage log2(r) - 1", help="channels at resolution r: min(channel_base / r, "
                                                                "channel_max)", min=1)
    channel_max: int = option(512, f"{_CODE}, networks_stylegan.py: fmap_max = 512", min=1)
    lr: Optional[float] = option(None, f"{_CODE}, train.py: lrate_base 0.001, FFHQ schedule {{128: 0.0015, "
                                       "256: 0.002, 512: 0.003, 1024: 0.003}; None: the value at the final "
                                       "resolution", min=0, min_exclusive=True)
    r1_gamma: Optional[float] = option(10.0, f"{_CODE}, train.py: D_loss = D_logistic_simplegp, r1_gamma = "
                                             "10.0", min=0)
    r1_interval: int = option(1, f"{_CODE}, loss.py: D_logistic_simplegp applies R1 every step (lazy "
                                 "regularisation is StyleGAN2's)", min=1)
    pl_weight: float = option(0.0, "Karras et al. 2019 has no path-length regularisation (StyleGAN2, sec. 3.2, "
                                   "added it)", min=0)
    ema_rampup: Optional[float] = option(None, f"{_CODE}, training_loop.py: G_smoothing_kimg = 10, no ramp-up",
                                         help="the EMA half-life is at most this fraction of the images shown "
                                              "(None: no ramp-up)", min=0, min_exclusive=True)

    def resolve(self, method) -> None:
        h = square_power_of_two(method, self.sample_shape, "")
        if self.lr is None:
            self.lr = 0.001 if h < 128 else {128: 0.0015, 256: 0.002}.get(h, 0.003)
        super().resolve(method)


@register(before="stylegan2")
class StyleGAN(StyleGAN2):
    name = "stylegan"
    family = "architecture"
    paper = "Karras et al. 2019, A Style-Based Generator Architecture for GANs, CVPR (arXiv:1812.04948)"
    summary = "mapping network, constant input, AdaIN with per-layer noise, style mixing, R1 (no growing)"
    Options = StyleGANOptions

    # `ganfast train --model stylegan --data fashion-mnist` on a CPU (32x32), reduced as stylegan2's is: 64-d
    # z and w, a 2-layer mapping network, channels min(1024 / r, 32), batch 16.
    recommended = {"image": {"steps": 3000, "batch_size": 16, "lr_schedule": "constant", "ema_decay": 0.999,
                             "options": {"z_dim": 64, "w_dim": 64, "mapping_layers": 2, "channel_base": 1024,
                                         "channel_max": 32}}}

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        c, r, _ = o.sample_shape
        return {"G": StyleGANGenerator(o.z_dim, o.w_dim, r, c, o.channel_base, o.channel_max, o.mapping_layers,
                                       o.mapping_lr, o.w_avg_beta),
                "D": StyleGANDiscriminator(r, c, o.channel_base, o.channel_max, o.mbstd_group_size)}
