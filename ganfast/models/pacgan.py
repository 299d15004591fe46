"""PacGAN (Lin, Khetan, Fanti & Oh 2018, NeurIPS; arXiv:1712.04086).

The discriminator judges *packs* of m samples instead of single samples: a
real pack is m independent real samples, a fake pack m independent
generated samples, and D sees them concatenated, so only its first layer
changes: m x d inputs on the 2-D mixtures (released code,
``synthetic_data_experiments/2DGrid_GAN&PacGAN/pacgan_task.py``: the first
maxout layer's ``input_dim = num_xdim * num_packing``), m x C channels on
images (``stacked_MNIST_experiments/.../model.py``: ``tf.concat(G_sep, 3)``).
Everything else is the GAN it wraps: the non-saturating loss, the same
networks otherwise, the same optimiser.  A generator that has collapsed
onto a few modes makes packs whose samples come from the same few modes,
which a packed D tells from real packs far more easily than single samples
(the paper's mode-collapse-region analysis), so packing penalises collapse.

Algorithm (released code, ``synthetic_data_experiments/PacGAN/pacgan/bricks.py``,
``compute_losses``)::

    x_1..x_B real, z_1..z_B ~ N(0, I)             # B = batch, a multiple of m
    P_real = [cat(x_{mi+1}, ..., x_{mi+m})]_i     # B/m packs
    P_fake = [cat(G(z_{mi+1}), ..., G(z_{mi+m}))]_i
    L_D = mean softplus(-D(P_real)) + mean softplus(D(P_fake))
    L_G = mean softplus(-D(P_fake))                     (non-saturating)

In ganfast a batch holds samples; :class:`PackedDiscriminator` packs it
into ``B / m`` packs (:func:`pack`) and applies any discriminator built for
the packed shape (:func:`packed_shape`): the MLP D's first Linear has m x d
inputs, the DCGAN D's first convolution m x C input channels.  The classic
methods' options apply to packs: spectral norm, minibatch layers and
feature matching act on pack features, and the gradient penalties (WGAN-GP,
R1, R2) differentiate D with respect to its input, the whole pack.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .phases import StepContext
from .registry import register

__all__ = ["PackedDiscriminator", "PacGAN", "PacGANOptions", "pack", "packed_shape"]


def packed_shape(sample_shape: Sequence[int], m: int) -> Tuple[int, ...]:
    """The shape of one pack of ``m`` samples of ``sample_shape``: ``(m*d,)`` or ``(m*C, H, W)``."""
    return (m * sample_shape[0], *sample_shape[1:])


def pack(x: Tensor, m: int) -> Tensor:
    """``(B, d)`` or ``(B, C, H, W)`` samples as ``B/m`` packs of ``m`` consecutive samples.

    Pack i is ``cat(x[m*i], ..., x[m*i + m - 1])`` along the feature (or
    channel) dimension: ``(B/m, m*d)`` or ``(B/m, m*C, H, W)``, one reshape
    (a view of a contiguous batch).  Lin et al. 2018 pack m independent samples; the trainer's
    batches are drawn in a shuffled order and G's from independent latents,
    so consecutive samples are independent.

    Raises:
        ValueError: ``B`` is not a multiple of ``m``.
    """
    if x.dim() < 2:
        raise ValueError(f"pack: expected samples of shape (B, d) or (B, C, H, W); got {tuple(x.shape)}")
    b = x.shape[0]
    if b % m != 0:
        lower = b - b % m
        hint = f"{lower} or {lower + m}" if lower > 0 else f"{m}"
        raise ValueError(f"PacGAN packs {m} samples per discriminator input, so the batch must be a multiple of "
                         f"{m}; got a batch of {b} (use a batch size of {hint})")
    return x.reshape(b // m, m * x.shape[1], *x.shape[2:])


class PackedDiscriminator(nn.Module):
    """``D`` of packs: ``(B, *sample_shape)`` samples -> ``(B/m,)`` logits, one per pack of m samples.

    Args:
        discriminator: any unconditional discriminator taking ``(N, *packed_shape(sample_shape, m))``
            (``forward(x, *, return_features=False)``, the :mod:`ganfast.models.nets` convention).
        m: samples per pack (the packing degree).

    ``forward(x, return_features=True)`` returns the packs' features, as the
    wrapped D does (feature matching then compares pack statistics).
    """

    def __init__(self, discriminator: nn.Module, m: int) -> None:
        super().__init__()
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"m (samples per pack) must be a positive int; got {m!r}")
        self.net = discriminator
        self.m = m
        self.feature_dim = getattr(discriminator, "feature_dim", None)

    def forward(self, x: Tensor, *, return_features: bool = False):
        packs = pack(x, self.m)
        return self.net(packs, return_features=True) if return_features else self.net(packs)

    def extra_repr(self) -> str:
        return f"m={self.m}"


@dataclass
class PacGANOptions(AdversarialOptions):
    pack: int = option(2, "Lin et al. 2018, Table 1 (2D-ring, 2D-grid): PacGAN2 already recovers nearly every "
                          "mode (the paper and released config.py try m = 2, 3, 4)",
                       help="samples per discriminator input (the packing degree m); the batch must be a multiple",
                       min=1)
    latent_dim: Optional[int] = option(None, "Lin et al. 2018, released code (config.py): num_zdim 2 on the 2-D data",
                                       help="None: 2 for points, 100 for images (Radford et al. 2015)", min=1)
    hidden: Optional[List[int]] = option(None, "Lin et al. 2018, released code (pacgan_task.py): G with four hidden "
                                               "layers of 400 on the 2-D data",
                                         help="mlp: G's hidden widths (None: [400, 400, 400, 400] on points, "
                                              "[256, 512] on images)", min=1)
    loss: str = option("non-saturating", "Lin et al. 2018, released code (pacgan/bricks.py): the GAN of Goodfellow "
                                         "et al. 2014, G minimises softplus(-D(G(z))) = -log D(G(z))")
    lr_g: float = option(1e-4, "Lin et al. 2018, released code (2DGrid/2DRing config.py): Adam, lr 1e-4")
    lr_d: float = option(1e-4, "Lin et al. 2018, released code (2DGrid/2DRing config.py): Adam, lr 1e-4")
    betas: List[float] = option([0.8, 0.999], "Lin et al. 2018, released code (config.py): Adam beta1 0.8")
    batch_norm_g: bool = option(True, "Lin et al. 2018, released code: BatchNorm before each ReLU of G")
    batch_norm_d: bool = option(False, "Lin et al. 2018, released code: no normalisation in D")
    init: str = option("dcgan", "Lin et al. 2018, released code: weights N(0, 0.02), biases 0")
    hidden_d: Optional[List[int]] = option(
        None, "Lin et al. 2018, released code (pacgan_task.py): on 2-D data D has three hidden layers of 200 "
              "(maxout with 5 pieces there, LeakyReLU 0.2 here)",
        help="mlp: D's hidden widths, input side first (None: [200, 200, 200] on points when `hidden` is not "
             "given either, else `hidden` reversed, as the classic methods)", min=1)

    def resolve(self, method: Any) -> None:
        points = len(self.sample_shape) == 1 if isinstance(self.sample_shape, (list, tuple)) else True
        if points and self.latent_dim is None:
            self.latent_dim = 2  # the released 2-D code's z: N(0, I) in two dimensions
        super().resolve(method)
        if self.arch == "mlp" and points and self.hidden is None:
            # the released 2-D code's G: four hidden layers of 400, BatchNorm + ReLU; its D: three of 200
            self.hidden = [400, 400, 400, 400]
            if self.hidden_d is None:
                self.hidden_d = [200, 200, 200]


@register
class PacGAN(AdversarialGAN):
    name = "pacgan"
    family = "mode collapse"
    paper = "Lin, Khetan, Fanti & Oh 2018, PacGAN: The power of two samples in generative adversarial " \
            "networks, NeurIPS (arXiv:1712.04086)"
    summary = "D judges packs of m samples (m=2) concatenated along the features or channels"
    Options = PacGANOptions

    # The 2-D mixtures within 5 minutes on one CPU core (the released code runs 400k steps of the
    # 4 x 400 BatchNorm G): a 3 x 128 G without BatchNorm and a D of two layers of 256 (two wide
    # layers resolve the packed grid, 625 modes in 4-D for m = 2, thousands of steps earlier than
    # three narrow ones), D faster than G (3e-3 vs 1e-3, Adam beta1 0.5), both decayed linearly
    # to 0, and a short EMA (0.99), as wgan-gp's toy recommendation. 20000 steps of 512 take
    # 180-220 CPU s on one thread. Measured with `ganfast sample --n 2500`, seeds 0, 1, 2:
    # grid25 25/25 modes at 94.8%, 95.3%, 95.3% high quality; ring8 8/8 at 97.5%, 97.4%, 98.8%.
    recommended = {"points": {"steps": 20000, "batch_size": 512, "lr_schedule": "linear", "ema_decay": 0.99,
                              "options": {"hidden": [128, 128, 128], "hidden_d": [256, 256], "batch_norm_g": False,
                                          "init": "default", "lr_g": 1e-3, "lr_d": 3e-3, "betas": [0.5, 0.999]}}}

    def configure(self) -> None:
        super().configure()
        self.m: int = self.options.pack

    @contextlib.contextmanager
    def _discriminator_of_packs(self) -> Iterator[None]:
        """While it is open, the base method builds its D for one pack (and with ``hidden_d``)."""
        o = self.options
        saved = self.sample_shape, o.hidden
        self.sample_shape = packed_shape(self.sample_shape, self.m)
        if o.hidden_d is not None:
            o.hidden = list(reversed(o.hidden_d))  # the base builds D with `hidden` reversed
        try:
            yield
        finally:
            self.sample_shape, o.hidden = saved

    def build_networks(self) -> Dict[str, nn.Module]:
        # G as the base method builds it; D as it builds it for one pack (m samples concatenated)
        G = super().build_networks()["G"]
        with self._discriminator_of_packs():
            D = super().build_networks()["D"]
        return {"G": G, "D": PackedDiscriminator(D, self.m)}

    # -- penalties see what D sees: packs ------------------------------------------------------------

    def critic(self, y: Optional[Tensor]) -> Callable[[Tensor], Tensor]:
        """D on packs (``(N, *packed_shape)`` -> ``(N,)``), for the gradient penalties."""
        return self.D.net

    def add_penalties(self, total: Tensor, real: Tensor, y: Optional[Tensor], fake: Tensor,
                      y_fake: Optional[Tensor], ctx: StepContext, logs: Dict[str, Tensor]) -> Tensor:
        # D is a function of a pack, so a gradient penalty is one on packs: WGAN-GP interpolates
        # real and fake packs and penalises the norm of D's gradient w.r.t. the whole pack; R1 and R2
        # take the squared norm per pack (one sample's gradient is only part of D's input gradient)
        return super().add_penalties(total, pack(real, self.m), None, pack(fake, self.m), None, ctx, logs)
