"""The GAN model: networks, default hyper-parameters and one training iteration.

A :class:`GANModel` owns its networks (``generator``, ``discriminator`` and
any extra heads), knows its method's losses and optimiser settings, and runs
one training iteration (``n_critic`` discriminator steps, then one generator
step) through a :class:`StepContext` that the trainer supplies.  The context
is where mixed precision, gradient scaling and the cross-process gradient
all-reduce live, so a model's step reads like the paper's algorithm box and
the same code runs on one CPU or on eight GPUs.

Everything a model needs to be rebuilt is in ``model.config`` (plain JSON
values): a checkpoint stores it, and ``ganfast.models.build(**config)``
recreates the same networks.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .. import losses as L
from . import nets

Batch = Tuple[Tensor, Optional[Tensor]]


class StepContext:
    """What a training step needs from its surroundings (the trainer subclasses it).

    The default runs in float32 on one process: ``autocast`` does nothing,
    ``backward`` is ``loss.backward()`` and ``step`` is ``optimizer.step()``.
    """

    #: the generator step's index (0-based), for schedules such as instance noise
    iteration: int = 0

    def autocast(self):
        return contextlib.nullcontext()

    def scaler(self, name: str) -> Optional["torch.amp.GradScaler"]:
        """The gradient scaler of optimiser ``name`` (fp16 only), else None."""
        return None

    def backward(self, loss: Tensor, name: str) -> None:
        scaler = self.scaler(name)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def reduce_gradients(self, params: Sequence[Tensor]) -> None:
        """Average gradients across processes (a no-op on one process)."""

    def step(self, optimizer: torch.optim.Optimizer, name: str) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.reduce_gradients(params)
        scaler = self.scaler(name)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()


def _check_options(name: str, options: Dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"model {name!r} got unknown option(s) {unknown}; its options are {sorted(allowed)}")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _float(d: Dict[str, Any], key: str, *, min_value: float = 0.0, allow_equal: bool = True) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"option {key!r} must be a finite number; got {v!r}")
    ok = v >= min_value if allow_equal else v > min_value
    if not ok:
        raise ValueError(f"option {key!r} must be {'>=' if allow_equal else '>'} {min_value}; got {v!r}")
    return float(v)


def _int(d: Dict[str, Any], key: str, *, min_value: int = 1) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < min_value:
        raise ValueError(f"option {key!r} must be an int >= {min_value}; got {v!r}")
    return v


# Options every model takes, with the generic defaults; a method overrides the
# ones its paper sets (see ganfast.models.variants).
COMMON_DEFAULTS: Dict[str, Any] = {
    "sample_shape": (1, 32, 32),   # (C, H, W) images or (D,) points
    "num_classes": 0,              # label count of the data (0: unlabeled)
    "latent_dim": None,            # None: 100 for images, 64 for points
    "loss": "non-saturating",
    "n_critic": 1,                 # discriminator steps per generator step
    "optimizer": "adam",
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "betas": (0.5, 0.999),
    "arch": None,                  # "conv" | "mlp"; None: conv for images, mlp for points
    "width": None,                 # conv: channels of G's last hidden layer and D's first
    "hidden": None,                # mlp: hidden widths (G; D uses them reversed)
    "batch_norm_g": True,
    "batch_norm_d": True,
    "spectral_norm_g": False,
    "spectral_norm_d": False,
    "self_attention": None,        # resolution at which G and D get a SAGAN block
    "dropout_d": 0.0,
    "gradient_penalty": 0.0,       # WGAN-GP lambda
    "r1": 0.0,                     # R1 gamma (penalty gamma/2 * E||grad D(real)||^2)
    "r2": 0.0,                     # R2 gamma, on fake samples
    "clip_d": 0.0,                 # WGAN weight clipping c (0: off)
    "label_smoothing": 0.0,        # one-sided: real label 1 - s
    "instance_noise": 0.0,         # initial sigma, annealed linearly to 0
    "instance_noise_steps": 10_000,
    "feature_matching": 0.0,       # weight of Salimans' feature-matching term in G's loss
    "historical_averaging": 0.0,   # weight of Salimans' historical-averaging penalty (G and D)
    "minibatch_discrimination": None,  # (num_kernels, kernel_dim) on D's features
    "minibatch_stddev": False,     # ProGAN layer before D's head (conv D only)
    "init": "dcgan",               # "dcgan" (N(0, 0.02)) | "default" (torch's)
}


class GANModel(nn.Module):
    """A GAN method: networks + losses + optimiser settings + one training iteration."""

    #: the registry name (set by :func:`ganfast.models.register`)
    name: str = "gan"
    #: this method's defaults over :data:`COMMON_DEFAULTS`
    defaults: Dict[str, Any] = {}
    #: extra options this method accepts (beyond COMMON_DEFAULTS)
    extra_options: Dict[str, Any] = {}
    #: True when the method needs labels (cGAN, AC-GAN)
    conditional: bool = False
    #: one line for ``ganfast list``
    summary: str = ""
    #: what ``ganfast train`` uses when the user does not say, per kind of data ("points",
    #: "image"): steps, batch_size, lr_schedule, and model options (see ganfast.train.recommended)
    recommended: Dict[str, Dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__()
        allowed = dict(COMMON_DEFAULTS)
        allowed.update(self.extra_options)
        allowed.update(self.defaults)
        _check_options(self.name, options, list(allowed))
        cfg = dict(allowed)
        cfg.update(options)
        self.config: Dict[str, Any] = self._normalise(cfg)
        c = self.config
        self.sample_shape: Tuple[int, ...] = tuple(c["sample_shape"])
        self.kind = "image" if len(self.sample_shape) == 3 else "points"
        self.num_classes: int = c["num_classes"]
        self.latent_dim: int = c["latent_dim"]
        self.loss: str = c["loss"]
        self.n_critic: int = c["n_critic"]
        self.build_networks()
        if c["init"] == "dcgan":
            nets.init_weights(self, style="dcgan")
        if c["historical_averaging"] > 0:
            self._ha_g = L.HistoricalAveraging(self.generator)
            self._ha_d = L.HistoricalAveraging(self.discriminator)
        else:
            self._ha_g = self._ha_d = None
        self._noise = (L.InstanceNoise(c["instance_noise"], c["instance_noise_steps"])
                       if c["instance_noise"] > 0 else None)

    # -- configuration --------------------------------------------------------------------

    def _normalise(self, c: Dict[str, Any]) -> Dict[str, Any]:
        shape = c["sample_shape"]
        if isinstance(shape, int):
            shape = (shape,)
        if (not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
            raise ValueError(f"option 'sample_shape' must be (C, H, W) for images or (D,) for points; got {shape!r}")
        c["sample_shape"] = [int(s) for s in shape]
        image = len(shape) == 3
        if c["arch"] is None:
            c["arch"] = "conv" if image else "mlp"
        _require(c["arch"] in ("conv", "mlp"), f"option 'arch' must be 'conv' or 'mlp'; got {c['arch']!r}")
        if c["arch"] == "conv":
            _require(image, f"model {self.name!r}: arch 'conv' needs image data (C, H, W); got sample_shape {shape}")
            h, w = shape[1], shape[2]
            _require(h == w and h >= 8 and (h & (h - 1)) == 0,
                     f"model {self.name!r}: convolutional networks need square images whose side is a power of two"
                     f" >= 8 (resize with image_size=16/32/64); got {h}x{w}")
        _int(c, "num_classes", min_value=0)
        if c["latent_dim"] is None:
            c["latent_dim"] = 100 if image else 64
        _int(c, "latent_dim")
        _require(c["loss"] in L.names(), f"option 'loss' must be one of {L.names()}; got {c['loss']!r}")
        _int(c, "n_critic")
        _require(c["optimizer"] in ("adam", "rmsprop"), f"option 'optimizer' must be 'adam' or 'rmsprop'; got {c['optimizer']!r}")
        for k in ("lr_g", "lr_d"):
            _float(c, k, min_value=0.0, allow_equal=False)
        b = c["betas"]
        _require(isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(x, (int, float)) and 0 <= x < 1 for x in b),
                 f"option 'betas' must be two numbers in [0, 1); got {b!r}")
        c["betas"] = [float(b[0]), float(b[1])]
        for k in ("gradient_penalty", "r1", "r2", "clip_d", "label_smoothing", "instance_noise",
                  "feature_matching", "historical_averaging", "dropout_d"):
            _float(c, k)
        _require(c["label_smoothing"] < 1, f"option 'label_smoothing' must be in [0, 1); got {c['label_smoothing']!r}")
        _int(c, "instance_noise_steps")
        mbd = c["minibatch_discrimination"]
        if mbd is not None:
            _require(isinstance(mbd, (tuple, list)) and len(mbd) == 2 and all(isinstance(v, int) and v > 0 for v in mbd),
                     f"option 'minibatch_discrimination' must be (num_kernels, kernel_dim); got {mbd!r}")
            c["minibatch_discrimination"] = [int(mbd[0]), int(mbd[1])]
        if c["minibatch_stddev"]:
            _require(c["arch"] == "conv", "option 'minibatch_stddev' needs the convolutional discriminator (image data)")
        _require(c["init"] in ("dcgan", "default"), f"option 'init' must be 'dcgan' or 'default'; got {c['init']!r}")
        if c["hidden"] is not None:
            _require(isinstance(c["hidden"], (tuple, list)) and len(c["hidden"]) > 0
                     and all(isinstance(v, int) and v > 0 for v in c["hidden"]),
                     f"option 'hidden' must be a non-empty list of positive ints; got {c['hidden']!r}")
            c["hidden"] = [int(v) for v in c["hidden"]]
        if c["width"] is not None:
            _int(c, "width")
        if c["loss"] in ("wasserstein", "hinge") and c["label_smoothing"] > 0:
            raise ValueError(f"label smoothing has no meaning with the {c['loss']} loss")
        return c

    # -- networks ---------------------------------------------------------------------------

    def generator_input_dim(self) -> int:
        return self.latent_dim

    def discriminator_classes(self) -> int:
        """Label count the discriminator is conditioned on (cGAN: all of them)."""
        return self.num_classes if self.conditional else 0

    def generator_classes(self) -> int:
        return self.num_classes if self.conditional else 0

    def build_networks(self) -> None:
        c = self.config
        shape = self.sample_shape
        zdim = self.generator_input_dim()
        if c["arch"] == "conv":
            side = shape[1]
            width = c["width"] or max(16, min(64, 2048 // side))
            self.generator = nets.ConvGenerator(
                zdim, shape, width=width, num_classes=self.generator_classes(),
                batch_norm=c["batch_norm_g"], spectral_norm=c["spectral_norm_g"],
                self_attention=c["self_attention"])
            self.discriminator = nets.ConvDiscriminator(
                shape, width=width, num_classes=self.discriminator_classes(),
                batch_norm=c["batch_norm_d"], spectral_norm=c["spectral_norm_d"],
                self_attention=c["self_attention"], minibatch_stddev=bool(c["minibatch_stddev"]),
                minibatch_discrimination=c["minibatch_discrimination"])
        else:
            hidden = c["hidden"] or ([256, 512] if self.kind == "image" else [128, 128])
            self.generator = nets.MLPGenerator(
                zdim, shape, hidden=tuple(hidden), num_classes=self.generator_classes(),
                batch_norm=c["batch_norm_g"], spectral_norm=c["spectral_norm_g"],
                out_activation="tanh" if self.kind == "image" else None)
            self.discriminator = nets.MLPDiscriminator(
                shape, hidden=tuple(reversed(hidden)), num_classes=self.discriminator_classes(),
                batch_norm=c["batch_norm_d"], dropout=c["dropout_d"], spectral_norm=c["spectral_norm_d"],
                minibatch_discrimination=c["minibatch_discrimination"])

    def discriminator_modules(self) -> List[nn.Module]:
        """Modules trained by the discriminator's optimiser (D plus heads sharing its trunk)."""
        return [self.discriminator]

    def generator_modules(self) -> List[nn.Module]:
        return [self.generator]

    # -- sampling -------------------------------------------------------------------------------

    def sample_latent(self, n: int, *, device: Any = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """Latent codes for ``n`` samples (the generator's whole input but the label)."""
        return torch.randn(n, self.latent_dim, device=device, generator=generator)

    def sample_labels(self, n: int, *, device: Any = None, generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
        if self.generator_classes() == 0:
            return None
        return torch.randint(0, self.num_classes, (n,), device=device, generator=generator)

    def generate(self, z: Tensor, y: Optional[Tensor] = None, generator: Optional[nn.Module] = None) -> Tensor:
        """Run ``generator`` (default: this model's; the trainer passes its EMA copy) on codes ``z``."""
        g = self.generator if generator is None else generator
        if self.generator_classes() > 0:
            if y is None:
                raise ValueError(f"model {self.name!r} is conditional: pass labels y (int64, shape ({z.shape[0]},))")
            return g(z, y)
        if y is not None and self.name != "acgan":
            raise ValueError(f"model {self.name!r} is not conditional: it takes no labels")
        return g(z)

    # -- optimisers --------------------------------------------------------------------------

    def parameters_of(self, modules: Sequence[nn.Module]) -> List[nn.Parameter]:
        seen, out = set(), []
        for m in modules:
            for p in m.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def make_optimizers(self, *, fused: Optional[bool] = None) -> Dict[str, torch.optim.Optimizer]:
        """The paper's optimisers: ``{"d": ..., "g": ...}``.

        ``fused=None`` uses torch's fused Adam where this torch has it for the
        parameters' device, else the multi-tensor (foreach) one.
        """
        c = self.config
        out = {}
        for key, modules, lr in (("d", self.discriminator_modules(), c["lr_d"]),
                                 ("g", self.generator_modules(), c["lr_g"])):
            params = self.parameters_of(modules)
            if c["optimizer"] == "rmsprop":
                out[key] = torch.optim.RMSprop(params, lr=lr)
            else:
                out[key] = _adam(params, lr, tuple(c["betas"]), fused)
        return out

    # -- losses -----------------------------------------------------------------------------

    def d_forward(self, x: Tensor, y: Optional[Tensor], *, features: bool = False):
        d = self.discriminator
        args = (x, y) if self.discriminator_classes() > 0 else (x,)
        return d(*args, return_features=features) if features else d(*args)

    def label_kwargs(self) -> Dict[str, float]:
        """One-sided label smoothing (Salimans et al. 2016) as discriminator_loss's keyword."""
        s = self.config["label_smoothing"]
        return {"real_label": 1.0 - s} if s > 0 else {}

    def critic(self, y: Optional[Tensor]) -> Callable[[Tensor], Tensor]:
        """D as a function of its input alone (labels bound), for the gradient penalties."""
        return lambda t: self.d_forward(t, y)

    def _noisy(self, x: Tensor, ctx: StepContext) -> Tensor:
        return self._noise(x, ctx.iteration) if self._noise is not None else x

    def discriminator_loss(self, real: Tensor, y: Optional[Tensor], fake: Tensor, y_fake: Optional[Tensor],
                           ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        c = self.config
        real_in, fake_in = self._noisy(real, ctx), self._noisy(fake, ctx)
        real_out = self.d_forward(real_in, y)
        fake_out = self.d_forward(fake_in, y_fake)
        loss = L.discriminator_loss(self.loss, real_out, fake_out, **self.label_kwargs())
        logs = {"d_loss": loss.detach(), "d_real": real_out.detach().float().mean(),
                "d_fake": fake_out.detach().float().mean()}
        if self.loss == "wasserstein":
            logs["w_distance"] = logs["d_real"] - logs["d_fake"]
        total = loss
        if c["gradient_penalty"] > 0:
            gp = L.gradient_penalty(self.critic(y), real.detach(), fake.detach(),
                                    scaler=ctx.scaler("d"))
            total = total + c["gradient_penalty"] * gp
            logs["gp"] = gp.detach()
        if c["r1"] > 0:
            r1 = L.r1_penalty(self.critic(y), real.detach(), scaler=ctx.scaler("d"))
            total = total + 0.5 * c["r1"] * r1
            logs["r1"] = r1.detach()
        if c["r2"] > 0:
            r2 = L.r2_penalty(self.critic(y_fake), fake.detach(), scaler=ctx.scaler("d"))
            total = total + 0.5 * c["r2"] * r2
            logs["r2"] = r2.detach()
        if self._ha_d is not None:
            total = total + c["historical_averaging"] * self._ha_d.penalty()
        return total, logs

    def generator_loss(self, fake: Tensor, y_fake: Optional[Tensor], real: Tensor, y: Optional[Tensor],
                       ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        c = self.config
        fake_in = self._noisy(fake, ctx)
        if c["feature_matching"] > 0:
            fake_out, f_fake = self.d_forward(fake_in, y_fake, features=True)
            with torch.no_grad():
                _, f_real = self.d_forward(self._noisy(real, ctx), y, features=True)
        else:
            fake_out = self.d_forward(fake_in, y_fake)
        loss = L.generator_loss(self.loss, fake_out)
        logs = {"g_loss": loss.detach()}
        total = loss
        if c["feature_matching"] > 0:
            fm = L.feature_matching_loss(f_real, f_fake)
            total = total + c["feature_matching"] * fm
            logs["feature_matching"] = fm.detach()
        if self._ha_g is not None:
            total = total + c["historical_averaging"] * self._ha_g.penalty()
        return total, logs

    # -- one iteration -------------------------------------------------------------------------

    def _fake(self, n: int, device: torch.device) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        z = self.sample_latent(n, device=device)
        y = self.sample_labels(n, device=device)
        return z, y, self.generate(z, y)

    def train_step(self, next_batch: Callable[[], Batch], optimizers: Dict[str, torch.optim.Optimizer],
                   ctx: StepContext) -> Dict[str, Tensor]:
        """``n_critic`` discriminator steps (each on a fresh real batch), then one generator step.

        Returns the last values of the logged quantities as 0-d tensors (the
        trainer reduces them across processes and converts them once, so no
        step waits on the device).
        """
        logs: Dict[str, Tensor] = {}
        set_requires_grad(self.generator_modules(), False)
        set_requires_grad(self.discriminator_modules(), True)
        for _ in range(self.n_critic):
            real, y = next_batch()
            self._check_labels(y)
            with ctx.autocast():
                with torch.no_grad():
                    z, y_fake, fake = self._fake(real.shape[0], real.device)
                loss, d_logs = self.discriminator_loss(real, y, fake, y_fake, ctx)
            optimizers["d"].zero_grad(set_to_none=True)
            ctx.backward(loss, "d")
            ctx.step(optimizers["d"], "d")
            self.after_discriminator_step()
            logs.update(d_logs)
        set_requires_grad(self.discriminator_modules(), False)
        set_requires_grad(self.generator_modules(), True)
        with ctx.autocast():
            g_loss, g_logs = self.generator_step_loss(real, y, ctx, optimizers)
        optimizers["g"].zero_grad(set_to_none=True)
        ctx.backward(g_loss, "g")
        ctx.step(optimizers["g"], "g")
        set_requires_grad(self.discriminator_modules(), True)
        if self._ha_g is not None:
            self._ha_g.update()
            self._ha_d.update()
        logs.update(g_logs)
        return logs

    def generator_step_loss(self, real: Tensor, y: Optional[Tensor], ctx: StepContext,
                            optimizers: Dict[str, torch.optim.Optimizer]) -> Tuple[Tensor, Dict[str, Tensor]]:
        n = real.shape[0]
        z, y_fake, fake = self._fake(n, real.device)
        return self.generator_loss(fake, y_fake, real, y, ctx)

    def after_discriminator_step(self) -> None:
        clip = self.config["clip_d"]
        if clip > 0:
            # WGAN (Arjovsky et al. 2017, Algorithm 1): clamp the critic's weights to [-c, c]
            # so it stays K-Lipschitz.
            with torch.no_grad():
                for p in self.parameters_of(self.discriminator_modules()):
                    p.clamp_(-clip, clip)

    def _check_labels(self, y: Optional[Tensor]) -> None:
        if self.conditional and y is None:
            raise ValueError(f"model {self.name!r} is conditional and needs labels, but the batch has none")

    # -- state beyond parameters --------------------------------------------------------------

    def extra_state_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self._ha_g is not None:
            out["historical_averaging"] = {"g": self._ha_g.state_dict(), "d": self._ha_d.state_dict()}
        return out

    def load_extra_state_dict(self, state: Dict[str, Any]) -> None:
        if self._ha_g is not None and "historical_averaging" in state:
            self._ha_g.load_state_dict(state["historical_averaging"]["g"])
            self._ha_d.load_state_dict(state["historical_averaging"]["d"])


def set_requires_grad(modules: Sequence[nn.Module], flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def _adam(params: List[nn.Parameter], lr: float, betas: Tuple[float, float], fused: Optional[bool]):
    if fused is None:
        fused = _fused_adam_available(params)
    if fused:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True if params and params[0].is_cuda else None)


def _fused_adam_available(params: List[nn.Parameter]) -> bool:
    if not params:
        return False
    device = params[0].device
    if device.type == "cuda":
        return True
    # torch added the fused CPU Adam in 2.4; try it rather than parse versions
    try:
        probe = nn.Parameter(torch.zeros(1, device=device))
        torch.optim.Adam([probe], fused=True)
        return all(p.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16) for p in params)
    except (RuntimeError, TypeError, ValueError):
        return False
