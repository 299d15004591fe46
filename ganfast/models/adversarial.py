"""The one-generator, one-discriminator GAN every classic method is a configuration of.

:class:`AdversarialGAN` is the method base of ``gan``, ``dcgan``, ``cgan``,
``acgan``, ``infogan``, ``wgan``, ``wgan-gp``, ``lsgan``, ``sngan``,
``sagan`` and ``unrolled``: networks ``G`` (``z [, y] -> x``) and ``D``
(``x [, y] -> logits``) from :mod:`ganfast.models.nets`, optimisers ``G``
and ``D``, and the iteration of Goodfellow et al. 2014, Algorithm 1::

    phase "D" (optimiser D), n_critic times, each on a new real batch:
        fake = G(z) without gradients; loss = D's adversarial loss [+ penalties]
    phase "G" (optimiser G), on the last real batch:
        loss = G's adversarial loss on D(G(z)) [+ feature matching]

with the stabilising tricks of the literature as options (gradient
penalty, R1/R2, weight clipping, one-sided label smoothing, instance noise
on an annealing schedule, feature matching, historical averaging,
minibatch discrimination / standard deviation, spectral norm).  A method
file changes the defaults (its paper's) and overrides the pieces its paper
changes (AC-GAN's classifier, InfoGAN's Q head, Unrolled GAN's G loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import losses as L
from ..data.batch import Batch
from . import nets
from .method import EMASpec, Method, OptimizerSpec
from .options import OptionsBase, option
from .phases import Phase, StepContext
from .schedules import Schedule


@dataclass
class AdversarialOptions(OptionsBase):
    """Options every classic method takes; the generic defaults (a method re-declares those its paper sets)."""

    sample_shape: Any = option([1, 32, 32], help="(C, H, W) images or (D,) points; set from the dataset")
    num_classes: int = option(0, help="label count of the data (0: unlabeled); set from the dataset", min=0)
    latent_dim: Optional[int] = option(None, help="None: 100 for images (Radford et al. 2015), 64 for points",
                                       min=1)
    loss: str = option("non-saturating", "Goodfellow et al. 2014, sec. 3", choices=L.names())
    n_critic: int = option(1, help="discriminator steps per generator step", min=1)
    optimizer: str = option("adam", "Kingma & Ba 2015", choices=("adam", "rmsprop"))
    lr_g: float = option(2e-4, "Radford et al. 2015, sec. 4", min=0.0, min_exclusive=True)
    lr_d: float = option(2e-4, "Radford et al. 2015, sec. 4", min=0.0, min_exclusive=True)
    betas: List[float] = option([0.5, 0.999], "Radford et al. 2015, sec. 4 (beta1 0.5)", length=2, min=0.0,
                                max=1.0, max_exclusive=True)
    arch: Optional[str] = option(None, help="conv | mlp; None: conv for images, mlp for points",
                                 choices=("conv", "mlp", None))
    width: Optional[int] = option(None, help="conv: channels of G's last hidden layer and D's first", min=1)
    hidden: Optional[List[int]] = option(None, help="mlp: hidden widths (G; D uses them reversed)", min=1)
    batch_norm_g: bool = option(True, "Radford et al. 2015, sec. 3")
    batch_norm_d: bool = option(True, "Radford et al. 2015, sec. 3")
    spectral_norm_g: bool = option(False)
    spectral_norm_d: bool = option(False)
    self_attention: Optional[int] = option(None, help="resolution at which G and D get a SAGAN block")
    dropout_d: float = option(0.0, min=0.0)
    gradient_penalty: float = option(0.0, help="WGAN-GP lambda (Gulrajani et al. 2017, eq. 3)", min=0.0)
    r1: float = option(0.0, help="R1 gamma: gamma/2 E||grad D(real)||^2 (Mescheder et al. 2018, eq. 9)", min=0.0)
    r2: float = option(0.0, help="R2 gamma, on fake samples (Mescheder et al. 2018, eq. 10)", min=0.0)
    clip_d: float = option(0.0, help="WGAN weight clipping c (0: off; Arjovsky et al. 2017)", min=0.0)
    label_smoothing: float = option(0.0, help="one-sided: real label 1 - s (Salimans et al. 2016, sec. 3.4)",
                                    min=0.0, max=1.0, max_exclusive=True)
    instance_noise: float = option(0.0, help="initial sigma, annealed linearly to 0 (Sonderby et al. 2016)",
                                   min=0.0)
    instance_noise_steps: int = option(10_000, help="steps over which instance noise anneals to 0", min=1)
    feature_matching: float = option(0.0, help="weight of feature matching in G's loss (Salimans et al. 2016)",
                                     min=0.0)
    historical_averaging: float = option(0.0, help="weight of historical averaging (Salimans et al. 2016)",
                                         min=0.0)
    minibatch_discrimination: Optional[List[int]] = option(
        None, help="(num_kernels, kernel_dim) on D's features (Salimans et al. 2016)", length=2, min=1)
    minibatch_stddev: bool = option(False, help="ProGAN's layer before D's head (Karras et al. 2018)")
    init: str = option("dcgan", help="dcgan: N(0, 0.02) (Radford et al. 2015) | default: torch's",
                       choices=("dcgan", "default"))

    def resolve(self, method: Any) -> None:
        name = method.name
        shape = self.sample_shape
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        if (not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
            raise ValueError(f"option 'sample_shape' must be (C, H, W) for images or (D,) for points; got {shape!r}")
        self.sample_shape = [int(s) for s in shape]
        image = len(shape) == 3
        if self.arch is None:
            self.arch = "conv" if image else "mlp"
        if self.arch == "conv":
            if not image:
                raise ValueError(f"model {name!r}: arch 'conv' needs image data (C, H, W); got sample_shape {shape}")
            h, w = shape[1], shape[2]
            if not (h == w and h >= 8 and (h & (h - 1)) == 0):
                raise ValueError(f"model {name!r}: convolutional networks need square images whose side is a power "
                                 f"of two >= 8 (resize with image_size=16/32/64); got {h}x{w}")
        if self.latent_dim is None:
            self.latent_dim = 100 if image else 64
        if self.hidden is not None and len(self.hidden) == 0:
            raise ValueError(f"option 'hidden' must be a non-empty list of positive ints; got {self.hidden!r}")
        if self.minibatch_stddev and self.arch != "conv":
            raise ValueError("option 'minibatch_stddev' needs the convolutional discriminator (image data)")
        if self.loss in ("wasserstein", "hinge") and self.label_smoothing > 0:
            raise ValueError(f"label smoothing has no meaning with the {self.loss} loss")


class AdversarialGAN(Method):
    """One generator ``G``, one discriminator ``D``; see the module docstring."""

    family = "unconditional"
    Options = AdversarialOptions
    #: True when the method needs labels (cGAN, AC-GAN): the batch must have ``label``
    conditional: ClassVar[bool] = False

    # -- construction ----------------------------------------------------------------------------------

    def configure(self) -> None:
        o = self.options
        self.sample_shape: Tuple[int, ...] = tuple(o.sample_shape)
        self.kind = "image" if len(self.sample_shape) == 3 else "points"
        self.num_classes: int = o.num_classes
        self.latent_dim: int = o.latent_dim
        self.loss: str = o.loss
        self.n_critic: int = o.n_critic
        if self.conditional and self.num_classes < 1:
            raise ValueError(f"model {self.name!r} is conditional: pass num_classes (the label count) or a "
                             f"labelled dataset")

    def generator_input_dim(self) -> int:
        return self.latent_dim

    def discriminator_classes(self) -> int:
        """Label count D is conditioned on (cGAN: all of them)."""
        return self.num_classes if self.conditional else 0

    def generator_classes(self) -> int:
        return self.num_classes if self.conditional else 0

    def build_networks(self) -> Dict[str, nn.Module]:
        o = self.options
        shape = self.sample_shape
        zdim = self.generator_input_dim()
        if o.arch == "conv":
            side = shape[1]
            width = o.width or max(16, min(64, 2048 // side))
            G = nets.ConvGenerator(zdim, shape, width=width, num_classes=self.generator_classes(),
                                   batch_norm=o.batch_norm_g, spectral_norm=o.spectral_norm_g,
                                   self_attention=o.self_attention)
            D = nets.ConvDiscriminator(shape, width=width, num_classes=self.discriminator_classes(),
                                       batch_norm=o.batch_norm_d, spectral_norm=o.spectral_norm_d,
                                       self_attention=o.self_attention, minibatch_stddev=o.minibatch_stddev,
                                       minibatch_discrimination=o.minibatch_discrimination)
        else:
            hidden = o.hidden or ([256, 512] if self.kind == "image" else [128, 128])
            G = nets.MLPGenerator(zdim, shape, hidden=tuple(hidden), num_classes=self.generator_classes(),
                                  batch_norm=o.batch_norm_g, spectral_norm=o.spectral_norm_g,
                                  out_activation="tanh" if self.kind == "image" else None)
            D = nets.MLPDiscriminator(shape, hidden=tuple(reversed(hidden)), num_classes=self.discriminator_classes(),
                                      batch_norm=o.batch_norm_d, dropout=o.dropout_d,
                                      spectral_norm=o.spectral_norm_d,
                                      minibatch_discrimination=o.minibatch_discrimination)
        return {"G": G, "D": D}

    def init_networks(self) -> None:
        o = self.options
        if o.init == "dcgan":
            nets.init_weights(self, style="dcgan")
        if o.historical_averaging > 0:
            self._ha = {"G": L.HistoricalAveraging(self.G), "D": L.HistoricalAveraging(self.D)}
        else:
            self._ha = None

    #: networks trained by each optimiser (a head on D's trunk joins "D")
    d_networks: ClassVar[Tuple[str, ...]] = ("D",)

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        o = self.options
        kind, betas = o.optimizer, tuple(o.betas)
        return {"D": OptimizerSpec(self.d_networks, lr=o.lr_d, kind=kind, betas=betas),
                "G": OptimizerSpec(("G",), lr=o.lr_g, kind=kind, betas=betas)}

    def phases(self) -> List[Phase]:
        o = self.options
        return [Phase("D", "D", self.d_phase, repeat=self.n_critic, batch="next",
                      after=self.clip_critic if o.clip_d > 0 else None),
                Phase("G", "G", self.g_phase, batch="same",
                      after=self.update_history if self._ha is not None else None)]

    def schedules(self) -> Dict[str, Schedule]:
        o = self.options
        if o.instance_noise <= 0:
            return {}
        noise = L.InstanceNoise(o.instance_noise, o.instance_noise_steps)
        return {"instance_noise": lambda step, total: noise.sigma_at(step)}

    def ema_networks(self) -> Dict[str, EMASpec]:
        return {"G": EMASpec()}

    # -- sampling ---------------------------------------------------------------------------------------

    sample_conditions: ClassVar[Tuple[str, ...]] = ()

    def sample_latent(self, n: int, *, device: Any = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """Latent codes for ``n`` samples: (n, generator_input_dim()) float32, N(0, 1)."""
        return torch.randn(n, self.latent_dim, device=device, generator=generator)

    def sample_labels(self, n: int, *, device: Any = None,
                      generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
        """Uniform random labels (n,) int64 for a conditional G, else None."""
        if self.generator_classes() == 0:
            return None
        return torch.randint(0, self.num_classes, (n,), device=device, generator=generator)

    def generate(self, z: Tensor, y: Optional[Tensor] = None, networks: Optional[Mapping[str, nn.Module]] = None
                 ) -> Tensor:
        """``G(z[, y])``; ``networks`` may replace ``G`` (the trainer passes its EMA copy).

        Raises:
            ValueError: labels missing for a conditional G, or given to an unconditional one.
        """
        g = self.net("G", networks)
        if self.generator_classes() > 0:
            if y is None:
                raise ValueError(f"model {self.name!r} is conditional: pass labels y (int64, shape ({z.shape[0]},))")
            return g(z, y)
        if y is not None:
            raise ValueError(f"model {self.name!r} is not conditional: it takes no labels")
        return g(z)

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None, latent: Optional[Tensor] = None,
               label: Any = None) -> Tensor:
        """``n`` samples ``(n, *sample_shape)`` from G (or from ``networks["G"]``).

        Args:
            n: how many (may be omitted when ``latent`` is given).
            latent: the codes to use (default: drawn with ``generator``).
            label: conditional methods: an int (every sample that class) or an
                int64 tensor (n,); default: classes 0, 1, ..., K-1 in turn.
            generator: draws the latent codes (default: torch's global RNG).
            device: where to draw them (default: G's device).

        Raises:
            ValueError: no ``n`` and no ``latent``, a mismatched ``n``, a label
                for an unconditional method or one outside [0, K).
        """
        g = self.net("G", networks)
        if device is None:
            p = next(iter(g.parameters()), None)
            device = p.device if p is not None else None
        if latent is None:
            if n is None:
                raise ValueError("sample: give n (how many samples) or latent")
            latent = self.sample_latent(n, generator=generator).to(device)
        elif n is not None and n != latent.shape[0]:
            raise ValueError(f"sample: n={n} but latent holds {latent.shape[0]} codes")
        n = latent.shape[0]
        k = self.generator_classes()
        if label is not None and k == 0:
            raise ValueError(f"model {self.name!r} is not conditional: it takes no label")
        y = None
        if k > 0:
            if label is None:
                y = torch.arange(n) % k
            elif isinstance(label, int) and not isinstance(label, bool):
                if not 0 <= label < k:
                    raise ValueError(f"label must be in [0, {k}); got {label}")
                y = torch.full((n,), label, dtype=torch.int64)
            else:
                y = torch.as_tensor(label, dtype=torch.int64)
            y = y.to(latent.device)
        return self.generate(latent, y, networks)

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        inputs: Dict[str, Any] = {"latent": self.sample_latent(n, generator=generator)}
        if self.generator_classes() > 0:
            inputs["label"] = torch.arange(n) % self.num_classes
        return inputs

    def grid_size(self) -> int:
        if self.kind == "points":
            return 2500
        k = self.num_classes if self.generator_classes() > 0 else 0
        return k * k if 8 <= k <= 12 else 64

    def grid_nrow(self, inputs: Mapping[str, Any]) -> Optional[int]:
        return self.num_classes if "label" in inputs and self.num_classes >= 8 else None

    # -- the phases -------------------------------------------------------------------------------------

    def d_forward(self, x: Tensor, y: Optional[Tensor], *, features: bool = False):
        d = self.D
        args = (x, y) if self.discriminator_classes() > 0 else (x,)
        return d(*args, return_features=features) if features else d(*args)

    def label_kwargs(self) -> Dict[str, float]:
        """One-sided label smoothing (Salimans et al. 2016) as discriminator_loss's keyword."""
        s = self.options.label_smoothing
        return {"real_label": 1.0 - s} if s > 0 else {}

    def critic(self, y: Optional[Tensor]) -> Callable[[Tensor], Tensor]:
        """D as a function of its input alone (labels bound), for the gradient penalties."""
        return lambda t: self.d_forward(t, y)

    def noisy(self, x: Tensor, ctx: StepContext) -> Tensor:
        """``x`` plus instance noise at the scheduled sigma (``x`` itself when there is none)."""
        sigma = ctx.schedule.get("instance_noise", 0.0)
        return L.add_instance_noise(x, sigma) if sigma > 0 else x

    def fake(self, n: int, device: torch.device) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """``(z, y, G(z, y))`` for ``n`` fresh samples."""
        z = self.sample_latent(n, device=device)
        y = self.sample_labels(n, device=device)
        return z, y, self.generate(z, y)

    def real(self, batch: Batch) -> Tuple[Tensor, Optional[Tensor]]:
        if self.conditional and batch.label is None:
            raise ValueError(f"model {self.name!r} is conditional and needs labels, but the batch has none")
        batch.require(("image",), f"model {self.name!r}")
        return batch.image, batch.label

    def d_phase(self, batch: Batch, ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        real, y = self.real(batch)
        with torch.no_grad():
            z, y_fake, fake = self.fake(real.shape[0], real.device)
        return self.discriminator_loss(real, y, fake, y_fake, z, ctx)

    def g_phase(self, batch: Batch, ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        real, y = self.real(batch)
        z, y_fake, fake = self.fake(real.shape[0], real.device)
        return self.generator_loss(fake, y_fake, z, real, y, ctx)

    def discriminator_loss(self, real: Tensor, y: Optional[Tensor], fake: Tensor, y_fake: Optional[Tensor],
                           z: Tensor, ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        real_in, fake_in = self.noisy(real, ctx), self.noisy(fake, ctx)
        real_out = self.d_forward(real_in, y)
        fake_out = self.d_forward(fake_in, y_fake)
        loss = L.discriminator_loss(self.loss, real_out, fake_out, **self.label_kwargs())
        logs = {"d_loss": loss.detach(), "d_real": real_out.detach().float().mean(),
                "d_fake": fake_out.detach().float().mean()}
        if self.loss == "wasserstein":
            logs["w_distance"] = logs["d_real"] - logs["d_fake"]
        return self.add_penalties(loss, real, y, fake, y_fake, ctx, logs), logs

    def add_penalties(self, total: Tensor, real: Tensor, y: Optional[Tensor], fake: Tensor,
                      y_fake: Optional[Tensor], ctx: StepContext, logs: Dict[str, Tensor]) -> Tensor:
        """D's loss ``total`` plus the weighted gradient penalties and historical average that are on."""
        o = self.options
        if o.gradient_penalty > 0:
            gp = L.gradient_penalty(self.critic(y), real.detach(), fake.detach(), scaler=ctx.scaler("D"))
            total = total + o.gradient_penalty * gp
            logs["gp"] = gp.detach()
        if o.r1 > 0:
            r1 = L.r1_penalty(self.critic(y), real.detach(), scaler=ctx.scaler("D"))
            total = total + 0.5 * o.r1 * r1
            logs["r1"] = r1.detach()
        if o.r2 > 0:
            r2 = L.r2_penalty(self.critic(y_fake), fake.detach(), scaler=ctx.scaler("D"))
            total = total + 0.5 * o.r2 * r2
            logs["r2"] = r2.detach()
        if self._ha is not None:
            total = total + o.historical_averaging * self._ha["D"].penalty()
        return total

    def generator_loss(self, fake: Tensor, y_fake: Optional[Tensor], z: Tensor, real: Tensor, y: Optional[Tensor],
                       ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        o = self.options
        fake_in = self.noisy(fake, ctx)
        if o.feature_matching > 0:
            fake_out, f_fake = self.d_forward(fake_in, y_fake, features=True)
            with torch.no_grad():
                _, f_real = self.d_forward(self.noisy(real, ctx), y, features=True)
        else:
            fake_out = self.d_forward(fake_in, y_fake)
        loss = L.generator_loss(self.loss, fake_out)
        logs = {"g_loss": loss.detach()}
        total = loss
        if o.feature_matching > 0:
            fm = L.feature_matching_loss(f_real, f_fake)
            total = total + o.feature_matching * fm
            logs["feature_matching"] = fm.detach()
        if self._ha is not None:
            total = total + o.historical_averaging * self._ha["G"].penalty()
        return total, logs

    def clip_critic(self, ctx: StepContext) -> None:
        # WGAN (Arjovsky et al. 2017, Algorithm 1): clamp the critic's weights to [-c, c]
        # so it stays K-Lipschitz.
        clip = self.options.clip_d
        with torch.no_grad():
            for p in self.parameters_of(self.d_networks):
                p.clamp_(-clip, clip)

    def update_history(self, ctx: StepContext) -> None:
        self._ha["G"].update()
        self._ha["D"].update()

    # -- state beyond parameters ------------------------------------------------------------------------

    def extra_state_dict(self) -> Dict[str, Any]:
        if self._ha is None:
            return {}
        return {"historical_averaging": {k: h.state_dict() for k, h in self._ha.items()}}

    def load_extra_state_dict(self, state: Dict[str, Any]) -> None:
        if self._ha is not None and "historical_averaging" in state:
            for k, h in self._ha.items():
                h.load_state_dict(state["historical_averaging"][k])
