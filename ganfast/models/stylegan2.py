"""StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila 2020, CVPR; arXiv:1912.04958).

Networks: :mod:`ganfast.models.nets.stylegan2` (mapping network, skip
generator of modulated convolutions with noise, residual discriminator).
Training as NVlabs/stylegan2-ada-pytorch ``training/loss.py`` and
``training_loop.py`` do it (without ADA), one iteration of batch B::

    Gmain:  ws = mapping(z), with probability 0.9 mixed at a random cutoff with mapping(z2)  (style mixing)
            L_G = E softplus(-D(G(ws)))                                           (non-saturating logistic)
    Greg:   every pl_interval = 4 steps, on B / pl_batch_shrink samples (lazy regularisation, sec. 3.1)
            y ~ N(0, I) / sqrt(H W);  J^T y = d <G(ws), y> / d ws;  a = mean_layers ||J^T y||^2 ... sqrt
            pl_mean <- pl_mean + 0.01 (mean(a) - pl_mean)
            L_pl = pl_weight * E (a - pl_mean)^2 * pl_interval                       (sec. 3.2, eq. 4)
    Dmain:  L_D = E softplus(D(G(z))) + E softplus(-D(x))          (w_avg updated from these ws, decay 0.995)
    Dreg:   every r1_interval = 16 steps: L_R1 = gamma / 2 E ||grad_x D(x)||^2 * r1_interval      (Mescheder 2018)
    Adam lr, betas (0, 0.99), eps 1e-8; for the lazily regularised optimisers lr * c and betas ** c with
    c = k / (k + 1) (appendix B); G_ema with --ema-decay (the code: a half-life of 10k images), its
    half-life ramped up over the first 5% of the steps (ema_rampup).

Sampling: ``truncation_psi`` and ``truncation_cutoff`` (the truncation trick
in w, sec. 4 of StyleGAN), ``noise_mode`` random / const / none, and
:meth:`StyleGAN2.style_mix` for mixing grids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses as L
from .._dtypes import compute_dtype
from .method import EMASpec, Method, OptimizerSpec
from .nets._common import check_stddev_batch
from .nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .options import OptionsBase, option, square_power_of_two
from .phases import Phase, StepContext
from .registry import register

__all__ = ["StyleGAN2", "StyleGAN2Options"]

_CODE = "NVlabs/stylegan2-ada-pytorch"


@dataclass
class StyleGAN2Options(OptionsBase):
    sample_shape: List[int] = option([3, 32, 32], help="(C, R, R), R a power of two >= 4; set from the dataset")
    z_dim: int = option(512, "Karras et al. 2020, appendix B: 512-d z and w", min=1)
    w_dim: int = option(512, "Karras et al. 2020, appendix B", min=1)
    mapping_layers: int = option(8, "Karras et al. 2019 (StyleGAN), sec. 2: an 8-layer MLP", min=1)
    mapping_lr: float = option(0.01, f"{_CODE}, networks.py: MappingNetwork lr_multiplier = 0.01",
                               help="learning-rate multiplier of the mapping network", min=0, min_exclusive=True)
    w_avg_beta: float = option(0.995, f"{_CODE}, networks.py: w_avg_beta = 0.995", min=0, max=1)
    channel_base: int = option(32768, f"{_CODE}, train.py: cbase = 32768 (config F: 16384 * 2)",
                               help="channels at resolution r: min(channel_base / r, channel_max)", min=1)
    channel_max: int = option(512, "Karras et al. 2020, config F: 512", min=1)
    mbstd_group_size: int = option(4, f"{_CODE}, networks.py: mbstd_group_size = 4",
                                   help="minibatch standard deviation group (0 or 1: no such layer)", min=0)
    lr: Optional[float] = option(None, f"{_CODE}, train.py: lrate 0.002 (paper256/512/1024, config F), 0.0025 "
                                       "(cifar); None: 0.0025 up to 32x32, else 0.002", min=0, min_exclusive=True)
    betas: List[float] = option([0.0, 0.99], "Karras et al. 2020, appendix B: beta1 = 0, beta2 = 0.99", length=2,
                                min=0, max=1)
    eps: float = option(1e-8, "Karras et al. 2020, appendix B: epsilon = 1e-8", min=0, min_exclusive=True)
    r1_gamma: Optional[float] = option(None, f"{_CODE}, train.py cfg_specs: gamma 0.01 (cifar, 32x32), 1 "
                                             "(paper256), 10 (config F); None: 0.01 up to 32x32, 1 up to 256, "
                                             "else 10", min=0)
    r1_interval: int = option(16, "Karras et al. 2020, appendix B: R1 every 16 minibatches", min=1)
    pl_weight: float = option(2.0, f"Karras et al. 2020, sec. 3.2 and appendix B; {_CODE}, loss.py: pl_weight = 2",
                              min=0)
    pl_interval: int = option(4, "Karras et al. 2020, appendix B: path length every 4 minibatches", min=1)
    pl_decay: float = option(0.01, f"{_CODE}, loss.py: pl_decay = 0.01", min=0, max=1)
    pl_batch_shrink: int = option(2, f"{_CODE}, loss.py: pl_batch_shrink = 2", min=1)
    style_mixing: float = option(0.9, "Karras et al. 2019 (StyleGAN), sec. 3.1: mixing regularisation, 90% of "
                                      "images", min=0, max=1)
    ema_rampup: Optional[float] = option(0.05, f"{_CODE}, train.py: ema_rampup = 0.05",
                                         help="the EMA half-life is at most this fraction of the images shown "
                                              "(None: no ramp-up)", min=0, min_exclusive=True)

    def resolve(self, method: Any) -> None:
        h = square_power_of_two(method, self.sample_shape, "")
        if self.lr is None:
            self.lr = 0.0025 if h <= 32 else 0.002
        if self.r1_gamma is None:
            self.r1_gamma = 0.01 if h <= 32 else (1.0 if h <= 256 else 10.0)


@register
class StyleGAN2(Method):
    name = "stylegan2"
    family = "architecture"
    paper = "Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN, CVPR (arXiv:1912.04958)"
    summary = "mapping network, modulated convs with noise, skip G / residual D, style mixing, lazy R1 + path length"
    Options = StyleGAN2Options
    requires = ("image",)

    # `ganfast train --model stylegan2 --data fashion-mnist` on a CPU (32x32): the paper's networks (config F:
    # 512 channels up to 64x64, 30M parameters per network) would take days there.  Reduced: z and w 64-d, a
    # 2-layer mapping network, channels min(1024 / r, 32) (32 at 4..32), batch 16.  Everything else is the
    # paper's (style mixing, lazy R1 with gamma 0.01 at 32x32, path length, EMA with ramp-up).  Measured
    # 2026-12-01 alone on the 2-core CPU, seed 0: fashion-mnist 3000 steps in 8 min 48 s wall (0.175 s/step).
    recommended = {"image": {"steps": 3000, "batch_size": 16, "lr_schedule": "constant", "ema_decay": 0.999,
                             "options": {"z_dim": 64, "w_dim": 64, "mapping_layers": 2, "channel_base": 1024,
                                         "channel_max": 32}}}

    def configure(self) -> None:
        o = self.options
        self.sample_shape = tuple(o.sample_shape)
        self.register_buffer("pl_mean", torch.zeros([]))

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        c, r, _ = o.sample_shape
        return {"G": StyleGAN2Generator(o.z_dim, o.w_dim, r, c, o.channel_base, o.channel_max, o.mapping_layers,
                                        o.mapping_lr, o.w_avg_beta),
                "D": StyleGAN2Discriminator(r, c, o.channel_base, o.channel_max, o.mbstd_group_size)}

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        betas = (o.betas[0], o.betas[1])
        return {"G": OptimizerSpec(("G",), o.lr, betas=betas, eps=o.eps),
                "D": OptimizerSpec(("D",), o.lr, betas=betas, eps=o.eps)}

    def phases(self) -> List[Phase]:
        o = self.options
        out = [Phase("Gmain", "G", self.g_main)]
        if o.pl_weight > 0:
            out.append(Phase("Greg", "G", self.g_reg, interval=o.pl_interval, lazy=o.pl_interval > 1, batch="same"))
        out.append(Phase("Dmain", "D", self.d_main))
        if o.r1_gamma > 0:
            out.append(Phase("Dreg", "D", self.d_reg, interval=o.r1_interval, lazy=o.r1_interval > 1, batch="same"))
        return out

    def ema_networks(self):
        # decay: the trainer's --ema-decay (recommended 0.999 for the CPU runs); ramp-up as the code's
        return {"G": EMASpec(warmup=False, rampup=self.options.ema_rampup)}

    def check_batch_sizes(self, batch_size: int, dataset_size: int) -> None:
        """Before training: D's minibatch-stddev groups divide the batch (Raises: ValueError naming --batch-size)."""
        check_stddev_batch(batch_size, self.options.mbstd_group_size, "--batch-size")

    # -- generation --------------------------------------------------------------------------------------------

    def _ws(self, n: int, device, dtype, update_w_avg: bool = False) -> Tensor:
        """ws for n samples, style-mixed with probability ``style_mixing`` (loss.py: ``style_mixing_prob``)."""
        G = self.G
        z = torch.randn(n, G.z_dim, device=device, dtype=dtype)
        ws = G.mapping(z, update_w_avg=update_w_avg)
        if self.options.style_mixing > 0 and G.num_ws > 1:
            cutoff = int(torch.randint(1, G.num_ws, ()).item())
            if float(torch.rand(())) < self.options.style_mixing:
                mixed = G.mapping(torch.randn_like(z))
                ws = torch.cat([ws[:, :cutoff], mixed[:, cutoff:]], dim=1)
        return ws

    # -- the phases -------------------------------------------------------------------------------------------

    def g_main(self, batch, ctx: StepContext):
        x = batch.image
        fake = self.G.synthesis(self._ws(len(x), x.device, x.dtype))
        loss = F.softplus(-self.D(fake)).mean()  # non-saturating logistic
        return loss, {"g_loss": loss.detach()}

    def g_reg(self, batch, ctx: StepContext):
        """Path-length regularisation (sec. 3.2): E (||J_w^T y|| - a)^2 with a the running mean of the lengths."""
        o = self.options
        x = batch.image
        n = max(1, len(x) // o.pl_batch_shrink)
        ws = self._ws(n, x.device, x.dtype)
        img = self.G.synthesis(ws)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.to(compute_dtype(grad.dtype)).square().sum(dim=2).mean(dim=1).sqrt()
        with torch.no_grad():
            self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().to(self.pl_mean.dtype), o.pl_decay))
        penalty = (lengths - self.pl_mean.to(lengths.dtype)).square().mean()
        loss = penalty * o.pl_weight
        return loss, {"pl_penalty": penalty.detach(), "pl_mean": self.pl_mean.detach().clone()}

    def d_main(self, batch, ctx: StepContext):
        x = batch.image
        with torch.no_grad():
            fake = self.G.synthesis(self._ws(len(x), x.device, x.dtype, update_w_avg=True))
        d_real, d_fake = self.D(x), self.D(fake)
        loss = L.discriminator_loss("non-saturating", d_real, d_fake)
        return loss, {"d_loss": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def d_reg(self, batch, ctx: StepContext):
        r1 = L.r1_penalty(self.D, batch.image, scaler=ctx.scaler("D"))
        loss = r1 * (self.options.r1_gamma / 2)
        return loss, {"r1": r1.detach()}

    # -- sampling ----------------------------------------------------------------------------------------------

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None, latent: Optional[Tensor] = None,
               truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
               noise_mode: str = "const") -> Tensor:
        """``(n, C, R, R)`` images; truncation in w toward ``w_avg`` on the first ``truncation_cutoff`` layers.

        ``latent``: (n, z_dim) z's to map (then ``n`` may be omitted); else
        ``n`` fresh N(0, I) z's from ``generator``.

        Raises:
            ValueError: neither ``n`` nor ``latent``; ``n`` not a positive
                int, or not ``len(latent)``; ``latent`` not (n, z_dim);
                ``truncation_cutoff`` not in [1, num_ws]; ``noise_mode`` not
                random, const or none.
        """
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none'; got {noise_mode!r}")
        G = self.net("G", networks)
        param = next(G.parameters())
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"n must be a positive int; got {n!r}")
        if latent is None:
            if n is None:
                raise ValueError("sample needs n or latent")
            latent = torch.randn(n, G.z_dim, generator=generator)
        _check_latent(latent, "latent", G.z_dim)
        if n is not None and n != len(latent):
            raise ValueError(f"n ({n}) must equal the number of latents ({len(latent)}) when both are given")
        z = latent.to(device=device or param.device, dtype=param.dtype)
        return G(z, truncation_psi, truncation_cutoff, noise_mode)

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None, batch=None) -> Dict[str, Any]:
        return {"latent": torch.randn(n, self.options.z_dim, generator=generator)}

    def style_mix(self, rows: Tensor, cols: Tensor, cutoff: int, *, networks: Optional[Mapping[str, nn.Module]] = None,
                  truncation_psi: float = 1.0) -> Tensor:
        """The style-mixing grid (StyleGAN, Figure 3): image (i, j) takes layers ``< cutoff`` from ``rows[i]``
        and the rest from ``cols[j]``.

        Args:
            rows, cols: latents (R, z_dim) and (K, z_dim).
            cutoff: an int in [1, num_ws - 1]: the first w layer taken from ``cols``.
            truncation_psi: truncation of every w toward ``w_avg`` (1: none).

        Returns:
            ``(R * K, C, res, res)``, row-major, with constant noise.

        Raises:
            ValueError: a latent not (., z_dim); ``cutoff`` out of range or not an int.
        """
        G = self.net("G", networks)
        param = next(G.parameters())
        _check_latent(rows, "rows", G.z_dim)
        _check_latent(cols, "cols", G.z_dim)
        if isinstance(cutoff, bool) or not isinstance(cutoff, int) or not 1 <= cutoff < G.num_ws:
            raise ValueError(f"cutoff must be an int in [1, {G.num_ws - 1}] (the model has {G.num_ws} w layers); "
                             f"got {cutoff!r}")
        wr = G.mapping(rows.to(param), truncation_psi)
        wc = G.mapping(cols.to(param), truncation_psi)
        ws = torch.cat([wr[:, None, :cutoff].expand(-1, len(cols), -1, -1),
                        wc[None, :, cutoff:].expand(len(rows), -1, -1, -1)], dim=2)
        return G.synthesis(ws.reshape(len(rows) * len(cols), G.num_ws, G.w_dim), noise_mode="const")

    def interpolate(self, start: Tensor, end: Tensor, steps: int, *,
                    networks: Optional[Mapping[str, nn.Module]] = None, truncation_psi: float = 1.0) -> Tensor:
        """Images along the straight line in w from ``start`` to ``end`` (latents (P, z_dim) each).

        Returns ``(P * steps, C, R, R)``, row p the ``steps`` images from
        mapping(start[p]) to mapping(end[p]) inclusive (w is where StyleGAN's
        paths are perceptually smooth: Karras et al. 2019, sec. 4.1), with
        constant noise.

        Raises:
            ValueError: ``steps`` < 2, ``start`` or ``end`` not (P, z_dim), or
                the two differ in shape.
        """
        if not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an int >= 2; got {steps!r}")
        if start.shape != end.shape:
            raise ValueError(f"start and end must have the same shape; got {tuple(start.shape)} and "
                             f"{tuple(end.shape)}")
        G = self.net("G", networks)
        _check_latent(start, "start", G.z_dim)
        param = next(G.parameters())
        wa = G.mapping(start.to(param), truncation_psi)
        wb = G.mapping(end.to(param), truncation_psi)
        t = torch.linspace(0, 1, steps, device=param.device, dtype=param.dtype).view(1, steps, 1, 1)
        ws = torch.lerp(wa[:, None], wb[:, None], t)  # (P, steps, num_ws, w_dim)
        return G.synthesis(ws.reshape(-1, G.num_ws, G.w_dim), noise_mode="const")


def _check_latent(t: Any, name: str, z_dim: int) -> None:
    """``t`` is a (P, z_dim) tensor with P >= 1 (Raises: ValueError naming ``name``)."""
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != z_dim or t.shape[0] < 1:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be (P, z_dim={z_dim}) with P >= 1; got {got}")
