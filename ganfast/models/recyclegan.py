"""Recycle-GAN (Bansal, Ma, Ramanan & Sheikh 2018, Recycle-GAN: Unsupervised Video Retargeting, ECCV).

CycleGAN (:mod:`.cyclegan`) with time: two temporal predictors ``P_A`` and
``P_B`` (U-Nets, :class:`~ganfast.models.nets.UNetGenerator`, reading two
consecutive frames concatenated along channels and predicting the next), and
a cycle through time, the *recycle* loss, instead of CycleGAN's spatial cycle.
Training as aayushbansal/Recycle-GAN ``models/recycle_gan_model.py`` does it
(``backward_G`` / ``backward_D_A``; written here, not copied), on runs of three
frames ``a0, a1, a2`` of domain A (``batch.frames``) and ``b0, b1, b2`` of
domain B (``batch.target_frames``)::

    fake_b_t = G_AB(a_t) (t = 0, 1),  fake_b2 = P_B(fake_b0, fake_b1)       (and fake_a_t from b_t alike)
    G:  L_G = sum_{t=0,1,2} GAN(D_B(fake_b_t), 1) + GAN(D_A(fake_a_t), 1)     (eq. 1: adversarial, per frame)
            + lambda_A |P_A(a0, a1) - a2|_1 + lambda_B |P_B(b0, b1) - b2|_1      (eq. 4: recurrent, lambda = 10)
            + lambda_A |G_BA(fake_b2) - a2|_1 + lambda_B |G_AB(fake_a2) - b2|_1  (eq. 3: recycle, lambda = 10)
            [+ GAN(D_A(P_A(a0, a1)), 1) + GAN(D_B(P_B(b0, b1)), 1)]            (released --adversarial_loss_p)
            [+ CycleGAN's identity terms on frame 0 when lambda_identity > 0]
    D:  L_D = sum over (real, fake) in (b0, fake_b0), (b1, fake_b1), (b2, fake_b2), (b2, P_B(b0, b1)) of
              ( GAN(D_B(real), 1) + GAN(D_B(pool_B(fake)), 0) ) / 2,  plus the same for D_A and domain A

One optimiser (Adam 2e-4, (0.5, 0.999)) trains G_AB, G_BA, P_A and P_B
together; one both discriminators (the released code's two D optimisers are
the same updates: Adam is per parameter).  The paper's losses are squared
errors; the released code, followed here, uses L1 for the recurrent and
recycle terms and LSGAN for the adversarial ones.  Defaults as the released
``scripts/run_Recycle_gan.sh``: ``resnet_6blocks`` generators, ``unet_256``
predictors (here a U-Net of ``log2(R)`` levels, down to 1x1), no dropout,
``--identity 0``, ``--pool_size 0``.

A sample of ``T > 3`` frames is used as its ``T - 2`` overlapping runs of
three.  Jitter crops and flips every frame of a run alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from ..data.batch import Batch
from .cyclegan import CycleGAN, CycleGANOptions, jitter_images
from .method import OptimizerSpec
from .nets.pix2pix import UNetGenerator
from .options import option
from .phases import StepContext
from .pix2pix import match_channels
from .registry import register

__all__ = ["RecycleGAN", "RecycleGANOptions", "frame_triplets"]

_CODE = "aayushbansal/Recycle-GAN"


def frame_triplets(frames: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """``(x0, x1, x2)``, each ``(N * (T - 2), C, H, W)``: every run of three consecutive frames of
    ``frames`` ``(N, T, C, H, W)``, T >= 3.  Raises: ValueError for another shape or T < 3."""
    if not isinstance(frames, Tensor) or frames.dim() != 5 or frames.shape[1] < 3:
        got = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"recyclegan trains on runs of frames (N, T, C, H, W) with T >= 3 (frames_per_sample=3); "
                         f"got {got}")
    runs = frames.unfold(1, 3, 1)  # (N, T - 2, C, H, W, 3)
    runs = runs.permute(0, 1, 5, 2, 3, 4).flatten(0, 1)  # (N * (T - 2), 3, C, H, W)
    return runs[:, 0], runs[:, 1], runs[:, 2]


@dataclass
class RecycleGANOptions(CycleGANOptions):
    lambda_a: float = option(10.0, "Bansal et al. 2018, sec. 4 / released --lambda_A 10", help="weight of the "
                                   "recycle and recurrent losses of domain A", min=0)
    lambda_b: float = option(10.0, "Bansal et al. 2018, sec. 4 / released --lambda_B 10", help="weight of the "
                                   "recycle and recurrent losses of domain B", min=0)
    lambda_identity: float = option(0.0, f"{_CODE}, scripts/run_Recycle_gan.sh: --identity 0",
                                    help="identity loss weight on frame 0, relative to lambda_a / lambda_b", min=0)
    pool_size: int = option(0, f"{_CODE}, scripts/run_Recycle_gan.sh: --pool_size 0", min=0)
    npf: Optional[int] = option(None, f"{_CODE}: the predictors are built with --ngf (64)",
                                help="channels of the predictors' outermost U-Net level (None: ngf)", min=1)
    adversarial_on_predicted: bool = option(True, f"{_CODE}, recycle_gan_model.py: --adversarial_loss_p",
                                            help="add the adversarial loss of the predictors' own predictions "
                                                 "P(x0, x1) to the generators' loss")


@register
class RecycleGAN(CycleGAN):
    name = "recyclegan"
    paper = "Bansal, Ma, Ramanan & Sheikh 2018, Recycle-GAN: Unsupervised Video Retargeting, ECCV (arXiv:1808.05174)"
    summary = ("unpaired video translation: CycleGAN's Gs and Ds plus temporal predictors, recurrent and recycle "
               "losses (10 each) on runs of 3 frames")
    Options = RecycleGANOptions
    requires = ("frames", "target_frames")
    layout = "frames"
    sample_field = "target_frames"

    # `ganfast train --model recyclegan` on 32x32 clips on a CPU: the CycleGAN reduction (ngf = ndf = 16, 6
    # blocks, n_layers_d = 2) with 16-wide predictors, batch 2 (each step runs 6 generator and 4 predictor
    # passes).  Measured 2026-12-02 on the 2-core CPU with one thread, the other core busy: 0.47 s per step,
    # so the 600 steps take about 4.7 minutes.
    recommended = {"image": {"steps": 600, "batch_size": 2, "lr_schedule": "constant", "ema_decay": 0.0,
                             "options": {"ngf": 16, "ndf": 16, "n_layers_d": 2}}}

    @classmethod
    def options_from_dataset(cls, dataset: Any) -> Dict[str, Any]:
        """``sample_shape`` ``(C, H, W)`` of one frame of A and ``target_channels`` of B's frames."""
        shape = tuple(dataset.sample_shape)
        out: Dict[str, Any] = {"sample_shape": shape[-3:]}
        target_shape = getattr(dataset, "target_shape", None)
        if target_shape is not None:
            out["target_channels"] = int(tuple(target_shape)[-3])
        return out

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        nets = super().build_networks()
        ca, cb = o.sample_shape[0], o.target_channels
        downs = int(math.log2(o.sample_shape[1]))
        npf = o.npf or o.ngf
        nets["P_A"] = UNetGenerator(2 * ca, ca, downs, npf, o.norm, dropout=0.0)
        nets["P_B"] = UNetGenerator(2 * cb, cb, downs, npf, o.norm, dropout=0.0)
        return self._fuse(nets)

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(("G_AB", "G_BA", "P_A", "P_B"), o.lr, betas=betas),
                "D": OptimizerSpec(("D_A", "D_B"), o.lr, betas=betas)}

    # -- one iteration ----------------------------------------------------------------------------------------

    def runs(self, batch: Batch) -> Tuple[Tuple[Tensor, Tensor, Tensor], Tuple[Tensor, Tensor, Tensor]]:
        """The triplets ``(a0, a1, a2), (b0, b1, b2)`` of a batch (:func:`frame_triplets`), jittered per run.

        Raises:
            ValueError: a missing field or frames of another shape.
        """
        batch.require(self.requires, f"model {self.name!r}")
        out = []
        for frames in (batch.frames, batch.target_frames):
            x = torch.stack(frame_triplets(frames), 1)  # (M, 3, C, H, W)
            if self.options.jitter:
                m, t, c, h, w = x.shape
                x = jitter_images(x.reshape(m, t * c, h, w)).reshape(m, t, c, h, w)  # one window per run
            out.append((x[:, 0], x[:, 1], x[:, 2]))
        return out[0], out[1]

    @staticmethod
    def _predict(P: nn.Module, x0: Tensor, x1: Tensor) -> Tensor:
        return P(torch.cat([x0, x1], 1))

    def g_loss(self, batch: Batch, ctx: StepContext):
        o = self.options
        (a0, a1, a2), (b0, b1, b2) = self.runs(batch)
        fake_b0, fake_b1 = self.G_AB(a0), self.G_AB(a1)
        fake_a0, fake_a1 = self.G_BA(b0), self.G_BA(b1)
        fake_b2 = self._predict(self.P_B, fake_b0, fake_b1)
        fake_a2 = self._predict(self.P_A, fake_a0, fake_a1)
        gan_ab = sum(self._adv(self.D_B(f), True) for f in (fake_b0, fake_b1, fake_b2))
        gan_ba = sum(self._adv(self.D_A(f), True) for f in (fake_a0, fake_a1, fake_a2))
        pred_a2, pred_b2 = self._predict(self.P_A, a0, a1), self._predict(self.P_B, b0, b1)
        recurrent_a = (pred_a2 - a2).abs().mean() * o.lambda_a
        recurrent_b = (pred_b2 - b2).abs().mean() * o.lambda_b
        recycle_a = (self.G_BA(fake_b2) - a2).abs().mean() * o.lambda_a
        recycle_b = (self.G_AB(fake_a2) - b2).abs().mean() * o.lambda_b
        loss = gan_ab + gan_ba + recurrent_a + recurrent_b + recycle_a + recycle_b
        logs = {"g_gan_ab": gan_ab.detach(), "g_gan_ba": gan_ba.detach(), "recurrent_a": recurrent_a.detach(),
                "recurrent_b": recurrent_b.detach(), "recycle_a": recycle_a.detach(), "recycle_b": recycle_b.detach()}
        if o.adversarial_on_predicted:
            pred_gan = self._adv(self.D_A(pred_a2), True) + self._adv(self.D_B(pred_b2), True)
            loss = loss + pred_gan
            logs["g_gan_pred"] = pred_gan.detach()
        if o.lambda_identity > 0:
            idt_b = (self.G_AB(b0) - b0).abs().mean() * (o.lambda_b * o.lambda_identity)
            idt_a = (self.G_BA(a0) - a0).abs().mean() * (o.lambda_a * o.lambda_identity)
            loss = loss + idt_a + idt_b
            logs.update(idt_a=idt_a.detach(), idt_b=idt_b.detach())
        logs["g_loss"] = loss.detach()
        fakes = tuple(t.detach() for t in (fake_a0, fake_a1, fake_a2, pred_a2, fake_b0, fake_b1, fake_b2, pred_b2))
        self._iteration = (batch, (a0, a1, a2), (b0, b1, b2), fakes)
        return loss, logs

    def _recycle_fakes(self, batch: Batch):
        cached, self._iteration = self._iteration, None
        if cached is not None and cached[0] is batch:
            return cached[1], cached[2], cached[3]
        (a0, a1, a2), (b0, b1, b2) = self.runs(batch)
        with torch.no_grad():
            fa0, fa1, fb0, fb1 = self.G_BA(b0), self.G_BA(b1), self.G_AB(a0), self.G_AB(a1)
            fakes = (fa0, fa1, self._predict(self.P_A, fa0, fa1), self._predict(self.P_A, a0, a1),
                     fb0, fb1, self._predict(self.P_B, fb0, fb1), self._predict(self.P_B, b0, b1))
        return (a0, a1, a2), (b0, b1, b2), fakes

    def d_loss(self, batch: Batch, ctx: StepContext):
        (a0, a1, a2), (b0, b1, b2), fakes = self._recycle_fakes(batch)
        fa0, fa1, fa2, pa2, fb0, fb1, fb2, pb2 = fakes
        terms = {"d_a": [], "d_b": []}
        real_logits, fake_logits = [], []
        for key, D, pool, pairs in (("d_b", self.D_B, self.pools["B"], ((b0, fb0), (b1, fb1), (b2, fb2), (b2, pb2))),
                                    ("d_a", self.D_A, self.pools["A"], ((a0, fa0), (a1, fa1), (a2, fa2), (a2, pa2)))):
            for real, fake in pairs:
                loss, d_real, d_fake = self._d_pair(D, real, pool.query(fake))
                terms[key].append(loss)
                real_logits.append(d_real.detach().mean())
                fake_logits.append(d_fake.detach().mean())
        loss_a, loss_b = sum(terms["d_a"]), sum(terms["d_b"])
        loss = loss_a + loss_b
        return loss, {"d_loss": loss.detach(), "d_a": loss_a.detach(), "d_b": loss_b.detach(),
                      "d_real": torch.stack(real_logits).mean(), "d_fake": torch.stack(fake_logits).mean()}

    # -- translation and sampling -----------------------------------------------------------------------------

    def translate(self, x: Tensor, *, networks: Optional[Mapping[str, nn.Module]] = None,
                  direction: str = "AtoB", **kw: Any) -> Tensor:
        """Frame by frame: images ``(N, C, R, R)`` or clips ``(N, T, C, R, R)`` through ``G_AB`` (``"AtoB"``)
        or ``G_BA`` (``"BtoA"``), shapes as :meth:`CycleGAN.translate` with the clip's T kept.

        Raises:
            ValueError: as :meth:`CycleGAN.translate`.
        """
        if isinstance(x, Tensor) and x.dim() == 5:
            n, t = x.shape[:2]
            y = super().translate(x.flatten(0, 1), networks=networks, direction=direction, **kw)
            return y.reshape((n, t) + tuple(y.shape[1:]))
        return super().translate(x, networks=networks, direction=direction, **kw)

    def predict(self, x0: Tensor, x1: Tensor, *, domain: str = "A",
                networks: Optional[Mapping[str, nn.Module]] = None) -> Tensor:
        """The next frame ``P_A(x0, x1)`` (``domain="A"``) or ``P_B(x0, x1)``: ``(N, C, R, R)`` each.

        Raises:
            ValueError: an unknown ``domain``.
        """
        if domain not in ("A", "B"):
            raise ValueError(f"domain must be 'A' or 'B'; got {domain!r}")
        P = self.net("P_" + domain, networks)
        param = next(P.parameters())
        return self._predict(P, x0.to(param), x1.to(param))

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        """``{"condition": batch.frames[:n, 0]}``: the first frame of n real A runs (samples are single images,
        which is what the metrics compare; the grid shows the whole runs).

        Raises:
            ValueError: no batch, or one without ``frames``.
        """
        if batch is None or getattr(batch, "frames", None) is None:
            raise ValueError(f"{self.name}'s samples translate real frames: sample_inputs needs a batch with "
                             f"'frames'")
        return {"condition": batch.frames[:n, 0]}

    def grid_indices(self, n: int, length: int) -> Tensor:
        """``n`` runs spread evenly over the dataset: its first runs are the overlapping windows of one clip."""
        return torch.linspace(0, length - 1, min(n, length)).round().long().unique()

    @torch.no_grad()
    def grid_images(self, samples: Tensor, inputs: Mapping[str, Any], batch: Optional[Batch] = None
                    ) -> Tuple[Tensor, Optional[int]]:
        """``(images, 7)``: per A run x0 x1 x2 | G_AB(x0) G_AB(x1) G_AB(x2) | P_B(G_AB(x0), G_AB(x1)), then
        the same for B runs through G_BA and P_A (the released visuals' real, fake and predicted frames).
        Without a batch of frames: the samples in one row each."""
        if batch is None or getattr(batch, "frames", None) is None:
            return samples, 1
        n, c = samples.shape[:2]
        rows = []
        for field, direction, domain in (("frames", "AtoB", "B"), ("target_frames", "BtoA", "A")):
            frames = getattr(batch, field, None)
            if frames is None:
                continue
            x = frames[:n, :3]
            y = self.translate(x, direction=direction).to(samples)
            pred = self.predict(y[:, 0], y[:, 1], domain=domain).to(samples)
            row = torch.cat([x.to(samples), y, pred[:, None]], 1)  # (n, 7, C?, H, W)
            rows.append(torch.stack([match_channels(row[:, k], c) for k in range(7)], 1))
        return torch.cat(rows).flatten(0, 1), 7
