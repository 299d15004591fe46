"""pix2pix (Isola, Zhu, Zhou & Efros 2017, Image-to-Image Translation with Conditional Adversarial Networks, CVPR).

Networks: :mod:`ganfast.models.nets.pix2pix` (U-Net generator with dropout
kept at test time, 70x70 PatchGAN).  Training as
junyanz/pytorch-CycleGAN-and-pix2pix ``models/pix2pix_model.py`` does it
(``optimize_parameters``; written here, not copied), one iteration on a batch
of aligned pairs (A = ``batch.image``, B = ``batch.target``)::

    jitter: resize A and B to 286/256 of the side, crop a random side x side window and flip
            horizontally with probability 1/2, the same window and flip for A and B       (sec. 6.2)
    fake = G(A)                                         (one forward per iteration: one dropout mask)
    D:  L_D = ( BCE(D(A, B), 1) + BCE(D(A, fake.detach()), 0) ) / 2                     (sec. 3.1, 3.3)
    G:  L_G = BCE(D(A, fake), 1) + lambda_L1 * mean |B - fake|                     (eq. 4, lambda = 100)

``D(A, X)`` is the PatchGAN on the channel concatenation ``cat(A, X)`` (the
conditional GAN of eq. 1); BCE is ``binary_cross_entropy_with_logits`` averaged
over every patch logit (the released ``GANLoss("vanilla")``); halving L_D
"slows down the rate at which D learns relative to G" (sec. 3.3).  The
generator loss is the non-saturating one (sec. 3.3: "maximize log D(x, G(x, z))").
Adam, lr 2e-4, betas (0.5, 0.999); the learning rate constant for the first
half of the run and linearly decayed to 0 over the second (the released
``--n_epochs 100 --n_epochs_decay 100`` rule, in steps).  No EMA generator
(the released code keeps none).

Sampling: :meth:`Pix2Pix.sample` / :meth:`Pix2Pix.translate` give ``G(A)``;
dropout stays on (paper sec. 3.1), so two calls differ.  The trainer's sample
grid shows the outputs; :meth:`Pix2Pix.grid_images` lays out input | output |
target triplets for a trainer that asks for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.batch import Batch
from .method import Method, OptimizerSpec
from .nets.pix2pix import NORMS, PatchDiscriminator, UNetGenerator, patch_output_size
from .options import OptionsBase, option, square_power_of_two
from .phases import Phase, StepContext
from .registry import register

__all__ = ["Pix2Pix", "Pix2PixOptions", "ConstantThenLinear", "jitter_pairs", "match_channels"]

_CODE = "junyanz/pytorch-CycleGAN-and-pix2pix"


@dataclass
class Pix2PixOptions(OptionsBase):
    sample_shape: List[int] = option([3, 32, 32], help="(C, R, R) of the input A, R a power of two >= 4; set from "
                                                       "the dataset (the U-Net has log2(R) levels)")
    target_channels: Optional[int] = option(None, help="channels of the output B; None: the dataset's target "
                                                       "channels, else those of A", min=1)
    ngf: int = option(64, "Isola et al. 2017, appendix 6.1.1: U-Net encoder C64-C128-C256-C512-...", min=1)
    ndf: int = option(64, "Isola et al. 2017, appendix 6.1.2: 70x70 discriminator C64-C128-C256-C512", min=1)
    n_layers_d: int = option(3, f"Isola et al. 2017, appendix 6.1.2; {_CODE}, networks.py: n_layers_D = 3 "
                                "(the 70x70 PatchGAN)", help="stride-2 convolutions of the PatchGAN "
                                                             "(1: 16x16 patches, 2: 34x34, 3: 70x70)", min=1)
    norm: str = option("batch", f"Isola et al. 2017, sec. 6.1; {_CODE}, pix2pix_model.py: norm = 'batch'",
                       choices=NORMS)
    dropout: float = option(0.5, "Isola et al. 2017, sec. 3.1 and appendix 6.1.1: dropout 50% in the decoder's "
                                 "first C512 layers, also at test time", min=0, max=1, max_exclusive=True)
    lambda_l1: float = option(100.0, "Isola et al. 2017, sec. 4 (eq. 4): lambda = 100", min=0)
    lr: float = option(2e-4, "Isola et al. 2017, sec. 3.3: Adam, learning rate 0.0002", min=0, min_exclusive=True)
    betas: List[float] = option([0.5, 0.999], "Isola et al. 2017, sec. 3.3: momentum beta1 = 0.5, beta2 = 0.999",
                                length=2, min=0, max=1)
    decay_fraction: float = option(0.5, f"{_CODE}, options: --n_epochs 100 --n_epochs_decay 100 (constant, then "
                                        "linear to 0), mapped to steps", help="fraction of the run at the end "
                                                                              "over which the learning rate "
                                                                              "decays linearly to 0 (0: constant)",
                                   min=0, max=1)
    jitter: bool = option(True, f"Isola et al. 2017, sec. 6.2: resize 256 -> 286, random crop back to 256, "
                                f"mirroring; {_CODE}: --preprocess resize_and_crop, flip unless --no_flip",
                          help="random jitter and mirroring, identical for A and B of a pair")

    def resolve(self, method: Any) -> None:
        r = square_power_of_two(method, self.sample_shape, " (the U-Net halves it down to 1x1)")
        smallest = 3 * 2 ** self.n_layers_d
        if r < smallest:
            raise ValueError(f"{method.name}: the PatchGAN with n_layers_d={self.n_layers_d} needs images of side "
                             f">= {smallest} (its map would be {patch_output_size(r, self.n_layers_d)}x"
                             f"{patch_output_size(r, self.n_layers_d)} at {r}); use a smaller n_layers_d or larger "
                             f"images")
        if self.target_channels is None:
            self.target_channels = int(self.sample_shape[0])


class ConstantThenLinear:
    """A learning-rate factor: 1 for the first ``1 - fraction`` of the run, then linearly to 0 at its end.

    The released ``lambda_rule`` (``1 - max(0, epoch - n_epochs) / (n_epochs_decay + 1)``) with epochs
    replaced by steps: at step ``s`` of ``T``, ``min(1, (T - s) / (fraction * T))`` (0 from step T on).
    """

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
        self.fraction = float(fraction)

    def __call__(self, step: int, total: Optional[int] = None) -> float:
        if self.fraction == 0.0:
            return 1.0
        if total is None:
            raise ValueError("ConstantThenLinear needs the run's total_steps")
        return max(0.0, min(1.0, (total - step) / (self.fraction * total)))

    def __repr__(self) -> str:
        return f"ConstantThenLinear(fraction={self.fraction})"


def jitter_pairs(a: Tensor, b: Tensor, *, scale: float = 286 / 256, flip: bool = True,
                 generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """pix2pix's random jitter (sec. 6.2), one draw per pair, applied alike to ``a`` and ``b``.

    Both are resized (bicubic, as the released transforms, clamped to [-1, 1])
    to ``round(scale * side)``, then each pair is cropped at a random window of
    the original size and flipped left-right with probability 1/2.  The
    offsets and flips come from ``generator`` (None: torch's global RNG, which
    the trainer seeds and checkpoints), drawn on the CPU.

    Args:
        a, b: ``(N, C, H, W)`` and ``(N, C', H, W)``.

    Returns:
        ``(a', b')`` of the input shapes.

    Raises:
        ValueError: ``a`` and ``b`` not 4-D with the same N, H and W, or ``scale < 1``.
    """
    if a.dim() != 4 or b.dim() != 4 or a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
        raise ValueError(f"jitter_pairs needs (N, C, H, W) and (N, C', H, W) tensors; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1; got {scale!r}")
    n, ca, h, w = a.shape
    big_h, big_w = int(round(h * scale)), int(round(w * scale))
    x = torch.cat([a, b], 1)
    if (big_h, big_w) != (h, w):
        x = F.interpolate(x, size=(big_h, big_w), mode="bicubic", align_corners=False).clamp_(-1, 1)
    oy = torch.randint(0, big_h - h + 1, (n,), generator=generator)
    ox = torch.randint(0, big_w - w + 1, (n,), generator=generator)
    flips = (torch.rand(n, generator=generator) < 0.5) if flip else torch.zeros(n, dtype=torch.bool)
    cols = torch.arange(w)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + ox[:, None]     # (n, w)
    rows = oy[:, None] + torch.arange(h)                                        # (n, h)
    idx = torch.arange(n)[:, None, None]
    dev = x.device
    out = x[idx.to(dev), :, rows[:, :, None].to(dev), cols[:, None, :].to(dev)]  # (n, h, w, C)
    out = out.permute(0, 3, 1, 2).contiguous()
    return out[:, :ca], out[:, ca:]


def translation_options(dataset: Any) -> Dict[str, Any]:
    """A translation method's options from a two-field dataset: ``sample_shape`` (A's ``(C, H, W)``) and, when
    the dataset has a ``target_shape``, ``target_channels`` (B's channels)."""
    out: Dict[str, Any] = {"sample_shape": tuple(dataset.sample_shape)}
    target_shape = getattr(dataset, "target_shape", None)
    if target_shape is not None:
        out["target_channels"] = int(target_shape[0])
    return out


def decay_schedules(fraction: float) -> Dict[str, Any]:
    """``{"lr": ConstantThenLinear(fraction)}`` (the released constant-then-linear rule), or none for 0."""
    return {"lr": ConstantThenLinear(fraction)} if fraction > 0 else {}


def match_channels(x: Tensor, channels: int) -> Tensor:
    """``x`` ``(N, C, H, W)`` shown with ``channels`` channels, for grids mixing domains: as is when C matches,
    a 1-channel image repeated, extra channels cut, missing ones filled with -1 (black)."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    if x.shape[1] > channels:
        return x[:, :channels]
    return torch.cat([x, x.new_full((len(x), channels - x.shape[1]) + tuple(x.shape[2:]), -1.0)], 1)


@register
class Pix2Pix(Method):
    name = "pix2pix"
    family = "image-to-image translation"
    paper = ("Isola, Zhu, Zhou & Efros 2017, Image-to-Image Translation with Conditional Adversarial Networks, "
             "CVPR (arXiv:1611.07004)")
    summary = "paired translation: U-Net G with test-time dropout, 70x70 PatchGAN on (A, B), cGAN + 100 L1"
    Options = Pix2PixOptions
    requires = ("image", "target")
    layout = "paired"
    sample_field = "target"
    sample_conditions = ("condition",)

    # `ganfast train --model pix2pix` on 32x32 paired data on a CPU.  The paper's widths (ngf = ndf = 64, 54M
    # parameters in G at 256x256) and its batch of 1 would be slow there: reduced to ngf = ndf = 16 (1.0M
    # parameters in G at 32x32), batch 16.  A 32x32 image makes a 5-level U-Net (no dropout level: the
    # released rule puts dropout only on the ngf*8 levels next to the innermost, which exist from 64x64 on)
    # and a PatchGAN with n_layers_d = 2 (34x34 patches, a 6x6 map) rather than 70x70 patches wider than the
    # image.  The lr decays as the paper's (constant, then linear to 0 over the second half; the trainer's
    # own lr schedule stays "constant"); no EMA.  Measured 2026-12-02 on the shared 2-core CPU, 1x32x32
    # pairs: 0.09 s per step (ngf = ndf = 32: 0.42 s), so 3000 steps take about 5 minutes.
    recommended = {"image": {"steps": 3000, "batch_size": 16, "lr_schedule": "constant", "ema_decay": 0.0,
                             "options": {"ngf": 16, "ndf": 16, "n_layers_d": 2}}}

    @classmethod
    def options_from_dataset(cls, dataset: Any) -> Dict[str, Any]:
        return translation_options(dataset)

    def configure(self) -> None:
        o = self.options
        #: the input A's shape (what the trainer compares with the dataset's ``sample_shape``)
        self.sample_shape = tuple(o.sample_shape)
        self.num_downs = int(math.log2(o.sample_shape[1]))
        self._iteration: Optional[Tuple[Batch, Tensor, Tensor, Tensor]] = None

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        c_in = o.sample_shape[0]
        return {"G": UNetGenerator(c_in, o.target_channels, self.num_downs, o.ngf, o.norm, o.dropout),
                "D": PatchDiscriminator(c_in + o.target_channels, o.ndf, o.n_layers_d, o.norm)}

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(("G",), o.lr, betas=betas), "D": OptimizerSpec(("D",), o.lr, betas=betas)}

    def phases(self) -> List[Phase]:
        # the released optimize_parameters: forward, update D, then update G on the same pair and the same G(A)
        return [Phase("D", "D", self.d_loss), Phase("G", "G", self.g_loss, batch="same")]

    def schedules(self) -> Dict[str, Any]:
        return decay_schedules(self.options.decay_fraction)

    def ema_networks(self) -> Dict[str, Any]:
        return {}  # the released code keeps no moving average of G

    # -- one iteration ----------------------------------------------------------------------------------------

    def pair(self, batch: Batch) -> Tuple[Tensor, Tensor]:
        """``(A, B)`` of a batch, jittered when ``jitter`` is on (Raises: ValueError for a missing field)."""
        batch.require(self.requires, f"model {self.name!r}")
        a, b = batch.image, batch.target
        if self.options.jitter:
            a, b = jitter_pairs(a, b)
        return a, b

    def _forward(self, batch: Batch) -> Tuple[Tensor, Tensor, Tensor]:
        """``(A, B, G(A))`` for this iteration's batch, computed once (jitter, dropout mask, BatchNorm update).

        The D phase runs first with G frozen by the phase runner; G's forward is
        recorded there with G's parameters unfrozen for it, so that the G phase
        back-propagates through the very ``G(A)`` that D saw (the released
        ``forward()`` before ``backward_D`` / ``backward_G``).  A G phase
        without a preceding D phase on this batch computes its own.
        """
        cached = self._iteration
        if cached is not None and cached[0] is batch:
            return cached[1], cached[2], cached[3]
        a, b = self.pair(batch)
        params = list(self.G.parameters())
        flags = [p.requires_grad for p in params]
        try:
            for p in params:
                p.requires_grad_(True)
            with torch.enable_grad():
                fake = self.G(a)
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        self._iteration = (batch, a, b, fake)
        return a, b, fake

    def d_loss(self, batch: Batch, ctx: StepContext):
        a, b, fake = self._forward(batch)
        d_real = self.D(torch.cat([a, b], 1))
        d_fake = self.D(torch.cat([a, fake.detach()], 1))
        loss_real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        loss_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        loss = (loss_real + loss_fake) * 0.5  # sec. 3.3: "divide the objective by 2 while optimizing D"
        return loss, {"d_loss": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def g_loss(self, batch: Batch, ctx: StepContext):
        a, b, fake = self._forward(batch)
        self._iteration = None  # the graph is used once
        d_fake = self.D(torch.cat([a, fake], 1))
        gan = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        l1 = (fake - b).abs().mean()
        loss = gan + self.options.lambda_l1 * l1
        return loss, {"g_loss": loss.detach(), "g_gan": gan.detach(), "g_l1": l1.detach()}

    # -- translation and sampling -----------------------------------------------------------------------------

    def translate(self, x: Tensor, *, networks: Optional[Mapping[str, nn.Module]] = None, **kw: Any) -> Tensor:
        """``G(x)``: ``(N, C_A, R, R)`` in [-1, 1] -> ``(N, target_channels, R, R)`` in (-1, 1).

        Dropout stays on (paper sec. 3.1), so repeated calls differ unless ``dropout=0``.

        Raises:
            ValueError: ``x`` not of shape ``(N,) + sample_shape``; ``direction`` other than AtoB; an
                unknown keyword.
        """
        if "direction" in kw and kw["direction"] != "AtoB":
            raise ValueError("pix2pix translates the one way it was trained (AtoB); for the other way, train a "
                             "model on the pairs reversed (swap the A/ and B/ folders, or "
                             "ganfast.data.load(..., direction='BtoA') in Python)")
        kw.pop("direction", None)
        if kw:
            raise ValueError(f"pix2pix.translate takes no options beyond networks and direction; got {sorted(kw)}")
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != self.sample_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"pix2pix translates (N, {', '.join(map(str, self.sample_shape))}) images; got {got}")
        G = self.net("G", networks)
        param = next(G.parameters())
        return G(x.to(device=param.device, dtype=param.dtype))

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None,
               condition: Optional[Tensor] = None) -> Tensor:
        """``G(condition)``: the translations of ``condition`` (A images, ``(n,) + sample_shape``).

        pix2pix has no latent: its randomness is dropout, drawn from torch's
        global RNG (``generator`` is accepted for the contract and unused).

        Raises:
            ValueError: no ``condition``; ``n`` not ``len(condition)``; a badly shaped ``condition``.
        """
        if condition is None:
            raise ValueError("pix2pix samples are translations: pass condition=<(n, C, R, R) input images>")
        if n is not None and n != len(condition):
            raise ValueError(f"n ({n}) must equal the number of condition images ({len(condition)})")
        out = self.translate(condition, networks=networks)
        return out.to(device) if device is not None else out

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        """``{"condition": batch.image[:n]}``: the first n inputs of a real paired batch (never jittered).

        Raises:
            ValueError: no batch, or one without ``image`` (pix2pix cannot invent its inputs).
        """
        if batch is None or getattr(batch, "image", None) is None:
            raise ValueError("pix2pix's samples translate real inputs: sample_inputs needs a batch with 'image'")
        return {"condition": batch.image[:n]}

    def grid_size(self) -> int:
        """16 pairs in the trainer's grids (each shown as input | output | target: 8 rows of two triplets)."""
        return 16

    def grid_images(self, samples: Tensor, inputs: Mapping[str, Any], batch: Optional[Batch] = None
                    ) -> Tuple[Tensor, Optional[int]]:
        """``(images, nrow)`` for a sample grid: per pair input | output | target, two triplets per row.

        ``samples`` are :meth:`sample`'s outputs for ``inputs``; the targets are
        ``batch.target[:n]`` (without a batch: input | output pairs).  Inputs with
        another channel count than the outputs are repeated (1 channel) or cut.
        """
        a = inputs["condition"].to(samples)
        n, c = samples.shape[:2]
        cols = [match_channels(a[:n].to(samples), c), samples]
        if batch is not None and getattr(batch, "target", None) is not None:
            cols.append(match_channels(batch.target[:n].to(samples), c))
        out = torch.stack(cols, 1).flatten(0, 1)  # (n * k, c, h, w): input, output[, target] per pair
        return out, 2 * len(cols)
