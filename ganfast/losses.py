"""Adversarial losses and regularisers.

Losses take the raw discriminator outputs (logits, or critic values for
Wasserstein and hinge) of any shape ``(B, ...)``: one value per sample
``(B,)`` / ``(B, 1)``, or a map of values per sample such as PatchGAN's
``(B, 1, H, W)`` (Isola et al. 2017, sec. 3.2: the loss is averaged over
every patch), in any floating dtype, and return a 0-d tensor averaged over
every value.  Arithmetic runs in float32
(bf16/fp16 outputs under autocast are upcast first), or in float64 when the
input is float64, so that tests can gradcheck the same code.

::

    import ganfast.losses as L
    d_loss = L.discriminator_loss("hinge", d(real), d(fake.detach()))
    g_loss = L.generator_loss("hinge", d(fake))
    d_loss = d_loss + 10.0 * L.gradient_penalty(d, real, fake)

Regularisers return the unweighted penalty; the caller multiplies by its
lambda (WGAN-GP) or gamma / 2 (R1, R2).

Nothing here checks for NaN or inf: a check such as ``torch.isfinite(x).all()``
must be read back on the host, which synchronises the device on every step.
Non-finite values propagate untouched, which is also what
``torch.amp.GradScaler`` relies on to detect an overflow and skip the step.
Argument checks read only shapes, dtypes and devices.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._dtypes import compute_dtype

Tensor = torch.Tensor

__all__ = [
    "names",
    "describe",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "r2_penalty",
    "InstanceNoise",
    "add_instance_noise",
    "feature_matching_loss",
    "HistoricalAveraging",
]


# --------------------------------------------------------------------------
# Adversarial losses
# --------------------------------------------------------------------------

def _bce_with_logits(x: Tensor, target: float) -> Tensor:
    # -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]
    #   = t * softplus(-x) + (1 - t) * softplus(x),
    # finite for every finite logit (log(sigmoid(x)) underflows to -inf for x << 0).
    loss = None
    if target != 0.0:
        loss = target * F.softplus(-x)
    if target != 1.0:
        rest = (1.0 - target) * F.softplus(x)
        loss = rest if loss is None else loss + rest
    return loss.mean()


def _d_minimax(real: Tensor, fake: Tensor, real_label: float, fake_label: float) -> Tensor:
    # Goodfellow et al. 2014, eq. 1: D maximises E log D(x) + E log(1 - D(G(z))),
    # i.e. minimises the binary cross-entropy with targets 1 (real) and 0 (fake);
    # Salimans et al. 2016 sec. 3.4: one-sided smoothing replaces the real target 1 by 0.9.
    return _bce_with_logits(real, real_label) + _bce_with_logits(fake, fake_label)


def _g_minimax(fake: Tensor) -> Tensor:
    # Goodfellow et al. 2014, eq. 1: G minimises E log(1 - sigmoid(f)) = -E softplus(f).
    # Saturates: its gradient vanishes where D confidently rejects the samples.
    return -F.softplus(fake).mean()


def _g_non_saturating(fake: Tensor) -> Tensor:
    # Goodfellow et al. 2014, sec. 3: G maximises E log D(G(z)) instead,
    # i.e. minimises E -log sigmoid(f) = E softplus(-f).
    return F.softplus(-fake).mean()


def _d_wasserstein(real: Tensor, fake: Tensor, real_label: float, fake_label: float) -> Tensor:
    # Arjovsky et al. 2017, eq. 3 (Kantorovich-Rubinstein dual): the critic maximises
    # E f(x) - E f(G(z)); Lipschitz continuity comes from clipping or a gradient penalty.
    return fake.mean() - real.mean()


def _g_critic(fake: Tensor) -> Tensor:
    # Arjovsky et al. 2017 (WGAN) and Lim & Ye 2017 / Miyato et al. 2018 (hinge):
    # G maximises the critic's value on its samples.
    return -fake.mean()


def _d_least_squares(real: Tensor, fake: Tensor, real_label: float, fake_label: float) -> Tensor:
    # Mao et al. 2017, eq. 2 with a = 0 (fake), b = 1 (real): 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2.
    return 0.5 * (real - real_label).square().mean() + 0.5 * (fake - fake_label).square().mean()


def _g_least_squares(fake: Tensor) -> Tensor:
    # Mao et al. 2017, eq. 2 with c = 1: 1/2 E (D(G(z)) - c)^2.
    return 0.5 * (fake - 1.0).square().mean()


def _d_hinge(real: Tensor, fake: Tensor, real_label: float, fake_label: float) -> Tensor:
    # Lim & Ye 2017 (Geometric GAN), Miyato et al. 2018 eq. 16-17:
    # E max(0, 1 - D(x)) + E max(0, 1 + D(G(z))).
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


@dataclasses.dataclass(frozen=True)
class _Loss:
    name: str
    description: str
    d_loss: Callable[[Tensor, Tensor, float, float], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    # Labels are targets of a classifier (minimax, non-saturating) or of a
    # regression (least squares); a critic (wasserstein, hinge) has none.
    labels: Optional[str]  # None, "probability" (in [0, 1]) or "any"


#: The one table the losses are looked up in; its order is the order of names().
_LOSSES: Tuple[_Loss, ...] = (
    _Loss("minimax", "saturating minimax GAN loss (Goodfellow et al. 2014, eq. 1)",
          _d_minimax, _g_minimax, "probability"),
    _Loss("non-saturating", "minimax D loss, non-saturating G loss -log D(G(z)) (Goodfellow et al. 2014, sec. 3)",
          _d_minimax, _g_non_saturating, "probability"),
    _Loss("wasserstein", "Wasserstein critic loss (Arjovsky et al. 2017, WGAN); pair with a gradient penalty",
          _d_wasserstein, _g_critic, None),
    _Loss("least-squares", "least-squares loss, a-b-c = 0-1-1 (Mao et al. 2017, LSGAN)",
          _d_least_squares, _g_least_squares, "any"),
    _Loss("hinge", "hinge loss (Lim & Ye 2017, Geometric GAN; Miyato et al. 2018, SN-GAN)",
          _d_hinge, _g_critic, None),
)
_BY_NAME: Dict[str, _Loss] = {loss.name: loss for loss in _LOSSES}

#: Regularisers, as listed by describe() (and `ganfast list`).
_REGULARISERS: Tuple[Tuple[str, str], ...] = (
    ("gradient-penalty", "WGAN-GP penalty (||grad D(x_hat)|| - 1)^2 on interpolates (Gulrajani et al. 2017, eq. 3)"),
    ("r1", "R1 penalty E ||grad D(x)||^2 on real data (Mescheder et al. 2018, eq. 9)"),
    ("r2", "R2 penalty E ||grad D(x)||^2 on generated data (Mescheder et al. 2018, eq. 10)"),
    ("instance-noise", "annealed Gaussian noise on D's inputs (Sonderby et al. 2016; Arjovsky & Bottou 2017)"),
    ("feature-matching", "||E f(x) - E f(G(z))||^2 on D's features (Salimans et al. 2016, sec. 3.1)"),
    ("historical-averaging", "||theta - mean of past theta||^2 (Salimans et al. 2016, sec. 3.3)"),
)


def names() -> List[str]:
    """Names of the adversarial losses, for ``kind``."""
    return [loss.name for loss in _LOSSES]


def describe() -> List[Tuple[str, str]]:
    """``(name, one-line description)`` of every loss, then every regulariser."""
    return [(loss.name, loss.description) for loss in _LOSSES] + list(_REGULARISERS)


def _lookup(kind) -> _Loss:
    loss = _BY_NAME.get(kind) if isinstance(kind, str) else None
    if loss is None:
        raise ValueError(f"kind must be one of {', '.join(repr(n) for n in names())}; got {kind!r}")
    return loss


def _batch(t, name: str, what: str) -> Tensor:
    """``t``: a floating-point tensor ``(B, ...)`` with at least one element (``what`` says what it holds).

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: 0-d, or empty.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor ({what}); got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {t.dtype}")
    if t.dim() == 0:
        raise ValueError(f"{name} must have shape (B, ...) with a batch dimension ({what}); got a 0-d tensor")
    if t.numel() == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(t.shape)}); the mean over it is undefined")
    return t


def _check_output(t, name: str) -> Tensor:
    """A discriminator output of shape (B, ...), flattened to one dimension in the compute dtype."""
    t = _batch(t, name, "the raw discriminator output: one value or one map of values per sample")
    return t.reshape(-1).to(compute_dtype(t.dtype))


def _check_label(value, name: str, kind: _Loss, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float; got {type(value).__name__}")
    value = float(value)
    if kind.labels is None:
        if value != default:
            raise ValueError(f"{name}={value} is meaningless for the {kind.name!r} loss, which has no labels; "
                             f"leave it at {default} (label smoothing applies to minimax, non-saturating "
                             f"and least-squares)")
    elif not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    elif kind.labels == "probability" and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a target probability for the {kind.name!r} loss and must lie in [0, 1]; "
                         f"got {value}")
    return value


def discriminator_loss(kind: str, real_out: Tensor, fake_out: Tensor, *,
                       real_label: float = 1.0, fake_label: float = 0.0) -> Tensor:
    """The discriminator's (critic's) loss, to minimise.

    Args:
        kind: one of :func:`names`.
        real_out: D's raw outputs on real data, shape ``(B, ...)``: ``(B,)``, ``(B, 1)``
            or a PatchGAN map ``(B, 1, H, W)``; the loss averages over every value.
        fake_out: D's raw outputs on generated data (detach them from G), any ``(B', ...)``.
        real_label, fake_label: targets for minimax / non-saturating (in [0, 1])
            and least-squares (b and a); ``real_label=0.9`` is one-sided label
            smoothing (Salimans et al. 2016).  Wasserstein and hinge have no
            labels and refuse anything but the defaults.

    Returns:
        a 0-d float32 tensor (float64 when an input is float64).

    Raises:
        ValueError: unknown ``kind``, an empty or 0-d output, outputs on two
            devices, labels outside their range (or given to a loss without labels).
        TypeError: a non-tensor or non-floating output, a non-float label.
    """
    loss = _lookup(kind)
    real = _check_output(real_out, "real_out")
    fake = _check_output(fake_out, "fake_out")
    if real.device != fake.device:
        raise ValueError(f"real_out and fake_out must be on the same device; got {real.device} and {fake.device}")
    real_label = _check_label(real_label, "real_label", loss, 1.0)
    fake_label = _check_label(fake_label, "fake_label", loss, 0.0)
    return loss.d_loss(real, fake, real_label, fake_label)


def generator_loss(kind: str, fake_out: Tensor, real_out: Optional[Tensor] = None) -> Tensor:
    """The generator's loss, to minimise.

    Args:
        kind: one of :func:`names`.
        fake_out: D's raw outputs on generated data (not detached), ``(B, ...)``.
        real_out: D's outputs on real data; none of the current losses uses
            it (it is there for relativistic losses), but it is checked when given.

    Returns:
        a 0-d float32 tensor (float64 when ``fake_out`` is float64).
    """
    loss = _lookup(kind)
    fake = _check_output(fake_out, "fake_out")
    if real_out is not None:
        _check_output(real_out, "real_out")
    return loss.g_loss(fake)


# --------------------------------------------------------------------------
# Gradient penalties
# --------------------------------------------------------------------------

def _check_batch(x, name: str) -> Tensor:
    return _batch(x, name, "a batch of D's inputs")


def _uniform(n: int, like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    # Drawn in float32 on the generator's own device, so one seed gives the
    # same draw whatever the dtype, and a CPU generator can drive a GPU run.
    device = like.device if generator is None else generator.device
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float32)
    return u.to(device=like.device, dtype=like.dtype)


# The largest gradient seed a penalty gives each critic output under a GradScaler: float16's
# largest finite value is 65504, 2^8 above this (see _input_grads).
_PENALTY_SEED_MAX = 2.0 ** 8


def _input_grads(critic: Callable[[Tensor], Tensor], x: Tensor, scaler, what: str) -> Tensor:
    """d sum_i D(x_i) / dx as a (B, numel per sample) tensor in the compute dtype, differentiable.

    A critic with a map of outputs per sample (PatchGAN) is summed over the
    map: the penalty is on the gradient of each sample's total score.
    The sum over the batch gives each sample's own gradient as long as the
    critic treats samples independently.  With batch statistics (BatchNorm in
    training mode) the samples interact and the result is the gradient of the
    batch's sum, as every GAN codebase computes it; Gulrajani et al. 2017
    (sec. 4) advise against BatchNorm in the critic for this reason.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable (a module or a function of a batch); got {type(critic).__name__}")
    out = critic(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{what}: critic must return a tensor; got {type(out).__name__}")
    batch = x.shape[0]
    if out.dim() == 0 or out.shape[0] != batch:
        raise ValueError(f"{what}: critic output must have shape ({batch}, ...), one value or one map of values "
                         f"per sample; got {tuple(out.shape)} (wrap a conditional critic in a lambda that passes "
                         f"its labels)")
    if not out.requires_grad:
        raise RuntimeError(f"{what}: the critic's output does not depend on its input through autograd "
                           f"(called under torch.no_grad(), or the critic detaches its input?)")
    total = out.to(compute_dtype(out.dtype)).sum()
    scale = None
    if scaler is not None and scaler.is_enabled():
        # PyTorch AMP examples, "Gradient penalty": differentiate a scaled
        # output so that half-precision gradients inside the critic do not
        # underflow, then unscale.  The seed is the scaler's scale capped at
        # _PENALTY_SEED_MAX: the full scale (65536 at first) is above float16's
        # largest value (65504), so each output's gradient would be inf and the
        # penalty NaN for every batch size.  The cap leaves 2^8 of headroom for
        # the critic's own gain and still lifts small input gradients 2^8 away
        # from float16's subnormals.  scaler.scale() of a one gives the scale
        # as a device tensor (get_scale() would synchronise every step).  An
        # overflow inside the critic still shows as inf in the parameters'
        # gradients, where the scaler sees it and skips the step.
        one = torch.ones((), dtype=torch.float32, device=total.device)
        scale = scaler.scale(one).clamp(max=_PENALTY_SEED_MAX).to(total.dtype)
        total = total * scale
    (grad,) = torch.autograd.grad(total, x, create_graph=True, allow_unused=True)
    if grad is None:  # an output independent of x: the gradient is zero
        grad = torch.zeros_like(x)
    grad = grad.reshape(batch, -1).to(compute_dtype(grad.dtype))
    if scale is not None:
        grad = grad / scale.to(grad.dtype)
    return grad


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, center: float = 1.0,
                     generator: Optional[torch.Generator] = None, scaler=None) -> Tensor:
    """WGAN-GP: ``E (||grad_x D(x_hat)||_2 - center)^2``, unweighted.

    Gulrajani et al. 2017, eq. 3 and Algorithm 1: ``x_hat = eps * x + (1 - eps) * G(z)``
    with ``eps ~ U[0, 1]`` per sample; the caller multiplies by lambda (10 in the paper).
    ``center=0`` gives the zero-centred variant (Thanh-Tung et al. 2019).

    Args:
        critic: maps a batch to ``(B, ...)`` (one value or a map of values per
            sample; wrap a conditional critic in a lambda that supplies its labels).  Its parameters get
            gradients through the penalty (double backward).
        real, fake: batches of the same shape and device; both are detached,
            so no gradient reaches the generator.  Same dtype, except that a
            bfloat16 / float16 batch (a generator's output under autocast)
            may meet a float32 one: the interpolation is then in float32.
        center: the target gradient norm.
        generator: draws ``eps``; on its own device (then moved to ``real``'s),
            default ``real``'s device and the global generator.
        scaler: an optional ``torch.amp.GradScaler``; when enabled the
            gradient is taken of the output scaled by ``min(scale, 2^8)`` and
            unscaled (PyTorch AMP recipe, capped: the default initial scale
            65536 would make each float16 output's gradient inf).  The scaler
            is neither stepped nor updated.

    Returns:
        a 0-d float32 tensor (float64 for float64 inputs).

    The critic runs once more on ``x_hat``: BatchNorm layers in training mode
    update their running statistics on that batch too.
    """
    real = _check_batch(real, "real")
    fake = _check_batch(fake, "fake")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape; got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.device != fake.device:
        raise ValueError(f"real and fake must be on the same device; got {real.device} and {fake.device}")
    if real.dtype != fake.dtype:
        half = (torch.bfloat16, torch.float16)
        if not (real.dtype in half or fake.dtype in half):
            raise ValueError(f"real and fake must have the same dtype (or one of them bfloat16/float16, as autocast "
                             f"makes it); got {real.dtype} and {fake.dtype}")
        wide = torch.promote_types(real.dtype, fake.dtype)
        real, fake = real.to(wide), fake.to(wide)
    center = float(center)
    batch = real.shape[0]
    eps = _uniform(batch, real, generator).reshape((batch,) + (1,) * (real.dim() - 1))
    real, fake = real.detach(), fake.detach()
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad = _input_grads(critic, x_hat, scaler, "gradient_penalty")
    norm = torch.linalg.vector_norm(grad, dim=1)
    return (norm - center).square().mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, *, scaler=None) -> Tensor:
    """R1: ``E_x ||grad_x D(x)||^2`` on real data, unweighted (the caller applies gamma / 2).

    Mescheder et al. 2018, eq. 9.  ``real`` is detached.  ``scaler`` as in
    :func:`gradient_penalty`.  Returns a 0-d float32 tensor (float64 for float64 inputs).
    """
    real = _check_batch(real, "real").detach().requires_grad_(True)
    grad = _input_grads(critic, real, scaler, "r1_penalty")
    return grad.square().sum(dim=1).mean()


def r2_penalty(critic: Callable[[Tensor], Tensor], fake: Tensor, *, scaler=None) -> Tensor:
    """R2: ``E_z ||grad_x D(G(z))||^2`` on generated data, unweighted (the caller applies gamma / 2).

    Mescheder et al. 2018, eq. 10.  ``fake`` is detached.  Returns a 0-d
    float32 tensor (float64 for float64 inputs).
    """
    fake = _check_batch(fake, "fake").detach().requires_grad_(True)
    grad = _input_grads(critic, fake, scaler, "r2_penalty")
    return grad.square().sum(dim=1).mean()


# --------------------------------------------------------------------------
# Instance noise
# --------------------------------------------------------------------------

_SCHEDULES = ("linear", "cosine", "constant")


class InstanceNoise:
    """Gaussian noise on the discriminator's real and fake inputs, annealed to zero.

    Sonderby et al. 2016 (sec. 3.1) and Arjovsky & Bottou 2017 (sec. 3.1):
    adding ``N(0, sigma^2)`` to both distributions makes their supports
    overlap, so D's gradient stays informative; sigma is annealed so that the
    model finally fits the noiseless data.

    Schedules, for ``step < anneal_steps`` (``sigma_at`` is 0 from ``anneal_steps`` on):
        ``linear``: ``sigma * (1 - step / anneal_steps)``;
        ``cosine``: ``sigma * (1 + cos(pi * step / anneal_steps)) / 2``;
        ``constant``: ``sigma``, then switched off.

    Call it on the real batch and on the fake batch alike::

        noise = InstanceNoise(0.1, anneal_steps=10_000)
        d_real, d_fake = D(noise(real, step)), D(noise(fake, step))
    """

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 10_000, schedule: str = "linear") -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise TypeError(f"sigma must be a float; got {type(sigma).__name__}")
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite standard deviation >= 0; got {sigma}")
        if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int):
            raise TypeError(f"anneal_steps must be an int; got {type(anneal_steps).__name__}")
        if anneal_steps <= 0:
            raise ValueError(f"anneal_steps must be a positive number of steps; got {anneal_steps}")
        if schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(repr(s) for s in _SCHEDULES)}; got {schedule!r}")
        self.sigma = float(sigma)
        self.anneal_steps = anneal_steps
        self.schedule = schedule

    def sigma_at(self, step: int) -> float:
        """The noise standard deviation at training step ``step`` (>= 0)."""
        if isinstance(step, bool):
            raise TypeError("step must be an int; got bool")
        try:
            step = operator.index(step)
        except TypeError:
            raise TypeError(f"step must be an int; got {type(step).__name__}") from None
        if step < 0:
            raise ValueError(f"step must be >= 0; got {step}")
        if step >= self.anneal_steps:
            return 0.0
        progress = step / self.anneal_steps
        if self.schedule == "linear":
            return self.sigma * (1.0 - progress)
        if self.schedule == "cosine":
            return self.sigma * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.sigma

    def __call__(self, x: Tensor, step: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """``x + sigma_at(step) * N(0, 1)``; ``x`` itself (the same object) once sigma is 0.

        The noise is drawn in ``x``'s dtype, on ``generator``'s device when
        one is given (then moved to ``x``'s), and is a constant: gradients
        flow to ``x`` unchanged.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point torch.Tensor; got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        return add_instance_noise(x, self.sigma_at(step), generator)

    def __repr__(self) -> str:
        return f"InstanceNoise(sigma={self.sigma}, anneal_steps={self.anneal_steps}, schedule={self.schedule!r})"


def add_instance_noise(x: Tensor, sigma: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """``x + sigma * N(0, 1)`` (instance noise at a given sigma); ``x`` itself when sigma is 0.

    The noise is drawn in ``x``'s dtype, on ``generator``'s device when one
    is given (then moved to ``x``'s), and is a constant: gradients flow to
    ``x`` unchanged.  :class:`InstanceNoise` anneals sigma over the steps; a
    training method gets it from its ``instance_noise`` schedule instead.
    """
    if sigma == 0.0:
        return x
    device = x.device if generator is None else generator.device
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return x + sigma * noise


# --------------------------------------------------------------------------
# Salimans et al. 2016: feature matching and historical averaging
# --------------------------------------------------------------------------

def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """``|| mean_batch f(x) - mean_batch f(G(z)) ||_2^2`` (Salimans et al. 2016, sec. 3.1).

    ``f`` is an intermediate layer of D; its features are flattened per
    sample, so shapes ``(B, ...)`` with the same trailing shape (batch sizes
    may differ).  The real statistics are a target: detached.  A sum of
    squares over features, as in the paper (OpenAI's code took the mean,
    which is this divided by the feature count).  Returns a 0-d float32
    tensor (float64 for float64 inputs).
    """
    real = _check_batch(real_features, "real_features")
    fake = _check_batch(fake_features, "fake_features")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real_features and fake_features must have the same shape per sample; "
                         f"got {tuple(real.shape[1:])} and {tuple(fake.shape[1:])}")
    if real.device != fake.device:
        raise ValueError(f"real_features and fake_features must be on the same device; "
                         f"got {real.device} and {fake.device}")
    real_mean = real.detach().to(compute_dtype(real.dtype)).reshape(real.shape[0], -1).mean(dim=0)
    fake_mean = fake.to(compute_dtype(fake.dtype)).reshape(fake.shape[0], -1).mean(dim=0)
    return (real_mean - fake_mean).square().sum()


class HistoricalAveraging:
    """``sum_p || theta_p - (1/t) sum_i theta_p[i] ||^2`` over a module's parameters.

    Salimans et al. 2016, sec. 3.3.  The running mean is kept in float32
    (float64 for float64 parameters), starting from the parameters at
    construction (``t = 1``), so the penalty is 0 until the first
    :meth:`update`.  Call :meth:`update` after each optimiser step; add
    ``weight * penalty()`` to the loss before the next.  Parameters that do not
    require a gradient at construction are left out.

    :meth:`state_dict` holds ``"count"`` (an int) and ``"mean.<parameter name>"``
    tensors, so it can be saved with a checkpoint and loaded with
    ``torch.load(..., weights_only=True)``.
    """

    def __init__(self, module: nn.Module) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module; got {type(module).__name__}")
        self._params: Dict[str, nn.Parameter] = {
            name: p for name, p in module.named_parameters() if p.requires_grad
        }
        if not self._params:
            raise ValueError("module has no parameters that require a gradient; nothing to average")
        with torch.no_grad():
            self._means: Dict[str, Tensor] = {
                name: p.detach().to(compute_dtype(p.dtype)).clone() for name, p in self._params.items()
            }
        self.count = 1

    def _mean(self, name: str, p: Tensor) -> Tensor:
        mean = self._means[name]
        if mean.device != p.device:  # the module was moved after construction
            mean = self._means[name] = mean.to(p.device)
        return mean

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameters into the running mean: ``m += (theta - m) / t``."""
        self.count += 1
        weight = 1.0 / self.count
        for name, p in self._params.items():
            mean = self._mean(name, p)
            mean.lerp_(p.detach().to(mean.dtype), weight)

    def penalty(self) -> Tensor:
        """The unweighted penalty, differentiable w.r.t. the parameters (the mean is a constant)."""
        total = None
        for name, p in self._params.items():
            mean = self._mean(name, p)
            term = (p.to(mean.dtype) - mean).square().sum()
            total = term if total is None else total + term
        return total

    def state_dict(self) -> Dict[str, object]:
        state: Dict[str, object] = {"count": self.count}
        for name, mean in self._means.items():
            state[f"mean.{name}"] = mean.clone()
        return state

    def load_state_dict(self, state: Dict[str, object]) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from HistoricalAveraging.state_dict(); got {type(state).__name__}")
        expected = {"count"} | {f"mean.{name}" for name in self._means}
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise KeyError(f"state does not match this module's parameters: missing {sorted(missing)}, "
                           f"unexpected {sorted(unexpected)}")
        count = state["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"state['count'] must be an int >= 1; got {count!r}")
        for name, mean in self._means.items():
            value = state[f"mean.{name}"]
            if not isinstance(value, torch.Tensor) or value.shape != mean.shape:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"state['mean.{name}'] must be a tensor of shape {tuple(mean.shape)}; got {got}")
        with torch.no_grad():
            for name, mean in self._means.items():
                mean.copy_(state[f"mean.{name}"])
        self.count = count
