"""Semantic image inpainting by searching a trained generator's latent space, and ``ganfast inpaint``.

Yeh, Chen, Lim, Schwing, Hasegawa-Johnson & Do 2017, "Semantic Image
Inpainting with Deep Generative Models" (CVPR).  With ``y`` the corrupted
image and ``M`` its binary mask (1: known pixel, 0: the hole), the closest
encoding

    z_hat = argmin_z  L_c(z | y, M) + lambda * L_p(z)                       (eq. 2)

is found by back-propagation to the input (Adam on z, several random starts),
where

    W_i = sum_{j in N(i)} (1 - M_j) / |N(i)|   if M_i != 0, else 0        (eq. 3)
    L_c(z | y, M) = || W . (G(z) - y) ||_1                                 (eq. 3)
    L_p(z) = log(1 - D(G(z)))                                              (eq. 4)

``N(i)`` the 7x7 window about pixel ``i`` (cut at the image border, so
``|N(i)|`` counts the pixels of the window inside the image).  The fill
``G(z_hat)`` is then Poisson-blended into ``y``:

    x_hat = argmin_x || grad x - grad G(z_hat) ||_2^2  s.t.  x_i = y_i where M_i = 1   (eq. 5)

with OpenCV's solver (``cv2.seamlessClone``; imported only when blending).

Generators here draw z from N(0, I), not the paper's U[-1, 1]^d, so the
paper's "clip z to [-1, 1] after each step" has no direct counterpart.  The
default (``z_constraint="sphere"``) projects z back onto the sphere of
radius sqrt(d) after each step: N(0, I) puts nearly all its mass in a thin
shell there (||z|| = sqrt(d) +- 0.7), the region G was trained on, and the
projection changes nothing for generators that normalise z themselves
(ProGAN's pixel norm, StyleGAN's mapping network).  ``"ball"`` only pulls
back codes that leave the ball of that radius; ``"none"`` leaves z free.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InpaintResult", "contextual_weights", "center_mask", "random_mask", "inpaint", "poisson_blend",
           "check_inpaintable", "add_inpaint_arguments", "run_inpaint"]

#: Yeh et al. 2017, sec. 4: lambda = 0.003 weighs the prior loss
PRIOR_WEIGHT = 0.003
#: Yeh et al. 2017, sec. 3.2: the 7x7 neighbourhood of the weighted mask
WINDOW = 7
#: Yeh et al. 2017, sec. 4: 1500 iterations of back-propagation to the input
STEPS = 1500
#: Adam's learning rate on z; the paper does not give one: the authors' released code
#: (moodoki/semantic_image_inpainting, src/inpaint.py) steps z at lr 0.01
LR = 0.01
#: random starts per image (the released code optimises a batch of 64 z's; 8 keeps a CPU busy enough)
RESTARTS = 8
#: Yeh et al. 2017, sec. 4: the "complete random" masks miss 80 % of the pixels
RANDOM_MISSING = 0.8
#: losses whose D outputs a probability's logit: the paper's log(1 - D(G(z))) applies
_PROBABILITY_LOSSES = ("minimax", "non-saturating")
#: how D's outputs read for methods without a ``loss`` attribute (their training code's G loss)
_LOSS_OF = {"progan": "wasserstein", "stylegan": "non-saturating", "stylegan2": "non-saturating"}
#: OpenCV's seamlessClone erodes the mask it is given by 3 iterations of a 3x3 kernel before taking the
#: source's gradients; growing the hole by one more pixel than that puts every edge that touches the
#: hole under G's gradients (eq. 5's guidance field), and the pad keeps the solver's rectangle inside.
_CV_ERODE = 3
_PAD = _CV_ERODE + 3


@dataclass
class InpaintResult:
    """What :func:`inpaint` returns (N images, R restarts each, T steps; tensors on the model's device).

    Attributes:
        blended: ``(N, C, H, W)`` float32 in [-1, 1]: G's best fill Poisson-blended into the image (eq. 5), the
            known pixels copied from the input; the plain composite ``M y + (1 - M) G(z)`` with ``blend=False``.
        raw: ``(N, C, H, W)`` float32: ``G(z)`` of the chosen restart, unblended.
        latent: ``(N, d)`` float32: the chosen z's.
        loss: ``(N, R)`` float32: each restart's final loss (eq. 2).
        best: ``(N,)`` int64: the restart with the lowest final loss.
        history: ``(T + 1, N, R)`` float32: the loss at each iterate, the start and the final one included.
        contextual: ``(N,)`` float32 and ``prior``: ``(N,)`` float32: the chosen restarts' final terms of eq. 2.
    """

    blended: Tensor
    raw: Tensor
    latent: Tensor
    loss: Tensor
    best: Tensor
    history: Tensor
    contextual: Tensor
    prior: Tensor


# -- masks -----------------------------------------------------------------------------------------------------


def center_mask(size: int) -> Tensor:
    """``(size, size)`` float32 mask, 1 (known) except the central square ``[size/4, 3 size/4)`` (0: the hole).

    The central block of Yeh et al. 2017, sec. 4, at the authors' released code's scale (0.25 each side).
    """
    lo, hi = int(size * 0.25), int(size * 0.75)
    m = torch.ones(size, size)
    m[lo:hi, lo:hi] = 0
    return m


def random_mask(size: int, missing: float = RANDOM_MISSING, generator: Optional[torch.Generator] = None) -> Tensor:
    """``(size, size)`` float32 mask with each pixel missing (0) with probability ``missing`` (default 0.8,
    Yeh et al. 2017, sec. 4), else known (1); drawn with ``generator``."""
    if not 0.0 < missing < 1.0:
        raise ValueError(f"missing must be in (0, 1); got {missing}")
    return (torch.rand(size, size, generator=generator) >= missing).float()


def contextual_weights(mask: Tensor, window: int = WINDOW) -> Tensor:
    """The weighted mask W of Yeh et al. 2017, eq. 3.

    ``W_i = sum_{j in N(i)} (1 - M_j) / |N(i)|`` for a known pixel ``i`` (``M_i = 1``), 0 for an unknown one:
    known pixels near the hole weigh most, those far from it nothing.  ``N(i)`` is the ``window`` x
    ``window`` square centred on ``i``, cut at the image border (``|N(i)|`` counts its pixels inside).

    Args:
        mask: ``(..., H, W)``, bool or float with values 0 and 1 (1: known).
        window: the neighbourhood's side, odd (default 7, the paper's).

    Returns:
        float32 (float64 for a float64 mask) of ``mask``'s shape, in [0, 1).

    Raises:
        ValueError: ``window`` not a positive odd int, a mask of fewer than 2 dimensions or with values other
            than 0 and 1.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd int; got {window!r}")
    if mask.dim() < 2:
        raise ValueError(f"mask must be (..., H, W); got shape {tuple(mask.shape)}")
    m = mask.to(torch.float64 if mask.dtype == torch.float64 else torch.float32)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must hold only 0 (unknown) and 1 (known)")
    flat = m.reshape(-1, 1, *m.shape[-2:])
    # count_include_pad=False divides by the window's pixels inside the image: |N(i)| at the border
    share = F.avg_pool2d(1.0 - flat, window, stride=1, padding=window // 2, count_include_pad=False)
    return (share * flat).reshape(m.shape)


# -- the model -------------------------------------------------------------------------------------------------


def check_inpaintable(model: nn.Module) -> None:
    """Raise ValueError (one line) unless ``model`` is an unconditional ganfast method that samples images.

    Refused: translation models (pix2pix, cyclegan, recyclegan), conditional ones (cgan, acgan: a sample needs a
    label), InfoGAN (its latent holds one-hot categorical codes that a gradient step on z would not keep one-hot),
    point models (samples are not images), and models without a discriminator ``D`` (the prior loss).
    """
    from ..models.method import Method

    name = getattr(model, "name", type(model).__name__)
    if not isinstance(model, Method):
        raise ValueError(f"inpaint needs a ganfast method (ganfast.models.build or a checkpoint); got "
                         f"{type(model).__name__}")
    if type(model).translate is not Method.translate:
        raise ValueError(f"model {name!r} translates images rather than sampling them from a latent code: "
                         f"inpainting searches an unconditional generator's latent space")
    if model.sample_conditions:
        raise ValueError(f"model {name!r} is conditional (its samples need a {model.sample_conditions[0]}): "
                         f"inpaint works with unconditional image models")
    if getattr(model, "family", "") == "conditional":
        raise ValueError(f"model {name!r} is conditional (its latent holds categorical codes): inpaint works "
                         f"with unconditional image models")
    shape = getattr(model, "sample_shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"model {name!r} does not sample images (its samples have shape {shape}): inpaint needs "
                         f"an image model")
    if "D" not in model.network_names:
        raise ValueError(f"model {name!r} has no discriminator D for the prior loss (Yeh et al. 2017, eq. 4)")


def _loss_kind(model: nn.Module) -> str:
    kind = getattr(model, "loss", None)
    if isinstance(kind, str):
        return kind
    if model.name in _LOSS_OF:
        return _LOSS_OF[model.name]
    raise ValueError(f"model {model.name!r} does not say how its D's outputs read (no loss attribute): pass "
                     f"prior_weight=0")


def _prior(model: nn.Module, n: int, generator: Optional[torch.Generator], device: torch.device
           ) -> Callable[[Tensor], Tensor]:
    """``x (B, C, H, W) -> (B,)``: each image's prior loss, eq. 4 for a probability D.

    A D trained with the minimax / non-saturating loss outputs the logit of a probability: the term is the
    paper's ``log(1 - D(G(z)))`` (ganfast.losses' minimax G loss, row by row).  A critic (Wasserstein, hinge)
    or a least-squares D has no probability: the term is the method's own G loss on the row, which like eq. 4
    falls as D rates the image more real.  PacGAN's D judges packs of m images: each candidate is packed with
    m - 1 fixed samples of G, as a fake pack is in training.
    """
    from .. import losses as L
    from ..models.pacgan import PackedDiscriminator

    kind = _loss_kind(model)
    kind = "minimax" if kind in _PROBABILITY_LOSSES else kind
    d = model.critic(None) if hasattr(model, "critic") else model.net("D")
    packed = model.net("D")
    m = packed.m if isinstance(packed, PackedDiscriminator) else 1
    fillers = None
    if m > 1:
        with torch.no_grad():
            z = model.sample_inputs(n * (m - 1), generator=generator)["latent"].to(device)
            fillers = model.sample(latent=z).view(n, m - 1, *model.sample_shape)

    def prior(x: Tensor) -> Tensor:
        if fillers is not None:
            x = torch.cat([x[:, None], fillers[: len(x)]], 1).flatten(0, 1)
        out = d(x).reshape(len(x) // m, -1).float().mean(1)
        return torch.stack([L.generator_loss(kind, out[i:i + 1]) for i in range(len(out))])

    return prior


def _project(z: Tensor, constraint: str) -> Tensor:
    radius = math.sqrt(z.shape[1])
    norm = z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if constraint == "sphere":
        return z * (radius / norm)
    if constraint == "ball":
        return z * (radius / norm).clamp(max=1.0)
    return z


# -- the search ------------------------------------------------------------------------------------------------


def inpaint(model: nn.Module, image: Tensor, mask: Tensor, *, steps: int = STEPS, lr: float = LR,
            prior_weight: float = PRIOR_WEIGHT, restarts: int = RESTARTS, window: int = WINDOW,
            z_constraint: str = "sphere", blend: bool = True, generator: Optional[torch.Generator] = None,
            networks: Optional[Mapping[str, nn.Module]] = None) -> InpaintResult:
    """Fill the holes of ``image`` with a trained unconditional generator (Yeh et al. 2017, eq. 2-5).

    Each image gets ``restarts`` codes z drawn from the model's prior (``model.sample_inputs``), each moved by
    ``steps`` Adam steps on ``L_c + prior_weight * L_p`` (eq. 2; the contextual loss a sum over pixels and
    channels, images in [-1, 1] as G's output) and projected after each step (``z_constraint``, see the module
    docstring).  The restart with the lowest final loss is kept, and its ``G(z)`` blended into the image (eq. 5)
    with OpenCV.  The model is run in eval mode (BatchNorm on its running statistics) and restored after; its
    parameters get no gradients.  D's batch-coupling layers (minibatch stddev) see the candidates as one batch.

    Args:
        model: an unconditional image method (see :func:`check_inpaintable`), e.g. from a checkpoint.
        image: ``(C, H, W)`` or ``(N, C, H, W)`` float in [-1, 1], the model's sample shape; the values in the
            holes are never read.
        mask: ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``, bool or 0/1 float, 1 where the pixel is known; one
            mask serves every image.  Each mask needs a known pixel and a missing one.
        steps: Adam steps (default 1500, the paper's sec. 4).
        lr: Adam's learning rate (default 0.01, the authors' released code).
        prior_weight: lambda of eq. 2 (default 0.003, the paper's); 0 drops the prior.
        restarts: random starts per image (default 8).
        window: the weighted mask's neighbourhood (default 7, the paper's sec. 3.2).
        z_constraint: ``"sphere"`` (default), ``"ball"`` or ``"none"``.
        blend: Poisson blending (needs opencv-python-headless); False: the composite ``M y + (1 - M) G(z)``.
        generator: draws the starting codes (default: torch's global RNG).
        networks: replaces networks (e.g. ``{"G": ema_copy}``), as :meth:`~ganfast.models.Method.sample` takes.

    Returns:
        an :class:`InpaintResult` (images 3-d in, still ``(1, C, H, W)`` out).

    Raises:
        ValueError: a model :func:`check_inpaintable` refuses; an image not ``(N, C, H, W)`` of the model's
            sample shape or not finite; a mask of another size or count, with values other than 0/1, or with no
            hole or nothing known; a bad ``steps``, ``lr``, ``prior_weight``, ``restarts``, ``window`` or
            ``z_constraint``.
        ImportError: ``blend`` without OpenCV (``pip install opencv-python-headless``).
    """
    check_inpaintable(model)
    for label, value, ok in (("steps", steps, isinstance(steps, int) and steps >= 1),
                             ("restarts", restarts, isinstance(restarts, int) and restarts >= 1),
                             ("lr", lr, math.isfinite(lr) and lr > 0),
                             ("prior_weight", prior_weight, math.isfinite(prior_weight) and prior_weight >= 0)):
        if isinstance(value, bool) or not ok:
            raise ValueError(f"{label} must be {'a positive int' if label in ('steps', 'restarts') else 'positive'}"
                             f"{' or 0' if label == 'prior_weight' else ''}; got {value!r}")
    if z_constraint not in ("sphere", "ball", "none"):
        raise ValueError(f"z_constraint must be 'sphere', 'ball' or 'none'; got {z_constraint!r}")
    shape = tuple(int(s) for s in model.sample_shape)
    x = image[None] if image.dim() == 3 else image
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"image must be (C, H, W) or (N, C, H, W) with (C, H, W) = {shape}, the model's sample "
                         f"shape; got {tuple(image.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("image holds NaN or inf")
    n = x.shape[0]
    m = mask
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    m = m[None] if m.dim() == 2 else m
    if m.dim() != 3 or tuple(m.shape[1:]) != shape[1:] or m.shape[0] not in (1, n):
        raise ValueError(f"mask must be (H, W), (N, H, W) or (N, 1, H, W) with H, W = {shape[1:]} and N = 1 or "
                         f"{n}; got {tuple(mask.shape)}")
    m = m.float().expand(n, -1, -1)
    weights = contextual_weights(m, window)  # checks 0/1
    known = m.flatten(1).sum(1)
    if bool((known == 0).any()):
        raise ValueError("the mask has no known pixel: nothing to match (Yeh et al.'s contextual loss is empty)")
    if bool((known == m[0].numel()).any()):
        raise ValueError("the mask has no hole (no pixel is 0): nothing to inpaint")

    G = model.net("G", networks)
    device = next(G.parameters()).device
    x = x.to(device=device, dtype=torch.float32)
    m, weights = m.to(device), weights.to(device)
    y = x.repeat_interleave(restarts, 0)
    w = weights[:, None].repeat_interleave(restarts, 0)
    was_training = model.training
    model.eval()
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        prior = _prior(model, n * restarts, generator, device) if prior_weight > 0 else None

        def losses(z: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
            g = model.sample(latent=z, networks=networks)
            contextual = (w * (g - y)).abs().flatten(1).sum(1)  # eq. 3
            p = prior(g) if prior is not None else torch.zeros_like(contextual)  # eq. 4
            return contextual + prior_weight * p, contextual, p, g  # eq. 2

        z0 = model.sample_inputs(n * restarts, generator=generator)["latent"].to(device=device, dtype=torch.float32)
        z = _project(z0, z_constraint).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        history = torch.empty(steps + 1, n * restarts, device=device)
        for t in range(steps):
            loss = losses(z)[0]
            history[t] = loss.detach()
            # each candidate's loss depends on its own z only, so the sum's gradient is each one's own
            z.grad, = torch.autograd.grad(loss.sum(), z)
            opt.step()
            with torch.no_grad():
                z.copy_(_project(z, z_constraint))
        with torch.no_grad():
            final, contextual, p, g = losses(z)
    finally:
        for p_, flag in flags:
            p_.requires_grad_(flag)
        model.train(was_training)
    history[steps] = final
    final = final.view(n, restarts)
    best = final.argmin(1)
    pick = torch.arange(n, device=device) * restarts + best
    raw = g[pick]
    mk = m[:, None]
    blended = poisson_blend(x, raw, m) if blend else mk * x + (1 - mk) * raw
    return InpaintResult(blended=blended, raw=raw, latent=z.detach()[pick], loss=final, best=best,
                         history=history.view(steps + 1, n, restarts), contextual=contextual[pick], prior=p[pick])


# -- Poisson blending ------------------------------------------------------------------------------------------


def _cv2():
    try:
        import cv2
    except ImportError as err:
        raise ImportError("Poisson blending needs OpenCV: pip install opencv-python-headless") from err
    return cv2


def poisson_blend(image: Tensor, fill: Tensor, mask: Tensor) -> Tensor:
    """Blend ``fill`` into the holes of ``image`` (Yeh et al. 2017, eq. 5) with OpenCV's ``seamlessClone``.

    Inside each hole the result follows ``fill``'s gradients and meets ``image`` at the hole's edge; the known
    pixels are ``image``'s (eq. 5's constraint, copied: OpenCV's solver only approximates them).  The solver
    works on 8-bit images, so the hole's values are rounded to 1/127.5.  Where a hole touches the image border,
    OpenCV's fixed boundary lies in a pad made by repeating ``fill`` there, which pulls the fill's level along
    that edge instead of leaving it free.

    Args:
        image, fill: ``(N, C, H, W)`` float in [-1, 1], C 1 or 3.
        mask: ``(N, H, W)`` 0/1 (1: known).

    Returns:
        ``(N, C, H, W)`` float32 on ``image``'s device.

    Raises:
        ImportError: OpenCV is missing.
        ValueError: C not 1 or 3.
    """
    import numpy as np

    cv2 = _cv2()
    c = image.shape[1]
    if c not in (1, 3):
        raise ValueError(f"Poisson blending takes 1- or 3-channel images; got {c} channels")
    out = []
    to8 = lambda t: np.ascontiguousarray(  # noqa: E731
        np.rint((t.detach().float().cpu().clamp(-1, 1).numpy() + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0))
    for img, src, mk in zip(image, fill, mask):
        hole = (mk.detach().cpu().numpy() == 0).astype(np.uint8) * 255
        y8, g8 = to8(img), to8(src)
        if c == 1:
            y8, g8 = np.repeat(y8, 3, 2), np.repeat(g8, 3, 2)
        comp = np.where(hole[..., None] > 0, g8, y8)  # the hole's own values never reach the solver
        pad = lambda a: cv2.copyMakeBorder(a, _PAD, _PAD, _PAD, _PAD, cv2.BORDER_REPLICATE)  # noqa: E731
        region = cv2.copyMakeBorder(hole, _PAD, _PAD, _PAD, _PAD, cv2.BORDER_CONSTANT, value=0)
        region = cv2.dilate(region, np.ones((3, 3), np.uint8), iterations=_CV_ERODE + 1)
        ys, xs = np.nonzero(region)
        # seamlessClone puts the mask's bounding box centred on this point: the same place it came from
        centre = (int(xs.min() + (xs.max() - xs.min() + 1) // 2), int(ys.min() + (ys.max() - ys.min() + 1) // 2))
        solved = cv2.seamlessClone(pad(g8), pad(comp), region, centre, cv2.NORMAL_CLONE)
        solved = solved[_PAD:-_PAD, _PAD:-_PAD]
        solved = solved[..., :1] if c == 1 else solved
        merged = np.where(hole[..., None] > 0, solved, to8(img))
        out.append(torch.from_numpy(merged.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0))
    result = torch.stack(out).to(image.device)
    known = mask[:, None].to(image.device) > 0
    return torch.where(known, image.float().clamp(-1, 1), result)  # known pixels exact, not 8-bit rounded


# -- the command -----------------------------------------------------------------------------------------------


def add_inpaint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="a checkpoint file or a run directory (its latest checkpoint)")
    p.add_argument("--image", required=True, help="the image to complete (converted to the model's channels and "
                                                  "resolution: shorter side scaled, centre crop)")
    p.add_argument("--mask", required=True, help="center (the central square, a quarter of the area), random "
                                                 "(80%% of the pixels missing, drawn with --seed) or a mask image "
                                                 "of the image's size: white (>= 128) known, black the hole")
    p.add_argument("--out", required=True, help="the blended result, a .png")
    p.add_argument("--raw", default=None, help="also write G(z), the unblended fill, to this .png")
    p.add_argument("--steps", type=int, default=STEPS, help=f"Adam steps on z (default {STEPS}, Yeh et al. 2017)")
    p.add_argument("--lr", type=float, default=LR, help=f"Adam's learning rate (default {LR}, the authors' code)")
    p.add_argument("--prior-weight", type=float, default=PRIOR_WEIGHT,
                   help=f"lambda, the prior loss's weight (default {PRIOR_WEIGHT}, Yeh et al. 2017)")
    p.add_argument("--restarts", type=int, default=RESTARTS, help=f"random starts, the lowest final loss kept "
                                                                  f"(default {RESTARTS})")
    p.add_argument("--window", type=int, default=WINDOW, help=f"the weighted mask's window (default {WINDOW})")
    p.add_argument("--z-constraint", choices=("sphere", "ball", "none"), default="sphere",
                   help="after each step: z onto the sphere of radius sqrt(d) (default), into that ball, or free")
    p.add_argument("--no-blend", action="store_true", help="paste G(z) into the hole without Poisson blending")
    p.add_argument("--seed", type=int, default=0, help="seeds the starting codes and the random mask")
    p.add_argument("--no-ema", action="store_true", help="the trained generator, not its EMA copy")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")


def _fail(message: str) -> int:
    print(f"ganfast inpaint: {message}", file=sys.stderr)
    return 2


def _image_size(path: str) -> Tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read the image {path}: {err}") from err


def run_inpaint(args: argparse.Namespace) -> int:
    from ..data.folder import decode_image
    from .checkpoint import load_resolved
    from .trainer import model_from_checkpoint
    from .translate import write_png  # atomic 8-bit PNG of a (C, H, W) image in [-1, 1]

    for flag, path in (("--out", args.out), ("--raw", args.raw)):
        if path is not None and os.path.splitext(path)[1].lower() != ".png":
            return _fail(f"{flag} must end in .png; got {path!r}")
    if args.raw is not None and os.path.realpath(args.raw) == os.path.realpath(args.out):
        return _fail("--raw and --out name the same file")
    if not os.path.isfile(args.image):
        return _fail(f"--image {args.image} does not exist")
    for flag, path in (("--out", args.out), ("--raw", args.raw)):
        if path is not None and os.path.realpath(path) == os.path.realpath(args.image):
            return _fail(f"{flag} {path} would replace the input image")
    mask_kind = args.mask if args.mask in ("center", "random") else None
    if mask_kind is None and not os.path.isfile(args.mask):
        return _fail(f"--mask {args.mask} is neither center, random nor an existing mask image")
    if not args.no_blend:
        try:
            _cv2()
        except ImportError as err:
            return _fail(str(err))
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        return _fail(f"--device: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        return _fail(f"--device {args.device!r} was asked for but torch sees no CUDA device")
    try:
        state = load_resolved(args.ckpt)
    except (FileNotFoundError, ValueError) as err:
        return _fail(f"--ckpt: {err}")
    model = model_from_checkpoint(state, ema=not args.no_ema)
    try:
        check_inpaintable(model)
    except ValueError as err:
        return _fail(str(err))
    channels, size = int(model.sample_shape[0]), int(model.sample_shape[-1])
    try:
        image = decode_image(args.image, channels, size)
        if mask_kind == "center":
            mask = center_mask(size)
        elif mask_kind == "random":
            mask = random_mask(size, generator=torch.Generator().manual_seed(args.seed))
        else:
            if _image_size(args.mask) != _image_size(args.image):
                return _fail(f"--mask {args.mask} is {'x'.join(map(str, _image_size(args.mask)))} but --image is "
                             f"{'x'.join(map(str, _image_size(args.image)))}: the mask must be the image's size")
            # the image's resize and crop, then the 8-bit threshold 128 (decode_image maps 127.5 to 0)
            mask = (decode_image(args.mask, 1, size)[0] >= 0).float()
    except ValueError as err:
        return _fail(str(err))
    model.to(device)
    try:
        result = inpaint(model, image, mask, steps=args.steps, lr=args.lr, prior_weight=args.prior_weight,
                         restarts=args.restarts, window=args.window, z_constraint=args.z_constraint,
                         blend=not args.no_blend, generator=torch.Generator().manual_seed(args.seed))
    except ValueError as err:
        return _fail(str(err))
    write_png(result.blended[0], args.out)
    if args.raw is not None:
        write_png(result.raw[0], args.raw)
    print(f"ganfast inpaint: wrote {args.out}{' and ' + args.raw if args.raw else ''} ({model.name}; final loss "
          f"{result.loss[0, result.best[0]].item():.4g}: contextual {result.contextual[0].item():.4g}, prior "
          f"{result.prior[0].item():.4g}; restart {result.best[0].item() + 1} of {args.restarts})")
    return 0

