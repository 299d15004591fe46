"""LAPGAN (Denton, Chintala, Szlam & Fergus 2015, Deep Generative Image Models using a Laplacian Pyramid of
Adversarial Networks, NeurIPS).

A Laplacian pyramid of GANs (:mod:`ganfast.data.pyramid`: ``d`` the 2x2 box
average, ``u`` bilinear x2).  For images of side ``R`` and a coarsest side
``c`` there are ``K = log2(R / c)`` finer levels, at sides ``c * 2``, ...,
``R``; the networks are named by their side (``G8``, ``D8``, ``G16``, ...):

* the coarsest level (side ``c``): an unconditional GAN on the low-pass image
  ``I_K`` (``G_c(z)``, fully connected nets as in the paper's CIFAR-10
  models, z uniform on [-1, 1]^100 as in the released code);
* every finer level (side ``r``): a conditional GAN generating the band-pass
  image ``h = I - u(d(I))`` from a noise plane and the upsampled coarser image
  ``l = u(d(I))`` (:class:`~ganfast.models.nets.lapgan.BandPassGenerator`,
  :class:`~ganfast.models.nets.lapgan.BandPassDiscriminator`).

Training (paper sec. 3, the released ``conditional_adversarial.lua``): every
level trains independently on the real pyramid of each batch ``x``, level
``r`` conditioned on the *real* ``l_r = u(I_{r/2})``::

    D: sum over levels of  BCE(D_r(h_r, l_r), 1) + BCE(D_r(G_r(n, l_r), l_r), 0)    (coarsest: D_c(I_c), D_c(G_c(z)))
    G: sum over levels of  BCE(D_r(G_r(n, l_r), l_r), 1)                             (non-saturating)

Sampling (paper eq. 2, Fig. 1) runs the levels coarse to fine on their own
outputs: ``I~_c = G_c(z)``, then ``I~_r = u(I~_{r/2}) + G_r(n_r, u(I~_{r/2}))``;
the final image is clamped to [-1, 1].

**Not the paper's optimiser.**  The released code uses SGD (lr 0.01-0.02,
decayed by 1/1.000004 and momentum raised by 0.0008 per epoch of CIFAR-10, up
to 0.7-0.8); those schedules are tied to its epochs, so this method uses the
DCGAN's Adam (2e-4, betas 0.5 and 0.999) for every level, one optimiser for
all generators and one for all discriminators (the levels share no
parameters, so this equals one optimiser per level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.batch import Batch
from ..data.pyramid import gaussian_pyramid, upsample2x
from .method import Method, OptimizerSpec
from .nets.lapgan import BandPassDiscriminator, BandPassGenerator
from .nets.mlp import MLPDiscriminator, MLPGenerator
from .options import OptionsBase, option, square_power_of_two
from .phases import Phase, StepContext
from .registry import register

__all__ = ["LAPGAN", "LAPGANOptions"]

_CODE = "facebookarchive/eyescream"


@dataclass
class LAPGANOptions(OptionsBase):
    sample_shape: List[int] = option([1, 32, 32], help="(C, R, R), R a power of two; set from the dataset")
    coarsest: int = option(8, "Denton et al. 2015, sec. 4: CIFAR-10 pyramids start from 8x8",
                           help="side of the coarsest level (a power of two, >= 4, <= R)", min=4)
    latent_dim: int = option(100, f"{_CODE}: --noiseDim 100", min=1)
    hidden_g: List[int] = option([1200, 1200], "Denton et al. 2015, sec. 4: the 8x8 generator, fully connected, "
                                               "1200 ReLU units per hidden layer")
    hidden_d: List[int] = option([600, 600], "Denton et al. 2015, sec. 4: the 8x8 discriminator, fully connected, "
                                             "600 units per hidden layer with dropout")
    width_g: int = option(128, f"{_CODE}, train_cifar_coarse_to_fine.lua: --hidden_G 128", min=1)
    width_d: int = option(128, f"{_CODE}, train_cifar_coarse_to_fine.lua: --hidden_D 128", min=1)
    dropout: float = option(0.5, f"{_CODE}: nn.Dropout() before D's linear layer", min=0, max=1,
                            max_exclusive=True)
    lr: float = option(2e-4, "Radford et al. 2016 (DCGAN), sec. 3: Adam 0.0002 (the released SGD schedule is "
                             "tied to CIFAR-10 epochs)", min=0, min_exclusive=True)
    betas: List[float] = option([0.5, 0.999], "Radford et al. 2016, sec. 3: beta1 = 0.5", length=2, min=0, max=1)

    def resolve(self, method: Any) -> None:
        r = square_power_of_two(method, self.sample_shape)
        c = self.coarsest
        if c & (c - 1) or c > r:
            raise ValueError(f"{method.name}: coarsest must be a power of two <= the image side {r}; got {c}")
        if r // c > 1 and min(2 * c, r) < 16:
            raise ValueError(f"{method.name}: the first conditional level has side {2 * c}; its discriminator "
                             f"(two 5x5 convolutions, one of stride 2) needs >= 16: use coarsest >= 8")


@register
class LAPGAN(Method):
    name = "lapgan"
    family = "multi-scale"
    paper = ("Denton, Chintala, Szlam & Fergus 2015, Deep Generative Image Models using a Laplacian Pyramid of "
             "Adversarial Networks, NeurIPS (arXiv:1506.05751)")
    summary = ("a Laplacian pyramid of GANs: an unconditional GAN at the coarsest level, conditional GANs for "
               "each band-pass level, sampled coarse to fine")
    Options = LAPGANOptions

    # `ganfast train --model lapgan` on 32x32 images on a CPU: the released widths (128 channels in the
    # finer levels' convolutions, 7x7 kernels at full resolution: 0.8 GMAC per 32x32 sample in G32 alone) are
    # reduced to 16, and the coarsest nets to 512/256 units; batch 16.  Measured 2026-12-02 on the 2-core CPU
    # with one thread (the other core busy): 0.18 s per step, so 1500 steps take about 4.5 minutes.  In that
    # budget D's dropout made the 8x8 level collapse to one image (1500 steps on Fashion-MNIST at 8x8: the
    # per-pixel std over 256 samples 0.04 with dropout 0.5, 0.39 without and lr 5e-4; the real images' 0.45),
    # so the recommendation drops it and raises the lr.
    recommended = {"image": {"steps": 1500, "batch_size": 16, "lr_schedule": "constant", "ema_decay": 0.0,
                             "options": {"width_g": 16, "width_d": 16, "hidden_g": [512, 512],
                                         "hidden_d": [256, 256], "dropout": 0.0, "lr": 5e-4}}}

    def configure(self) -> None:
        o = self.options
        self.sample_shape = tuple(o.sample_shape)
        r = o.sample_shape[1]
        #: sides of the levels, coarsest first (``coarsest``, ``2 coarsest``, ..., ``R``)
        self.sides = [o.coarsest * 2 ** k for k in range(int(math.log2(r // o.coarsest)) + 1)]

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        c = o.sample_shape[0]
        first = self.sides[0]
        nets: Dict[str, nn.Module] = {
            f"G{first}": MLPGenerator(o.latent_dim, (c, first, first), o.hidden_g, out_activation="tanh"),
            f"D{first}": MLPDiscriminator((c, first, first), o.hidden_d, activation="relu", dropout=o.dropout),
        }
        for side in self.sides[1:]:
            nets[f"G{side}"] = BandPassGenerator(c, o.width_g)
            nets[f"D{side}"] = BandPassDiscriminator(c, side, o.width_d, o.dropout)
        return nets

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(tuple(f"G{s}" for s in self.sides), o.lr, betas=betas),
                "D": OptimizerSpec(tuple(f"D{s}" for s in self.sides), o.lr, betas=betas)}

    def phases(self) -> List[Phase]:
        return [Phase("D", "D", self.d_loss), Phase("G", "G", self.g_loss, batch="same")]

    def ema_networks(self) -> Dict[str, Any]:
        return {}  # the paper keeps no moving averages

    # -- one iteration ----------------------------------------------------------------------------------------

    def _levels(self, x: Tensor) -> List[Tuple[int, Tensor, Optional[Tensor]]]:
        """``(side, target, l)`` per level, coarsest first: ``(c, I_c, None)``, then ``(r, h_r, u(I_{r/2}))``."""
        g = gaussian_pyramid(x, len(self.sides) - 1)[::-1]  # coarsest first
        out: List[Tuple[int, Tensor, Optional[Tensor]]] = [(self.sides[0], g[0], None)]
        for k, side in enumerate(self.sides[1:], 1):
            low = upsample2x(g[k - 1])
            out.append((side, g[k] - low, low))
        return out

    def _noise(self, n: int, side: int, like: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Uniform noise on [-1, 1]: ``(n, latent_dim)`` for the coarsest level, a ``(n, 1, side, side)`` plane
        for the others (the released code's ``uniform(-1, 1)``)."""
        shape = (n, self.options.latent_dim) if side == self.sides[0] else (n, 1, side, side)
        u = torch.rand(shape, generator=generator, device="cpu" if generator is not None else like.device)
        return (u * 2 - 1).to(device=like.device, dtype=like.dtype)

    def _fake(self, side: int, low: Optional[Tensor], n: int, like: Tensor,
              networks: Optional[Mapping[str, nn.Module]] = None,
              generator: Optional[torch.Generator] = None, noise: Optional[Tensor] = None) -> Tensor:
        G = self.net(f"G{side}", networks)
        noise = self._noise(n, side, like, generator) if noise is None else noise.to(like)
        return G(noise) if low is None else G(noise, low)

    def _d(self, side: int, x: Tensor, low: Optional[Tensor]) -> Tensor:
        D = getattr(self, f"D{side}")
        return D(x) if low is None else D(x, low)

    def _real_images(self, batch: Batch) -> Tensor:
        batch.require(("image",), f"model {self.name!r}")
        return batch.image

    def d_loss(self, batch: Batch, ctx: StepContext):
        x = self._real_images(batch)
        total, logs = 0.0, {}
        for side, target, low in self._levels(x):
            with torch.no_grad():
                fake = self._fake(side, low, len(x), x)
            real_logit, fake_logit = self._d(side, target, low), self._d(side, fake, low)
            loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) + \
                F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
            total = total + loss
            logs[f"d_loss_{side}"] = loss.detach()
        logs["d_loss"] = total.detach()
        return total, logs

    def g_loss(self, batch: Batch, ctx: StepContext):
        x = self._real_images(batch)
        total, logs = 0.0, {}
        for side, _, low in self._levels(x):
            logit = self._d(side, self._fake(side, low, len(x), x), low)
            loss = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
            total = total + loss
            logs[f"g_loss_{side}"] = loss.detach()
        logs["g_loss"] = total.detach()
        return total, logs

    # -- sampling ---------------------------------------------------------------------------------------------

    def sample_levels(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
                      generator: Optional[torch.Generator] = None, latent: Optional[Tensor] = None,
                      noise_seed: Optional[int] = None, noise: Optional[Sequence[Tensor]] = None) -> List[Tensor]:
        """The coarse-to-fine chain (paper eq. 2): ``[I~_c, I~_2c, ..., I~_R]``, each ``(n, C, side, side)``,
        unclamped.  ``latent`` ``(n, latent_dim)`` fixes z (else drawn uniform on [-1, 1] from ``generator``);
        ``noise`` gives the finer levels' noise planes, one ``(n, 1, side, side)`` tensor per finer level
        (uniform on [-1, 1], as :meth:`sample_inputs` draws them), else ``noise_seed`` seeds their draw,
        else they come from ``generator``.

        Raises:
            ValueError: neither ``n`` nor ``latent``, a ``latent`` of another shape or count, or ``noise``
                not one plane of the right shape per finer level.
        """
        G0 = self.net(f"G{self.sides[0]}", networks)
        param = next(G0.parameters())
        if latent is None:
            if n is None:
                raise ValueError("sample_levels needs n or latent")
            latent = self._noise(n, self.sides[0], param, generator)
        if latent.dim() != 2 or latent.shape[1] != self.options.latent_dim or (n is not None and len(latent) != n):
            raise ValueError(f"latent must be (n, {self.options.latent_dim}); got {tuple(latent.shape)} for n={n}")
        latent = latent.to(param)
        if noise is not None:
            want = [(len(latent), 1, side, side) for side in self.sides[1:]]
            got = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in noise]
            if got != want:
                raise ValueError(f"noise must be one plane per finer level, shapes {want}; got {got}")
        g = torch.Generator().manual_seed(int(noise_seed)) if noise_seed is not None else generator
        images = [G0(latent)]
        for k, side in enumerate(self.sides[1:]):
            low = upsample2x(images[-1])
            images.append(low + self._fake(side, low, len(latent), param, networks, g,
                                           None if noise is None else noise[k]))
        return images

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None,
               latent: Optional[Tensor] = None, noise_seed: Optional[int] = None,
               noise: Optional[Sequence[Tensor]] = None) -> Tensor:
        """``n`` images ``(n, C, R, R)`` in [-1, 1] (:meth:`sample_levels`' finest level, clamped).

        Raises:
            ValueError: as :meth:`sample_levels`.
        """
        out = self.sample_levels(n, networks=networks, generator=generator, latent=latent,
                                 noise_seed=noise_seed, noise=noise)[-1].clamp(-1, 1)
        return out.to(device) if device is not None else out

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        """``{"latent": z, "noise": [planes]}``: z ``(n, latent_dim)`` and one ``(n, 1, side, side)`` noise plane
        per finer level, uniform on [-1, 1], drawn from ``generator`` on the CPU: every sample's randomness
        is in its own rows, so a slice of the inputs gives the same images in any batching."""
        z = torch.rand(n, self.options.latent_dim, generator=generator) * 2 - 1
        noise = [torch.rand(n, 1, side, side, generator=generator) * 2 - 1 for side in self.sides[1:]]
        return {"latent": z, "noise": noise}

    def grid_size(self) -> int:
        """8 chains in the trainer's grids."""
        return 8

    @torch.no_grad()
    def grid_images(self, samples: Tensor, inputs: Mapping[str, Any], batch: Any = None
                    ) -> Tuple[Tensor, Optional[int]]:
        """``(images, levels)``: per sample the chain coarse to fine, each level upsampled (nearest) to R."""
        chain = self.sample_levels(latent=inputs["latent"], noise_seed=inputs.get("noise_seed"),
                                   noise=inputs.get("noise"))
        r = self.sample_shape[-1]
        cols = [F.interpolate(level.clamp(-1, 1).float().cpu(), size=(r, r), mode="nearest") for level in chain]
        return torch.stack(cols, 1).flatten(0, 1), len(cols)
