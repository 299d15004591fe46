"""SRResNet and SRGAN (Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network, CVPR; arXiv:1609.04802).

Both train on high-resolution images ``HR = batch.image`` ``(B, C, R, R)``; the
low-resolution input is made on the fly by bicubic downsampling (paper sec.
3.1: "obtained by ... a bicubic kernel with downsampling factor r"):
``LR = bicubic(HR, 1 / scale)`` with antialiasing, clamped to [-1, 1] (HR and
LR both in [-1, 1]; the paper scales LR to [0, 1]).  Networks:
:mod:`ganfast.models.nets.srgan` (``G``: SRResNet; ``D``: the 8-convolution
discriminator).

* ``srresnet``: ``G`` alone with the pixel MSE, ``mean (G(LR) - HR)^2``
  (sec. 3.3, "SRResNet-MSE"), Adam lr 1e-4, beta1 0.9.
* ``srgan``: the MSE pre-training as a first phase (the paper initialises
  SRGAN from the trained SRResNet), then per step::

      D:  BCE(D(HR), 1) + BCE(D(G(LR)), 0)
      G:  content(G(LR), HR) + 1e-3 * BCE(D(G(LR)), 1)             (eq. 3; the adversarial term is eq. 6)

  with the content loss (eq. 4-5): the MSE of VGG19 ``relu5_4`` feature maps
  times 1/12.75^2 (the paper rescales the feature maps by 1/12.75) when
  ``vgg_weights`` names torchvision's VGG19 weights file; else the MSE of the
  feature maps of a network the user gives (:meth:`SRGAN.set_content_network`);
  else the pixel MSE, with a warning naming the one in use.  Adam lr 1e-4,
  then 1e-5 for the second half of the adversarial phase (sec. 3.2: 10^5
  updates at each rate).

The grid shows bicubic | super-resolved | HR per image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.batch import Batch
from .method import Method, OptimizerSpec
from .nets.srgan import SRDiscriminator, SRResNetGenerator, VGG19Features, VGG19_LAYERS
from .options import OptionsBase, option
from .phases import Phase, StepContext
from .pix2pix import match_channels
from .registry import register

__all__ = ["SRResNet", "SRGAN", "SRResNetOptions", "SRGANOptions", "bicubic_downsample", "bicubic_upsample",
           "batch_psnr"]

CONTENT_LOSSES = ("auto", "vgg", "network", "mse")


def bicubic_downsample(hr: Tensor, scale: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H / scale, W / scale)``: bicubic with antialiasing, clamped to [-1, 1].

    Raises:
        ValueError: ``hr`` not 4-D, or H, W not multiples of ``scale``.
    """
    if not isinstance(hr, Tensor) or hr.dim() != 4 or hr.shape[2] % scale or hr.shape[3] % scale:
        got = tuple(hr.shape) if isinstance(hr, Tensor) else type(hr).__name__
        raise ValueError(f"bicubic_downsample needs (B, C, H, W) with H and W multiples of {scale}; got {got}")
    size = (hr.shape[2] // scale, hr.shape[3] // scale)
    return F.interpolate(hr, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def bicubic_upsample(lr: Tensor, scale: int) -> Tensor:
    """The bicubic baseline: ``(B, C, h, w)`` -> ``(B, C, scale h, scale w)``, clamped to [-1, 1]."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


def batch_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Mean PSNR in dB over a batch of images in [-1, 1], each ``10 log10(4 / mean((pred - target)^2))``:
    scikit-image's ``peak_signal_noise_ratio`` with ``data_range = 2`` (tested equal), on the device."""
    mse = (pred.float().clamp(-1, 1) - target.float()).square().flatten(1).mean(1)
    return (10 * torch.log10(4.0 / mse.clamp_min(1e-12))).mean()


@dataclass
class SRResNetOptions(OptionsBase):
    sample_shape: List[int] = option([3, 96, 96], help="(C, R, R) of the HR images; set from the dataset (the "
                                                       "paper: 96x96 crops)")
    scale: int = option(4, "Ledig et al. 2017, sec. 3: 4x upscaling", help="upscaling factor, a power of two",
                        min=2)
    width: int = option(64, "Ledig et al. 2017, Fig. 4: 64 feature maps (k3n64s1)", min=1)
    n_blocks: int = option(16, "Ledig et al. 2017, sec. 2.2 and Fig. 4: B = 16 residual blocks", min=1)
    residual: bool = option(False, "Ledig et al. 2017, Fig. 4: G outputs the image (False); True: G learns the "
                                   "residual over bicubic upsampling (Kim et al. 2016, VDSR)",
                            help="add the bicubic upsampling of LR to G's output (its last conv starts at 0)")
    lr: float = option(1e-4, "Ledig et al. 2017, sec. 3.2: Adam, learning rate 10^-4", min=0, min_exclusive=True)
    betas: List[float] = option([0.9, 0.999], "Ledig et al. 2017, sec. 3.2: beta1 = 0.9", length=2, min=0, max=1)

    def resolve(self, method: Any) -> None:
        shape = list(self.sample_shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"{method.name} trains on square images: sample_shape must be (C, R, R); got {shape}")
        if self.scale & (self.scale - 1):
            raise ValueError(f"{method.name}: scale must be a power of two (PixelShuffle(2) stages); got "
                             f"{self.scale}")
        if shape[1] % self.scale:
            raise ValueError(f"{method.name}: the HR side {shape[1]} must be a multiple of scale={self.scale}")


@dataclass
class SRGANOptions(SRResNetOptions):
    ndf: int = option(64, "Ledig et al. 2017, Fig. 4: discriminator k3n64 ... k3n512", min=1)
    dense: int = option(1024, "Ledig et al. 2017, Fig. 4: Dense (1024)", min=1)
    adversarial_weight: float = option(1e-3, "Ledig et al. 2017, eq. 3: l^SR = l_X + 10^-3 l_Gen", min=0)
    content: str = option("auto", "Ledig et al. 2017, sec. 2.2.1: VGG loss on phi_5,4 (SRGAN-VGG54)",
                          help="content loss: auto (vgg with vgg_weights, else a network given by "
                               "set_content_network, else mse), vgg, network or mse", choices=CONTENT_LOSSES)
    vgg_weights: Optional[str] = option(None, help="path of torchvision's VGG19 ImageNet weights "
                                                   "(vgg19-dcbb9e9d.pth); nothing downloads")
    vgg_layer: str = option("relu5_4", "Ledig et al. 2017, sec. 2.2.1: phi_5,4, the 4th conv before the 5th "
                                       "maxpool", choices=tuple(VGG19_LAYERS))
    vgg_rescale: float = option(1 / 12.75, "Ledig et al. 2017, sec. 3.2: VGG feature maps rescaled by 1/12.75",
                                min=0, min_exclusive=True)
    pretrain_fraction: float = option(0.5, "Ledig et al. 2017, sec. 3.2: SRGAN is initialised from the "
                                           "MSE-trained SRResNet", help="fraction of the run spent on the "
                                                                        "MSE pre-training phase", min=0, max=1,
                                      max_exclusive=True)
    lr_decay: float = option(0.1, "Ledig et al. 2017, sec. 3.2: 10^5 updates at 10^-4, then 10^5 at 10^-5",
                             help="lr factor for the second half of the adversarial phase", min=0,
                             min_exclusive=True, max=1)


class SRGANDecay:
    """The lr factor: 1 through the pre-training and the first half of the adversarial phase, then ``decay``."""

    def __init__(self, pretrain_fraction: float, decay: float) -> None:
        self.pretrain_fraction, self.decay = float(pretrain_fraction), float(decay)

    def __call__(self, step: int, total: Optional[int] = None) -> float:
        if total is None:
            raise ValueError("the SRGAN schedule needs the run's total_steps")
        start = self.pretrain_fraction * total
        return 1.0 if step < start + (total - start) / 2 else self.decay

    def __repr__(self) -> str:
        return f"SRGANDecay(pretrain_fraction={self.pretrain_fraction}, decay={self.decay})"


@register
class SRResNet(Method):
    name = "srresnet"
    family = "super-resolution"
    paper = ("Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
             "Network, CVPR (arXiv:1609.04802), SRResNet-MSE")
    summary = "x4 super-resolution: a 16-block residual generator with PixelShuffle upsampling, pixel MSE"
    Options = SRResNetOptions
    sample_conditions = ("condition",)

    # On a CPU at 32x32 HR crops (8x8 LR): 16 blocks of 64 channels cost about 0.6 GMAC per HR crop, so the
    # recommendation is 8 blocks of 32 channels, batch 16, 800 steps (0.34 s per step on one thread of the
    # shared 2-core CPU, 2026-12-02).  In that budget the paper's form stays far below bicubic interpolation on
    # held-out photo crops (23.4 dB against bicubic's 32.7 after 800 steps at lr 1e-4; 24.3 dB after 300 at
    # 1e-3), so the recommendation learns the residual over bicubic with lr 1e-3, decayed linearly to 0 (held
    # out: 32.48 dB with the decay, 31.85 without).
    recommended = {"image": {"steps": 800, "batch_size": 16, "lr_schedule": "linear", "ema_decay": 0.0,
                             "options": {"width": 32, "n_blocks": 8, "residual": True, "lr": 1e-3}}}

    def configure(self) -> None:
        o = self.options
        self.sample_shape = tuple(o.sample_shape)
        self.scale = int(o.scale)

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        return {"G": SRResNetGenerator(o.sample_shape[0], o.width, o.n_blocks, o.scale, o.residual)}

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        return {"G": OptimizerSpec(("G",), o.lr, betas=(o.betas[0], o.betas[1]))}

    def phases(self) -> List[Phase]:
        return [Phase("G", "G", self.mse_loss)]

    def ema_networks(self) -> Dict[str, Any]:
        return {}  # the paper keeps no moving average

    def pair(self, batch: Batch) -> Tuple[Tensor, Tensor]:
        """``(LR, HR)`` of a batch: HR its images, LR their bicubic downsampling (Raises: ValueError without
        ``image``)."""
        batch.require(("image",), f"model {self.name!r}")
        hr = batch.image
        return bicubic_downsample(hr, self.scale), hr

    def mse_loss(self, batch: Batch, ctx: StepContext):
        lr, hr = self.pair(batch)
        sr = self.G(lr)
        loss = F.mse_loss(sr, hr)
        return loss, {"g_mse": loss.detach(), "psnr": batch_psnr(sr.detach(), hr)}

    # -- super-resolution ------------------------------------------------------------------------------------

    def translate(self, x: Tensor, *, networks: Optional[Mapping[str, nn.Module]] = None, **kw: Any) -> Tensor:
        """``G(x)``: LR images ``(N, C, h, w)`` in [-1, 1] -> ``(N, C, scale h, scale w)`` (unclamped).

        Raises:
            ValueError: a keyword other than ``direction="AtoB"``; ``x`` not ``(N, C, h, w)``.
        """
        if kw.pop("direction", "AtoB") != "AtoB" or kw:
            raise ValueError(f"{self.name} upscales (AtoB only) and takes no other options")
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.sample_shape[0]:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self.name} upscales (N, {self.sample_shape[0]}, h, w) images; got {got}")
        G = self.net("G", networks)
        param = next(G.parameters())
        return G(x.to(device=param.device, dtype=param.dtype))

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None,
               condition: Optional[Tensor] = None) -> Tensor:
        """``G(condition)`` clamped to [-1, 1]: the super-resolved LR images ``condition``.

        Raises:
            ValueError: no ``condition``, or ``n`` not ``len(condition)``.
        """
        if condition is None:
            raise ValueError(f"{self.name} samples are super-resolutions: pass condition=<(n, C, h, w) LR images>")
        if n is not None and n != len(condition):
            raise ValueError(f"n ({n}) must equal the number of condition images ({len(condition)})")
        out = self.translate(condition, networks=networks).clamp(-1, 1)
        return out.to(device) if device is not None else out

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        """``{"condition": LR}``: the bicubic downsampling of the first n images of a real batch.

        Raises:
            ValueError: no batch with ``image``.
        """
        if batch is None or getattr(batch, "image", None) is None:
            raise ValueError(f"{self.name}'s samples super-resolve real images: sample_inputs needs a batch")
        return {"condition": bicubic_downsample(batch.image[:n], self.scale)}

    def grid_size(self) -> int:
        return 16

    def grid_images(self, samples: Tensor, inputs: Mapping[str, Any], batch: Optional[Batch] = None
                    ) -> Tuple[Tensor, Optional[int]]:
        """``(images, nrow)``: per image bicubic | super-resolved | HR (the HR without a batch left out), two
        triplets per row."""
        n, c = samples.shape[:2]
        cols = [bicubic_upsample(inputs["condition"][:n].to(samples), self.scale), samples]
        if batch is not None and getattr(batch, "image", None) is not None:
            cols.append(batch.image[:n].to(samples))
        cols = [match_channels(x, c) for x in cols]
        return torch.stack(cols, 1).flatten(0, 1), 2 * len(cols)


@register
class SRGAN(SRResNet):
    name = "srgan"
    paper = ("Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
             "Network, CVPR (arXiv:1609.04802)")
    summary = ("x4 super-resolution GAN: SRResNet G pre-trained with MSE, then content (VGG54) + 1e-3 "
               "adversarial loss against an 8-conv D")
    Options = SRGANOptions

    # The SRResNet reduction above, and a D of 16 to 128 channels with a 128-wide dense layer; 600 steps, half
    # of them the MSE pre-training.
    recommended = {"image": {"steps": 600, "batch_size": 16, "lr_schedule": "constant", "ema_decay": 0.0,
                             "options": {"width": 32, "n_blocks": 8, "residual": True, "lr": 1e-3, "ndf": 16,
                                         "dense": 128}}}

    def configure(self) -> None:
        super().configure()
        self._content_network: Optional[nn.Module] = None
        self._vgg: Optional[nn.Module] = None
        self._announced = False
        o = self.options
        if o.content == "vgg" and o.vgg_weights is None:
            raise ValueError("content='vgg' needs vgg_weights=<path of torchvision's vgg19-dcbb9e9d.pth>")
        if o.vgg_weights is not None and o.content in ("auto", "vgg"):
            self._vgg = VGG19Features(o.vgg_weights, o.vgg_layer)  # raises FileNotFoundError naming the file

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        return {**super().build_networks(), "D": SRDiscriminator(o.sample_shape[0], o.sample_shape[1], o.ndf, o.dense)}

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(("G",), o.lr, betas=betas), "D": OptimizerSpec(("D",), o.lr, betas=betas)}

    def _pretraining(self, ctx: StepContext) -> bool:
        if ctx.total_steps is None:
            raise ValueError("srgan's MSE pre-training phase needs the run's total_steps (StepContext.total_steps)")
        return ctx.step < math.floor(self.options.pretrain_fraction * ctx.total_steps)

    def phases(self) -> List[Phase]:
        return [Phase("pretrain", "G", self.mse_loss, when=self._pretraining),
                Phase("D", "D", self.d_loss, when=lambda ctx: not self._pretraining(ctx)),
                Phase("G", "G", self.g_loss, batch="same", when=lambda ctx: not self._pretraining(ctx))]

    def schedules(self) -> Dict[str, Any]:
        o = self.options
        return {"lr": SRGANDecay(o.pretrain_fraction, o.lr_decay)}

    def train_step(self, next_batch, optimizers, ctx: Optional[StepContext] = None):
        """As :meth:`Method.train_step`, after checking that the content loss asked for has its network (at the
        first step rather than when the adversarial phase starts).  Raises: ValueError from
        :meth:`content_kind` (``content="network"`` without :meth:`set_content_network`; from the command line
        use ``vgg_weights`` or ``content=mse``)."""
        try:
            self.content_kind()
        except ValueError as err:
            raise ValueError(f"{err}; from the command line use -o vgg_weights=PATH or -o content=mse") from None
        return super().train_step(next_batch, optimizers, ctx)

    # -- content loss -----------------------------------------------------------------------------------------

    def set_content_network(self, network: Optional[nn.Module]) -> None:
        """Use ``network``'s outputs as the content features (``content="auto"`` or ``"network"``): it takes
        images in [-1, 1] ``(B, C, R, R)``; it is frozen here and not saved in checkpoints.

        Raises:
            TypeError: ``network`` is not an ``nn.Module`` (or None to clear it).
        """
        if network is not None and not isinstance(network, nn.Module):
            raise TypeError(f"network must be an nn.Module or None; got {type(network).__name__}")
        if network is not None:
            network.requires_grad_(False)
            network.eval()
        self._content_network = network
        self._announced = False

    def content_kind(self) -> str:
        """Which content loss runs: ``"vgg"``, ``"network"`` or ``"mse"`` (Raises: ValueError when the one asked
        for has nothing to run on)."""
        o = self.options
        if o.content == "network" and self._content_network is None:
            raise ValueError("content='network' needs set_content_network(<nn.Module>) first")
        if o.content in ("auto", "vgg") and self._vgg is not None:
            return "vgg"
        if o.content in ("auto", "network") and self._content_network is not None:
            return "network"
        return "mse"

    def content_loss(self, sr: Tensor, hr: Tensor) -> Tensor:
        """Eq. 4-5: the MSE of the content features of ``sr`` and ``hr`` (see the module docstring)."""
        kind = self.content_kind()
        if not self._announced:
            self._announced = True
            what = {"vgg": f"VGG19 {self.options.vgg_layer} features of {self.options.vgg_weights}",
                    "network": f"the features of the given {type(self._content_network).__name__}",
                    "mse": "the pixel MSE (no vgg_weights and no content network: SRGAN-MSE)"}[kind]
            warnings.warn(f"srgan's content loss is {what}", stacklevel=2)
        if kind == "mse":
            return F.mse_loss(sr, hr)
        net = self._vgg if kind == "vgg" else self._content_network
        net = net.to(sr.device)
        fs, fh = net(sr), net(hr)
        if kind == "vgg":
            fs, fh = fs * self.options.vgg_rescale, fh * self.options.vgg_rescale
        return F.mse_loss(fs, fh)

    # -- one adversarial iteration ----------------------------------------------------------------------------

    def d_loss(self, batch: Batch, ctx: StepContext):
        lr, hr = self.pair(batch)
        with torch.no_grad():
            sr = self.G(lr)
        real, fake = self.D(hr), self.D(sr)
        loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return loss, {"d_loss": loss.detach(), "d_real": real.detach().mean(), "d_fake": fake.detach().mean()}

    def g_loss(self, batch: Batch, ctx: StepContext):
        lr, hr = self.pair(batch)
        sr = self.G(lr)
        content = self.content_loss(sr, hr)
        logit = self.D(sr)
        adversarial = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))  # eq. 6: -log D(G(LR))
        loss = content + self.options.adversarial_weight * adversarial
        return loss, {"g_loss": loss.detach(), "g_content": content.detach(), "g_adv": adversarial.detach(),
                      "psnr": batch_psnr(sr.detach(), hr)}
