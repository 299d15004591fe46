"""Progressive growing of GANs (Karras, Aila, Laine & Lehtinen 2018, ICLR; arXiv:1710.10196).

G and D start at 4x4 and grow by a resolution at a time; each new block is
faded in while the previous output is still there (sec. 3, Figure 2).  As
the released code does (tkarras/progressive_growing_of_gans), the networks
exist whole from the start and a level of detail ``lod`` says which blocks
run and how the newest one is blended (:mod:`ganfast.models.nets.progan`).

Algorithm (``train.py``, ``loss.py``; B images per step)::

    for step s:  nimg = s * B
        lod = TrainingSchedule(nimg)       # lod_training_kimg stable, lod_transition_kimg fading, per resolution
        if floor(lod) or ceil(lod) changed: reset both Adam states   (reset_opt_for_new_lod: as a
                                                                      fade-in starts, and as it ends)
        x = blend_reals(x, lod)                       # the reals cross-faded like G's output
        L_D = E D(G(z)) - E D(x) + 10 E (||grad D(x_hat)|| - 1)^2 + 0.001 E D(x)^2
        L_G = -E D(G(z))
        G_ema = 0.999 G_ema + 0.001 G

The schedule is a pure function of the step and the number of images a
step shows (the batch times the processes), so a run resumed anywhere, in
the middle of a fade-in too, continues with the same ``lod``, and the
optimiser resets happen on the same steps.  Per-resolution batch sizes
(``-o minibatch_dict='{"4": 128, "8": 128, "16": 64}'``, the code's
``sched.minibatch_dict``; resolutions it does not name use ``--batch-size``,
the code's ``minibatch_base``) draw that many images from the trainer's
loader at each step; the images shown after s steps are then a sum over the
resolutions passed (:func:`nimg_at_step`), still a pure function of s.  As in
the code, the resolution of a step is ``2^(log2 R - floor(lod))``: a new
resolution's batch size starts with its fade-in.

Differences from the code: the schedule is evaluated every step (the code
evaluates it every ``minibatch_repeats = 4`` steps), and there are no labels
(the AC-GAN terms of ``G_wgan_acgan`` / ``D_wgangp_acgan`` are absent, as in
the paper's unconditional runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from torch import Tensor, nn

from .. import losses as L
from .._dtypes import compute_dtype
from .method import EMASpec, Method, OptimizerSpec
from .nets._common import check_stddev_batch
from .nets.progan import ProGANDiscriminator, ProGANGenerator, blend_reals, feature_maps
from .options import OptionsBase, option, square_power_of_two
from .phases import Phase, StepContext
from .registry import register

__all__ = ["ProGAN", "ProGANOptions", "lod_at", "nimg_at_step"]

_CODE = "tkarras/progressive_growing_of_gans"


def lod_at(nimg: float, resolution_log2: int, initial_resolution: int = 4, training_kimg: float = 600.0,
           transition_kimg: float = 600.0) -> float:
    """The level of detail after ``nimg`` real images (``train.py``, ``TrainingSchedule``).

    Phase i (``training_kimg + transition_kimg`` thousand images long) shows
    resolution ``initial * 2^i`` stable for ``training_kimg``, then fades in
    the next one over ``transition_kimg``: ``lod`` falls linearly by 1.  It
    starts at ``log2(R) - log2(initial)`` and stops at 0 (full resolution).
    """
    kimg = nimg / 1000.0
    phase_dur = training_kimg + transition_kimg
    phase_idx = math.floor(kimg / phase_dur) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = resolution_log2 - math.floor(math.log2(initial_resolution)) - phase_idx
    if transition_kimg > 0:
        lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    return max(float(lod), 0.0)


def _resolution_of(lod: float, resolution_log2: int) -> int:
    # train.py (TrainingSchedule): resolution = 2 ** (resolution_log2 - int(np.floor(lod)))
    return 2 ** (resolution_log2 - int(math.floor(lod)))


def nimg_at_step(step: int, images_per_step: Callable[[int], int], resolution_log2: int,
                 initial_resolution: int = 4, training_kimg: float = 600.0, transition_kimg: float = 600.0) -> int:
    """Real images shown before 0-based ``step`` when a step's batch depends on its resolution.

    A step at ``nimg`` images shows ``images_per_step(resolution)`` more,
    where ``resolution`` comes from ``lod_at(nimg)`` (the code's
    ``minibatch_dict``).  Between the schedule's breakpoints (the starts and
    ends of the fade-ins) the resolution is constant, so the steps are
    counted a stretch at a time: O(number of resolutions), not O(step).

    Raises:
        ValueError: ``step`` is negative or ``images_per_step`` returns a non-positive count.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0; got {step}")
    levels = resolution_log2 - int(math.floor(math.log2(initial_resolution)))
    phase = (training_kimg + transition_kimg) * 1000.0
    marks = sorted({x for i in range(levels + 1) for x in (i * phase, i * phase + training_kimg * 1000.0)
                    if x >= 0})

    def size_at(nimg: float) -> int:
        m = images_per_step(_resolution_of(lod_at(nimg, resolution_log2, initial_resolution, training_kimg,
                                                  transition_kimg), resolution_log2))
        if m < 1:
            raise ValueError(f"images_per_step must be positive; got {m}")
        return m

    nimg, done = 0, 0
    while True:
        m = size_at(nimg)
        following = [x for x in marks if x > nimg]
        if not following:  # full resolution for good
            return nimg + (step - done) * m
        # steps starting at nimg, nimg + m, ... strictly before the next mark all share nimg's resolution,
        # except a step starting on a mark itself, which may not: that one is taken alone
        k = 1 if nimg in marks else math.ceil((following[0] - nimg) / m)
        if step - done <= k:
            return nimg + (step - done) * m
        nimg, done = nimg + k * m, done + k


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@dataclass
class ProGANOptions(OptionsBase):
    sample_shape: List[int] = option([1, 32, 32], help="(C, R, R), R a power of two >= 4; set from the dataset")
    fmap_base: int = option(8192, f"{_CODE}, networks.py (G_paper, D_paper): fmap_base = 8192",
                            help="channels nf(stage) = min(fmap_base / 2^stage, fmap_max)", min=1)
    fmap_max: int = option(512, f"{_CODE}, networks.py: fmap_max = 512 (Karras et al. 2018, Table 2)", min=1)
    latent_dim: Optional[int] = option(None, f"{_CODE}, networks.py: latent_size None = nf(0) (512, Table 2)",
                                       help="None: nf(0) = min(fmap_base, fmap_max)", min=1)
    normalize_latents: bool = option(True, "Karras et al. 2018, Table 2 and networks.py: pixel norm on z")
    mbstd_group_size: int = option(4, f"{_CODE}, networks.py (D_paper): mbstd_group_size = 4",
                                   help="minibatch standard deviation group (0 or 1: no such layer)", min=0)
    lr: float = option(1e-3, "Karras et al. 2018, appendix A.1: Adam, learning rate 0.001",
                       min=0, min_exclusive=True)
    betas: List[float] = option([0.0, 0.99], "Karras et al. 2018, appendix A.1: beta1 = 0, beta2 = 0.99", length=2,
                                min=0, max=1)
    eps: float = option(1e-8, "Karras et al. 2018, appendix A.1: epsilon = 1e-8", min=0, min_exclusive=True)
    gradient_penalty: float = option(10.0, f"Karras et al. 2018, appendix A.1; {_CODE}, loss.py: wgan_lambda = 10",
                                     min=0)
    drift: float = option(1e-3, f"Karras et al. 2018, appendix A.1: eps_drift = 0.001 ({_CODE}, loss.py: "
                                "wgan_epsilon)", help="weight of E D(x)^2 on real images", min=0)
    lod_initial_resolution: int = option(4, f"{_CODE}, train.py (TrainingSchedule): lod_initial_resolution = 4",
                                         min=4)
    lod_training_kimg: float = option(600.0, "Karras et al. 2018, appendix A.1: 800k images per stable phase "
                                             f"(paper); {_CODE}, train.py: lod_training_kimg = 600",
                                      help="thousands of real images each resolution trains stable", min=0)
    lod_transition_kimg: float = option(600.0, f"{_CODE}, train.py: lod_transition_kimg = 600",
                                        help="thousands of real images each new resolution fades in over", min=0)
    reset_optimizers: bool = option(True, f"{_CODE}, train.py: reset_opt_for_new_lod = True",
                                    help="reset both Adam states when floor(lod) or ceil(lod) changes: as each fade-in "
                                         "starts and again as it ends")
    minibatch_dict: Dict[str, int] = option({}, f"{_CODE}, train.py: sched minibatch_dict = {{}} (empty: "
                                                "minibatch_base at every resolution); config.py, preset-v2-1gpu: "
                                                "{4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}"
                                                " with minibatch_base 4",
                                            help="per-process batch size by resolution, as JSON with string keys "
                                                 "('{\"4\": 128, \"8\": 64}'); resolutions not named use "
                                                 "--batch-size")
    checkpoint_blocks: bool = option(False, "activation checkpointing (Chen et al. 2016, arXiv:1604.06174) through "
                                            "torch.utils.checkpoint, non-reentrant: not in the released code",
                                     help="recompute each resolution block's activations in the backward instead of "
                                          "keeping them (memory for time at large resolutions; gradient penalties "
                                          "still work)")

    def resolve(self, method: Any) -> None:
        h = square_power_of_two(method, self.sample_shape, " (4 -> 8 -> ... -> R)")
        r0 = self.lod_initial_resolution
        if r0 & (r0 - 1) or r0 > h:
            raise ValueError(f"option 'lod_initial_resolution' must be a power of two between 4 and {h}; got {r0}")
        if self.latent_dim is None:
            self.latent_dim = feature_maps(0, self.fmap_base, self.fmap_max)
        if not isinstance(self.minibatch_dict, dict):
            raise ValueError(f"option 'minibatch_dict' must be a mapping resolution -> batch size, e.g. "
                             f"{{\"4\": 128, \"8\": 64}}; got {self.minibatch_dict!r}")
        checked = {}
        for key, size in self.minibatch_dict.items():
            res = int(key) if isinstance(key, int) or (isinstance(key, str) and key.isdigit()) else None
            if res is None or res < r0 or res > h or res & (res - 1):
                raise ValueError(f"option 'minibatch_dict': keys must be resolutions, powers of two from {r0} to "
                                 f"{h}; got {key!r}")
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"option 'minibatch_dict': the batch size at {res} must be a positive int; "
                                 f"got {size!r}")
            checked[str(res)] = size
        self.minibatch_dict = checked


@register
class ProGAN(Method):
    name = "progan"
    family = "architecture"
    paper = "Karras, Aila, Laine & Lehtinen 2018, Progressive Growing of GANs for Improved Quality, Stability, " \
            "and Variation, ICLR (arXiv:1710.10196)"
    summary = "grows G and D from 4x4 to full resolution, fading each block in; WGAN-GP + drift, pixel norm, " \
              "equalized lr, minibatch stddev"
    Options = ProGANOptions
    requires = ("image",)

    # `ganfast train --model progan --data digits` (16x16: 4 -> 8 -> 16) or `--data fashion-mnist`
    # (32x32: 4 -> 8 -> 16 -> 32) on a CPU within minutes. The paper's networks (fmap_base 8192, fmap_max
    # 512: 512 channels up to 64x64, latent 512, 23M parameters per network at 1024x1024) would take hours
    # here; these runs use nf = min(128 / 2^stage, 32): 32 channels up to 8x8, 16 at 16x16, 8 at 32x32,
    # latent 32. Batch 16 (the code's minibatch_base) and 8k images stable + 8k fading per resolution
    # (the paper: 800k + 800k): digits reaches 16x16 (lod 0) at step 2000 of 4000 and fashion-mnist 32x32
    # at step 3000 (measured 2026-12-01 alone on the 2-core CPU, seed 0: digits 186 s, fashion-mnist 200 s
    # wall for 4000 steps). A short EMA (0.99: the code's 0.999 averages over ~1000 steps, a quarter of this run,
    # and would mix in the lower-resolution generators). Measured: one thread, 4x4 0.015 s/step, 16x16
    # 0.05 s/step, 32x32 0.13 s/step (two threads are slower while another job shares the 2 cores).
    recommended = {"image": {"steps": 4000, "batch_size": 16, "lr_schedule": "constant", "ema_decay": 0.99,
                             "options": {"fmap_base": 128, "fmap_max": 32, "lod_training_kimg": 8.0,
                                         "lod_transition_kimg": 8.0}}}

    def configure(self) -> None:
        o = self.options
        self._loader_batch: Optional[int] = None
        self.sample_shape = tuple(o.sample_shape)
        self.resolution_log2 = int(round(math.log2(o.sample_shape[-1])))

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        return {"G": ProGANGenerator(o.latent_dim, o.sample_shape, o.fmap_base, o.fmap_max, o.normalize_latents,
                                     o.checkpoint_blocks),
                "D": ProGANDiscriminator(o.sample_shape, o.fmap_base, o.fmap_max, o.mbstd_group_size,
                                         o.checkpoint_blocks)}

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(("G",), o.lr, betas=betas, eps=o.eps),
                "D": OptimizerSpec(("D",), o.lr, betas=betas, eps=o.eps)}

    def phases(self) -> List[Phase]:
        # D_repeats = 1 (train.py); G's loss reads no real images, so it reuses the iteration's batch
        return [Phase("D", "D", self.d_main), Phase("G", "G", self.g_main, batch="same")]

    def ema_networks(self):
        # train.py: Gs = G averaged with beta 0.999 from the first step (no warm-up); the decay is the
        # trainer's --ema-decay: 0.99 by the recommendation above for short CPU runs, 0.999 as the paper
        return {"G": EMASpec(warmup=False)}

    # -- the schedule ----------------------------------------------------------------------------------

    def check_batch_sizes(self, batch_size: int, dataset_size: int) -> None:
        """Before training: every batch size the run will draw fits the data and D's minibatch-stddev groups.

        Raises:
            ValueError: naming ``--batch-size`` or the ``minibatch_dict`` entry at fault.
        """
        o = self.options
        sizes = {"--batch-size": batch_size}
        sizes.update({f"minibatch_dict[{r!r}]": b for r, b in o.minibatch_dict.items()})
        for where, b in sizes.items():
            if b > dataset_size:
                raise ValueError(f"{where} {b} is larger than the dataset ({dataset_size} samples)")
            check_stddev_batch(b, o.mbstd_group_size, where)

    def batch_size_at(self, resolution: int, base: int) -> int:
        """Per-process batch size at ``resolution``: ``minibatch_dict``'s, else ``base`` (``--batch-size``)."""
        return int(self.options.minibatch_dict.get(str(resolution), base))

    def nimg(self, step: int, images_per_step: int) -> int:
        """Real images shown before 0-based ``step``; ``images_per_step``: the loader's batch times the processes."""
        o = self.options
        if not o.minibatch_dict:
            return step * images_per_step
        world = max(1, _world_size())
        base = max(1, images_per_step // world)
        return nimg_at_step(step, lambda res: self.batch_size_at(res, base) * world, self.resolution_log2,
                            o.lod_initial_resolution, o.lod_training_kimg, o.lod_transition_kimg)

    def lod(self, step: int, images_per_step: int) -> float:
        """The level of detail of 0-based ``step``; ``images_per_step``: the loader's batch times the processes.

        Without ``minibatch_dict`` every step shows ``images_per_step`` images;
        with it, the step's resolution sets its batch (:func:`nimg_at_step`).
        """
        o = self.options
        return lod_at(self.nimg(step, images_per_step), self.resolution_log2, o.lod_initial_resolution,
                      o.lod_training_kimg, o.lod_transition_kimg)

    def _lod_of(self, batch, ctx: StepContext) -> float:
        return self.lod(ctx.step, self._base_batch(batch) * _world_size())

    def _base_batch(self, batch) -> int:
        # the loader's batch size when train_step was given the trainer's loader; else the batch's own
        return self._loader_batch if self._loader_batch is not None else len(batch)

    def train_step(self, next_batch: Callable[..., Any], optimizers: Mapping[str, torch.optim.Optimizer],
                   ctx: Optional[StepContext] = None) -> Dict[str, Tensor]:
        """One iteration; with ``minibatch_dict`` the batch is drawn at the size of the step's resolution.

        Raises:
            ValueError: ``minibatch_dict`` is set but ``next_batch`` cannot
                draw a batch of a given size (it is not the trainer's loader).
        """
        ctx = StepContext() if ctx is None else ctx
        base = getattr(next_batch, "batch_size", None)
        self._loader_batch = base if isinstance(base, int) else None
        draw = next_batch
        if self.options.minibatch_dict:
            if self._loader_batch is None:
                raise ValueError("option 'minibatch_dict' needs the trainer's loader (a next_batch that takes a "
                                 "batch size and has a batch_size attribute); got "
                                 f"{type(next_batch).__name__}")
            lod = self.lod(ctx.step, self._loader_batch * _world_size())
            size = self.batch_size_at(_resolution_of(lod, self.resolution_log2), self._loader_batch)

            def draw():
                return next_batch(size)
        try:
            return super().train_step(draw, optimizers, ctx)
        finally:
            self._loader_batch = None

    def enter_step(self, lod: float, previous: Optional[float],
                   optimizers: Mapping[str, torch.optim.Optimizer]) -> bool:
        """Set the networks' ``lod``; reset both optimisers when a new level starts; True when they were."""
        for net in (self.G, self.D):
            net.lod.fill_(lod)
        if previous is None or not self.options.reset_optimizers:
            return False
        if math.floor(lod) != math.floor(previous) or math.ceil(lod) != math.ceil(previous):
            for name in ("G", "D"):
                if name in optimizers:
                    optimizers[name].state.clear()  # Adam's moments and step count start again
            return True
        return False

    # -- the phases ------------------------------------------------------------------------------------

    def d_main(self, batch, ctx: StepContext):
        lod = self._lod_of(batch, ctx)
        previous = self.lod(ctx.step - 1, len(batch) * _world_size()) if ctx.step > 0 else None
        self.enter_step(lod, previous, ctx.optimizers)  # before either optimiser steps this iteration
        real = blend_reals(batch.image, lod)
        z = torch.randn(len(batch), self.options.latent_dim, device=real.device, dtype=real.dtype)
        with torch.no_grad():
            fake = self.G(z, lod)
        real_out, fake_out = self.D(real, lod), self.D(fake, lod)
        wasserstein = L.discriminator_loss("wasserstein", real_out, fake_out)
        gp = L.gradient_penalty(lambda x: self.D(x, lod), real, fake, scaler=ctx.scaler("D"))
        drift = real_out.to(compute_dtype(real_out.dtype)).square().mean()
        loss = wasserstein + self.options.gradient_penalty * gp + self.options.drift * drift
        return loss, {"d_loss": loss.detach(), "w_distance": -wasserstein.detach(), "gp": gp.detach(),
                      "drift": drift.detach(), "lod": torch.tensor(lod, device=real.device)}

    def g_main(self, batch, ctx: StepContext):
        lod = self._lod_of(batch, ctx)
        z = torch.randn(len(batch), self.options.latent_dim, device=batch.image.device, dtype=batch.image.dtype)
        loss = L.generator_loss("wasserstein", self.D(self.G(z, lod), lod))
        return loss, {"g_loss": loss.detach()}

    # -- sampling --------------------------------------------------------------------------------------

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None,
               latent: Optional[Tensor] = None) -> Tensor:
        """``(n, C, R, R)`` images at G's current level of detail (lower levels upscaled, as the code)."""
        G = self.net("G", networks)
        param = next(G.parameters())
        if latent is None:
            if n is None:
                raise ValueError("sample needs n or latent")
            latent = torch.randn(n, self.options.latent_dim, generator=generator)
        return G(latent.to(device=device or param.device, dtype=param.dtype))

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None, batch=None) -> Dict[str, Any]:
        return {"latent": torch.randn(n, self.options.latent_dim, generator=generator)}
