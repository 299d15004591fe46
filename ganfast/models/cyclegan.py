"""CycleGAN (Zhu, Park, Isola & Efros 2017, Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks, ICCV).

Networks (:mod:`ganfast.models.nets.cyclegan`): ``G_AB`` (A -> B) and ``G_BA``
(B -> A), ResNet generators; ``D_A`` and ``D_B``, 70x70 PatchGANs with
instance norm judging images of domain A and of domain B.  (The released
code calls them G_A, G_B, D_B and D_A: its ``D_A`` judges ``G_A``'s outputs,
which are in domain B; the paper calls them G, F, D_X and D_Y.)  Training as
junyanz/pytorch-CycleGAN-and-pix2pix ``models/cycle_gan_model.py`` does it
(``optimize_parameters``; written here, not copied), on a batch of unpaired
images ``A = batch.image`` and ``B = batch.target``::

    jitter: each of A and B resized to 286/256 of its side, cropped back at a random window and
            flipped with probability 1/2, independently (released --preprocess resize_and_crop)
    G:  fake_B = G_AB(A), rec_A = G_BA(fake_B), fake_A = G_BA(B), rec_B = G_AB(fake_A)
        L_G = MSE(D_B(fake_B), 1) + MSE(D_A(fake_A), 1)                           (eq. 1, LSGAN form, sec. 4)
            + lambda_A |rec_A - A|_1 + lambda_B |rec_B - B|_1                     (eq. 2, lambda = 10, sec. 4)
            + lambda_idt (lambda_B |G_AB(B) - B|_1 + lambda_A |G_BA(A) - A|_1)       (sec. 5.2, lambda_idt = 0.5)
    D:  L_D = ( MSE(D_B(B), 1) + MSE(D_B(pool_B(fake_B)), 0) ) / 2
            + ( MSE(D_A(A), 1) + MSE(D_A(pool_A(fake_A)), 0) ) / 2                 (sec. 4: pools of 50)

with ``|.|_1`` the mean absolute error and MSE the mean over every patch
logit (the released ``GANLoss("lsgan")``; ``gan_mode="vanilla"`` uses BCE with
logits).  G updates first, then D on the same batch and the detached fakes of
the G phase, passed through the image pools (:class:`ImagePool`).  Adam, lr
2e-4, betas (0.5, 0.999), one optimiser for both generators and one for both
discriminators; the learning rate constant for the first half of the run and
linearly decayed to 0 over the second (``--n_epochs 100 --n_epochs_decay 100``,
in steps).  No EMA.

The identity loss maps a B image through ``G_AB`` (and an A image through
``G_BA``), so it needs the two domains to have one channel count; with
``lambda_identity > 0`` and different counts the options are refused.

``fused=True`` (default) runs every ``Conv -> InstanceNorm -> ReLU/LeakyReLU``
of the four networks as one fused layer (:func:`ganfast.nn.convert`:
``ganfast.ops.instance_norm_act``); their keys then read ``model.1.conv.weight``
(and they still load the released checkpoints' ``model.1.weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.batch import Batch
from .method import Method, OptimizerSpec
from .nets.cyclegan import UPSAMPLES, ResNetGenerator, default_resnet_blocks
from .nets.pix2pix import NORMS, PatchDiscriminator, patch_output_size
from .options import OptionsBase, option, square_power_of_two
from .phases import Phase, StepContext
from .pix2pix import decay_schedules, jitter_pairs, match_channels, translation_options
from .registry import register

__all__ = ["CycleGAN", "CycleGANOptions", "ImagePool", "jitter_images", "gan_loss"]

_CODE = "junyanz/pytorch-CycleGAN-and-pix2pix"
GAN_MODES = ("lsgan", "vanilla")


def gan_loss(logits: Tensor, real: bool, mode: str = "lsgan") -> Tensor:
    """The released ``GANLoss``: ``mean((logits - t)^2)`` (``"lsgan"``) or BCE with logits (``"vanilla"``), t = 1/0."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def jitter_images(x: Tensor, *, scale: float = 286 / 256, flip: bool = True,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """Random resize-crop and mirroring of each image of ``x`` ``(N, C, H, W)`` (:func:`jitter_pairs` with no
    partner): the released ``resize_and_crop`` + flip for one domain.  Raises: ValueError for a non-4-D ``x``."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"jitter_images needs an (N, C, H, W) tensor; got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    return jitter_pairs(x, x[:, :0], scale=scale, flip=flip, generator=generator)[0]


class ImagePool:
    """A history of generated images (Shrivastava et al. 2017, sec. 2.3; CycleGAN sec. 4: 50 images).

    :meth:`query` takes a batch of fakes and returns a batch of the same size
    for the discriminator, image by image, by the released ``ImagePool.query``
    rule (``util/image_pool.py``): while the pool holds fewer than ``size``
    images, the image is stored and returned; once full, with probability 1/2
    a uniformly chosen stored image is returned and replaced by the new one,
    otherwise the new image is returned and the pool is unchanged.  ``size = 0``
    returns the batch as it is.  The draws (one uniform and one index per
    image) come from torch's global CPU RNG, which the trainer seeds and
    checkpoints, so a resumed run draws what the uninterrupted run would; the
    stored images are in :meth:`state_dict`.

    Raises:
        ValueError: a negative ``size``; in :meth:`query`, images of another shape than the stored ones.
    """

    def __init__(self, size: int = 50) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"pool size must be an int >= 0; got {size!r}")
        self.size = size
        self.images: Optional[Tensor] = None  # (size, C, H, W), the first `count` rows filled
        self.count = 0

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` fakes -> ``(N, C, H, W)`` detached images for D (see the class docstring)."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = images.new_empty((self.size,) + tuple(images.shape[1:]))
        elif tuple(self.images.shape[1:]) != tuple(images.shape[1:]):
            raise ValueError(f"ImagePool holds images of shape {tuple(self.images.shape[1:])}; got a batch of "
                             f"{tuple(images.shape)}")
        elif self.images.device != images.device:
            self.images = self.images.to(images.device)  # loaded from a checkpoint on another device
        n = len(images)
        swap = torch.rand(n) > 0.5
        slots = torch.randint(0, self.size, (n,))
        out = []
        for i in range(n):
            image = images[i]
            if self.count < self.size:
                self.images[self.count].copy_(image)
                self.count += 1
                out.append(image)
            elif swap[i]:
                j = int(slots[i])
                out.append(self.images[j].clone().to(image.dtype))
                self.images[j].copy_(image)
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> Dict[str, Any]:
        return {"size": self.size, "count": self.count,
                "images": None if self.images is None else self.images[:self.count].clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"the checkpoint's image pool holds {state['size']} images; this one {self.size}")
        self.count = int(state["count"])
        stored = state["images"]
        if stored is None:
            self.images = None
            return
        self.images = stored.new_empty((self.size,) + tuple(stored.shape[1:]))
        self.images[:self.count].copy_(stored)

    def to(self, device: Any) -> "ImagePool":
        if self.images is not None:
            self.images = self.images.to(device)
        return self


@dataclass
class CycleGANOptions(OptionsBase):
    sample_shape: List[int] = option([3, 32, 32], help="(C, R, R) of domain A, R a power of two >= 8; set from "
                                                       "the dataset")
    target_channels: Optional[int] = option(None, help="channels of domain B; None: the dataset's target "
                                                       "channels, else those of A", min=1)
    ngf: int = option(64, "Zhu et al. 2017, appendix 7.2: c7s1-64, d128, d256, R256 ..., u128, u64, c7s1-3", min=1)
    ndf: int = option(64, "Zhu et al. 2017, appendix 7.2: 70x70 PatchGAN C64-C128-C256-C512", min=1)
    n_blocks: Optional[int] = option(None, "Zhu et al. 2017, appendix 7.2: 6 residual blocks for 128x128 images, "
                                           "9 for 256x256 and higher", help="residual blocks of each generator "
                                                                            "(None: 6 below 256 px, else 9)",
                                     min=0)
    n_layers_d: int = option(3, f"{_CODE}, networks.py: n_layers_D = 3 (the 70x70 PatchGAN)",
                             help="stride-2 convolutions of each PatchGAN (1: 16x16 patches, 2: 34x34, 3: 70x70)",
                             min=1)
    norm: str = option("instance", "Zhu et al. 2017, appendix 7.2 and sec. 4: instance normalization",
                       choices=NORMS)
    upsample: str = option("transpose", f"Zhu et al. 2017, appendix 7.2: fractional-strided convolutions; "
                                        f"'resize' (Odena et al. 2016) against checkerboard artefacts ({_CODE} "
                                        f"issues #78, #190)", choices=UPSAMPLES)
    dropout: float = option(0.0, f"{_CODE}, cycle_gan_model.py: --no_dropout by default", min=0, max=1,
                            max_exclusive=True)
    gan_mode: str = option("lsgan", "Zhu et al. 2017, sec. 4: least-squares loss (Mao et al. 2017)",
                           choices=GAN_MODES)
    lambda_a: float = option(10.0, "Zhu et al. 2017, sec. 4 (eq. 3): lambda = 10", help="weight of the cycle loss "
                                                                                          "A -> B -> A", min=0)
    lambda_b: float = option(10.0, "Zhu et al. 2017, sec. 4 (eq. 3): lambda = 10", help="weight of the cycle loss "
                                                                                          "B -> A -> B", min=0)
    lambda_identity: float = option(0.5, f"Zhu et al. 2017, sec. 5.2: identity weight 0.5 lambda; {_CODE}: "
                                         "--lambda_identity 0.5", help="identity loss weight, relative to lambda_a / "
                                                                       "lambda_b (0: off; needs equal channels)",
                                    min=0)
    pool_size: int = option(50, "Zhu et al. 2017, sec. 4: a buffer of the 50 previously generated images",
                            min=0)
    lr: float = option(2e-4, "Zhu et al. 2017, sec. 4: Adam, learning rate 0.0002", min=0, min_exclusive=True)
    betas: List[float] = option([0.5, 0.999], f"{_CODE}: --beta1 0.5, beta2 0.999", length=2, min=0, max=1)
    decay_fraction: float = option(0.5, "Zhu et al. 2017, sec. 4: the same lr for the first 100 epochs, linearly "
                                        "decayed to zero over the next 100", help="fraction of the run at the end "
                                                                                  "over which the lr decays "
                                                                                  "linearly to 0 (0: constant)",
                                   min=0, max=1)
    jitter: bool = option(True, f"{_CODE}: --preprocess resize_and_crop (load 286, crop 256), flip unless "
                                "--no_flip", help="random resize-crop and mirroring of each domain's images")
    fused: bool = option(True, help="run Conv -> InstanceNorm -> ReLU/LeakyReLU as the fused layer "
                                    "(ganfast.nn.convert); False: plain torch.nn modules")

    def resolve(self, method: Any) -> None:
        r = square_power_of_two(method, self.sample_shape, " (the ResNet generator quarters it)")
        if r < 8:
            raise ValueError(f"{method.name} needs images of side >= 8; got sample_shape {list(self.sample_shape)}")
        smallest = 3 * 2 ** self.n_layers_d
        if r < smallest:
            raise ValueError(f"{method.name}: the PatchGAN with n_layers_d={self.n_layers_d} needs images of side "
                             f">= {smallest} (its map would be {patch_output_size(r, self.n_layers_d)}x"
                             f"{patch_output_size(r, self.n_layers_d)} at {r}); use a smaller n_layers_d or larger "
                             f"images")
        if self.target_channels is None:
            self.target_channels = int(self.sample_shape[0])
        if self.n_blocks is None:
            self.n_blocks = default_resnet_blocks(r)
        if self.lambda_identity > 0 and self.target_channels != self.sample_shape[0]:
            raise ValueError(f"{method.name}: the identity loss (lambda_identity={self.lambda_identity}) feeds B "
                             f"images to G_AB and A images to G_BA, so both domains need one channel count; A has "
                             f"{self.sample_shape[0]} and B {self.target_channels}: pass lambda_identity=0 "
                             f"(ganfast train -o lambda_identity=0), or give both domains one channel count")


@register
class CycleGAN(Method):
    name = "cyclegan"
    family = "image-to-image translation"
    paper = ("Zhu, Park, Isola & Efros 2017, Unpaired Image-to-Image Translation using Cycle-Consistent "
             "Adversarial Networks, ICCV (arXiv:1703.10593)")
    summary = ("unpaired translation: two ResNet Gs with instance norm, two PatchGANs, LSGAN + cycle 10 + "
               "identity 5, image pools of 50")
    Options = CycleGANOptions
    requires = ("image", "target")
    layout = "unpaired"
    sample_field = "target"
    sample_conditions = ("condition",)

    # `ganfast train --model cyclegan` on 32x32 unpaired data on a CPU.  The paper's widths (ngf = ndf = 64,
    # 9 blocks: 11.4M parameters per G at 256x256) would be slow there: reduced to ngf = ndf = 16 and 6 blocks
    # (the paper's count below 256 px), batch 4 (the paper trains with batch 1), a PatchGAN with
    # n_layers_d = 2 (34x34 patches, a 6x6 map) rather than 70x70 patches wider than the image.  Measured
    # 2026-12-02 on the 2-core CPU with one thread (the other core busy): 0.26 s per step on 1x32x32 images, so
    # the 1000 steps take about 4.5 minutes.
    recommended = {"image": {"steps": 1000, "batch_size": 4, "lr_schedule": "constant", "ema_decay": 0.0,
                             "options": {"ngf": 16, "ndf": 16, "n_layers_d": 2}}}

    @classmethod
    def options_from_dataset(cls, dataset: Any) -> Dict[str, Any]:
        return translation_options(dataset)

    def configure(self) -> None:
        o = self.options
        self.sample_shape = tuple(o.sample_shape)
        self.pools = {"A": ImagePool(o.pool_size), "B": ImagePool(o.pool_size)}
        self._iteration: Optional[Tuple[Any, ...]] = None

    def _generator(self, c_in: int, c_out: int) -> ResNetGenerator:
        o = self.options
        return ResNetGenerator(c_in, c_out, o.ngf, o.n_blocks, o.norm, o.dropout, o.upsample)

    def _discriminator(self, channels: int) -> PatchDiscriminator:
        o = self.options
        return PatchDiscriminator(channels, o.ndf, o.n_layers_d, o.norm)

    def _fuse(self, nets: Dict[str, nn.Module]) -> Dict[str, nn.Module]:
        if self.options.fused:
            from ..nn import convert
            for net in nets.values():
                convert(net)
        return nets

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        ca, cb = o.sample_shape[0], o.target_channels
        return self._fuse({"G_AB": self._generator(ca, cb), "G_BA": self._generator(cb, ca),
                           "D_A": self._discriminator(ca), "D_B": self._discriminator(cb)})

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(("G_AB", "G_BA"), o.lr, betas=betas),
                "D": OptimizerSpec(("D_A", "D_B"), o.lr, betas=betas)}

    def phases(self) -> List[Phase]:
        # the released optimize_parameters: forward, update both Gs, then both Ds on the same batch's fakes
        return [Phase("G", "G", self.g_loss), Phase("D", "D", self.d_loss, batch="same")]

    def schedules(self) -> Dict[str, Any]:
        return decay_schedules(self.options.decay_fraction)

    def ema_networks(self) -> Dict[str, Any]:
        return {}  # the released code keeps no moving average

    # -- one iteration ----------------------------------------------------------------------------------------

    def domains(self, batch: Batch) -> Tuple[Tensor, Tensor]:
        """``(A, B)`` of a batch, each jittered independently when ``jitter`` is on (Raises: ValueError for a
        missing field)."""
        batch.require(self.requires, f"model {self.name!r}")
        a, b = batch.image, batch.target
        if self.options.jitter:
            a, b = jitter_images(a), jitter_images(b)
        return a, b

    def _adv(self, logits: Tensor, real: bool) -> Tensor:
        return gan_loss(logits, real, self.options.gan_mode)

    def _d_pair(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The released ``backward_D_basic``: ``(loss(D(real), 1) + loss(D(fake), 0)) / 2`` and both logits."""
        d_real, d_fake = D(real), D(fake)
        return (self._adv(d_real, True) + self._adv(d_fake, False)) * 0.5, d_real, d_fake

    def g_loss(self, batch: Batch, ctx: StepContext):
        o = self.options
        a, b = self.domains(batch)
        fake_b = self.G_AB(a)
        fake_a = self.G_BA(b)
        rec_a, rec_b = self.G_BA(fake_b), self.G_AB(fake_a)
        gan_ab, gan_ba = self._adv(self.D_B(fake_b), True), self._adv(self.D_A(fake_a), True)
        cycle_a = (rec_a - a).abs().mean() * o.lambda_a
        cycle_b = (rec_b - b).abs().mean() * o.lambda_b
        loss = gan_ab + gan_ba + cycle_a + cycle_b
        logs = {"g_gan_ab": gan_ab.detach(), "g_gan_ba": gan_ba.detach(), "cycle_a": cycle_a.detach(),
                "cycle_b": cycle_b.detach()}
        if o.lambda_identity > 0:
            idt_b = (self.G_AB(b) - b).abs().mean() * (o.lambda_b * o.lambda_identity)
            idt_a = (self.G_BA(a) - a).abs().mean() * (o.lambda_a * o.lambda_identity)
            loss = loss + idt_a + idt_b
            logs.update(idt_a=idt_a.detach(), idt_b=idt_b.detach())
        logs["g_loss"] = loss.detach()
        self._iteration = (batch, a, b, fake_a.detach(), fake_b.detach())
        return loss, logs

    def _fakes(self, batch: Batch) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(A, B, fake_A, fake_B)`` of the G phase on this batch, or computed here (no G phase ran on it)."""
        cached, self._iteration = self._iteration, None
        if cached is not None and cached[0] is batch:
            return cached[1], cached[2], cached[3], cached[4]
        a, b = self.domains(batch)
        with torch.no_grad():
            return a, b, self.G_BA(b), self.G_AB(a)

    def d_loss(self, batch: Batch, ctx: StepContext):
        a, b, fake_a, fake_b = self._fakes(batch)
        loss_b, real_b, fb = self._d_pair(self.D_B, b, self.pools["B"].query(fake_b))
        loss_a, real_a, fa = self._d_pair(self.D_A, a, self.pools["A"].query(fake_a))
        loss = loss_a + loss_b
        return loss, {"d_loss": loss.detach(), "d_a": loss_a.detach(), "d_b": loss_b.detach(),
                      "d_real": (real_a.detach().mean() + real_b.detach().mean()) / 2,
                      "d_fake": (fa.detach().mean() + fb.detach().mean()) / 2}

    def extra_state_dict(self) -> Dict[str, Any]:
        """The two image pools (their images and fill counts)."""
        return {"image_pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_extra_state_dict(self, state: Dict[str, Any]) -> None:
        if "image_pools" in state:
            for k, p in self.pools.items():
                p.load_state_dict(state["image_pools"][k])

    # -- translation and sampling -----------------------------------------------------------------------------

    def input_shape(self, direction: str = "AtoB") -> Tuple[int, ...]:
        """``(C, R, R)`` of the images :meth:`translate` takes in ``direction`` (A's for AtoB, B's for BtoA).

        Raises:
            ValueError: an unknown ``direction``.
        """
        shapes = {"AtoB": tuple(self.sample_shape),
                  "BtoA": (int(self.options.target_channels),) + tuple(self.sample_shape[1:])}
        if direction not in shapes:
            raise ValueError(f"direction must be 'AtoB' or 'BtoA'; got {direction!r}")
        return shapes[direction]

    def translate(self, x: Tensor, *, networks: Optional[Mapping[str, nn.Module]] = None,
                  direction: str = "AtoB", **kw: Any) -> Tensor:
        """``G_AB(x)`` (``direction="AtoB"``) or ``G_BA(x)`` (``"BtoA"``), images in [-1, 1] -> (-1, 1).

        Shapes: AtoB ``(N,) + sample_shape`` -> ``(N, target_channels, R, R)``; BtoA the reverse.

        Raises:
            ValueError: an unknown ``direction`` or keyword; ``x`` not of the direction's input shape.
        """
        if kw:
            raise ValueError(f"{self.name}.translate takes networks and direction; got {sorted(kw)}")
        want = self.input_shape(direction)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != tuple(want):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self.name} translates {direction} (N, {', '.join(map(str, want))}) images; got {got}")
        G = self.net("G_AB" if direction == "AtoB" else "G_BA", networks)
        param = next(G.parameters())
        return G(x.to(device=param.device, dtype=param.dtype))

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None,
               condition: Optional[Tensor] = None, direction: str = "AtoB") -> Tensor:
        """The translations of ``condition`` (:meth:`translate`; ``generator`` is unused: CycleGAN has no latent).

        Raises:
            ValueError: no ``condition``; ``n`` not ``len(condition)``; a badly shaped ``condition``.
        """
        if condition is None:
            raise ValueError(f"{self.name} samples are translations: pass condition=<(n, C, R, R) input images>")
        if n is not None and n != len(condition):
            raise ValueError(f"n ({n}) must equal the number of condition images ({len(condition)})")
        out = self.translate(condition, networks=networks, direction=direction)
        return out.to(device) if device is not None else out

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        """``{"condition": batch.image[:n]}``: the first n A images of a real batch (never jittered).

        Raises:
            ValueError: no batch, or one without ``image``.
        """
        if batch is None or getattr(batch, "image", None) is None:
            raise ValueError(f"{self.name}'s samples translate real inputs: sample_inputs needs a batch with 'image'")
        return {"condition": batch.image[:n]}

    def grid_size(self) -> int:
        """8 rows in the trainer's grids."""
        return 8

    @torch.no_grad()
    def grid_images(self, samples: Tensor, inputs: Mapping[str, Any], batch: Optional[Batch] = None
                    ) -> Tuple[Tensor, Optional[int]]:
        """``(images, nrow)``: per row A | G_AB(A) | G_BA(G_AB(A)), then, with a batch holding B images,
        B | G_BA(B) | G_AB(G_BA(B)) (the released visuals real_A, fake_B, rec_A, real_B, fake_A, rec_B).

        Images with another channel count than ``samples`` are repeated (1 channel) or cut
        (:func:`~ganfast.models.pix2pix.match_channels`).
        """
        a = inputs["condition"][:len(samples)]
        n, c = samples.shape[:2]

        def run(direction: str, x: Tensor) -> Tensor:
            return self.translate(x, direction=direction).to(samples)

        cols = [a, samples, run("BtoA", samples)]
        target = getattr(batch, "target", None) if batch is not None else None
        if target is not None:
            b = target[:n]
            fake_a = run("BtoA", b)
            cols += [b, fake_a, run("AtoB", fake_a)]
        cols = [match_channels(x.to(samples), c) for x in cols]
        return torch.stack(cols, 1).flatten(0, 1), len(cols)
