"""ProGAN's generator and discriminator (Karras et al. 2018, ICLR; arXiv:1710.10196, Table 2).

Both networks exist whole from the start, as in the released code
(tkarras/progressive_growing_of_gans ``networks.py``, ``G_paper`` /
``D_paper``): a level of detail ``lod`` decides which blocks run and how the
newest block is blended in.  With ``R = 2^k`` the full resolution, ``lod``
runs from ``k - 2`` (4x4) down to 0 (R x R); the highest resolution that
runs is ``2^(k - floor(lod))`` and the newest block's weight is
``alpha = 1 - (lod - floor(lod))`` (1 when the resolution is stable, rising
from 0 to 1 during its fade-in, sec. 3 and Figure 2).

* G always outputs R x R images: lower levels are upscaled by nearest
  neighbour, and during a fade-in the output is
  ``lerp(up(toRGB_{r/2}(h_{r/2})), toRGB_r(h_r), alpha)``.
* D always takes R x R images and average-pools them to the current
  resolution; during a fade-in its features at r/2 are
  ``lerp(fromRGB_{r/2}(pool(x)), block_r(fromRGB_r(x)), alpha)``.
* :func:`blend_reals` gives the real images the same cross-fade (the code's
  ``process_reals``: ``FadeLOD`` then ``UpscaleLOD``).

Layers (``networks.py``): every convolution and dense layer has an equalized
learning rate (sec. 4.1) with gain sqrt(2), except G's latent -> 4x4 dense
layer (sqrt(2) / 4, "to match the original Theano implementation"), toRGB and
D's last dense layer (gain 1); biases start at 0; leaky ReLU 0.2; in G, pixel
norm (sec. 4.2) on the latent and after every convolution; D has no
normalisation and ends with a minibatch standard deviation layer (sec. 3).
Channel counts are ``nf(stage) = min(fmap_base / 2^stage, fmap_max)``; the
block at resolution ``2^res`` has ``nf(res - 1)`` channels.

Up- and downsampling are the code's default ``fused_scale=True`` functions,
written unfused: G upsamples by nearest neighbour then convolves (the fused
transposed convolution computes exactly this); D's second convolution of a
block is followed by the 2x2 average pool and then by its bias and leaky ReLU
(``conv2d_downscale2d`` then ``act(apply_bias(...))``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ...nn import BiasLeakyReLUPixelNorm, MinibatchStdDev, PixelNorm
from ...nn.equalized_lr import equalized_lr

__all__ = ["ProGANGenerator", "ProGANDiscriminator", "blend_reals", "feature_maps", "level"]

_SQRT2 = math.sqrt(2.0)


def feature_maps(stage: int, fmap_base: int, fmap_max: int) -> int:
    """``nf(stage) = min(fmap_base / 2^stage, fmap_max)`` (``networks.py``, ``fmap_decay`` 1)."""
    return max(1, min(int(fmap_base / 2.0 ** stage), fmap_max))


def level(lod: float, resolution_log2: int) -> tuple:
    """``(top, alpha)``: log2 of the highest resolution that runs at ``lod``, and the newest block's weight."""
    lod = min(max(float(lod), 0.0), float(resolution_log2 - 2))
    base = math.floor(lod)
    return resolution_log2 - base, 1.0 - (lod - base)


def _up(x: Tensor, factor: int) -> Tensor:
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


def _down(x: Tensor, factor: int) -> Tensor:
    return x if factor == 1 else F.avg_pool2d(x, factor)


def _lerp(start: Tensor, end: Tensor, alpha: float) -> Tensor:
    # under autocast the two paths can come out in different dtypes (a conv in bf16, an elementwise op in
    # float32): blend in the wider one, as the dtype promotion of an addition would
    dtype = torch.promote_types(start.dtype, end.dtype)
    return torch.lerp(start.to(dtype), end.to(dtype), alpha)


def blend_reals(x: Tensor, lod: float) -> Tensor:
    """Real R x R images as D sees them at ``lod`` (the code's ``process_reals``).

    At the current resolution r (the box-filtered pyramid level, as the
    code's multi-resolution dataset stores it) the images are
    ``lerp(up(down(x_r)), x_r, alpha)``: during a fade-in the reals are
    themselves a cross-fade of r/2 and r, matching what G makes; then they
    are upscaled by nearest neighbour back to R x R.
    """
    k = int(round(math.log2(x.shape[-1])))
    top, alpha = level(lod, k)
    factor = 2 ** (k - top)
    xr = _down(x, factor)
    if alpha < 1.0:
        xr = _lerp(_up(_down(xr, 2), 2), xr, alpha)
    return _up(xr, factor)


def _conv(cin: int, cout: int, kernel: int, gain: float = _SQRT2, bias: bool = True) -> nn.Conv2d:
    return equalized_lr(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias), gain=gain)


def _dense(fin: int, fout: int, gain: float = _SQRT2, bias: bool = True) -> nn.Linear:
    return equalized_lr(nn.Linear(fin, fout, bias=bias), gain=gain)


def _run(block: nn.Module, x: Tensor, checkpointed: bool) -> Tensor:
    """``block(x)``; with ``checkpointed``, its activations are recomputed in the backward instead of kept.

    torch.utils.checkpoint's non-reentrant form (``use_reentrant=False``):
    it supports ``torch.autograd.grad(..., create_graph=True)`` through the
    block, so gradient penalties (WGAN-GP, R1) work on checkpointed networks
    (tests/test_progan.py compares them with the plain run).
    """
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(block, x, use_reentrant=False)
    return block(x)


def _check_shape(sample_shape) -> tuple:
    c, h, w = (int(v) for v in sample_shape)
    k = int(round(math.log2(h))) if h > 0 else 0
    if h != w or h < 4 or 2 ** k != h:
        raise ValueError(f"ProGAN needs square images whose side is a power of two >= 4; got {tuple(sample_shape)}")
    return c, k


class _GBlock(nn.Module):
    """8x8 and up: nearest 2x upsample, then two 3x3 convolutions, each followed by bias + lrelu + pixel norm."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0, self.act0 = _conv(cin, cout, 3, bias=False), BiasLeakyReLUPixelNorm(cout)
        self.conv1, self.act1 = _conv(cout, cout, 3, bias=False), BiasLeakyReLUPixelNorm(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.act1(self.conv1(self.act0(self.conv0(_up(x, 2)))))


class ProGANGenerator(nn.Module):
    """``G(z, lod)`` -> ``(B, C, R, R)``, linear output (no tanh, as the code).

    Args:
        latent_dim: z's size (the code: ``nf(0)``).
        sample_shape: ``(C, R, R)``, R a power of two >= 4.
        fmap_base, fmap_max: the channel rule ``nf``.
        normalize_latents: pixel norm on z (the code's default True).
        checkpoint_blocks: recompute each resolution block's activations in
            the backward instead of keeping them (memory for time at large
            resolutions; double backward still works).

    The buffer ``lod`` is the level used when ``forward`` is given none (the
    method sets it every step, so EMA copies and checkpoints carry it).
    """

    def __init__(self, latent_dim: int, sample_shape, fmap_base: int = 8192, fmap_max: int = 512,
                 normalize_latents: bool = True, checkpoint_blocks: bool = False) -> None:
        super().__init__()
        self.checkpoint_blocks = bool(checkpoint_blocks)
        self.channels, self.resolution_log2 = _check_shape(sample_shape)
        self.latent_dim = int(latent_dim)
        k = self.resolution_log2

        def nf(stage: int) -> int:
            return feature_maps(stage, fmap_base, fmap_max)

        self.register_buffer("lod", torch.tensor(float(k - 2)))
        self.latent_norm = PixelNorm() if normalize_latents else nn.Identity()
        # 4x4: dense to nf(1) x 4 x 4 with gain sqrt(2)/4, then a 3x3 convolution
        self.dense = _dense(self.latent_dim, nf(1) * 16, gain=_SQRT2 / 4, bias=False)
        self.dense_act = BiasLeakyReLUPixelNorm(nf(1))
        self.conv = _conv(nf(1), nf(1), 3, bias=False)
        self.conv_act = BiasLeakyReLUPixelNorm(nf(1))
        #: blocks[i] makes resolution 2^(i + 3); to_rgb[i] reads resolution 2^(i + 2)
        self.blocks = nn.ModuleList(_GBlock(nf(res - 2), nf(res - 1)) for res in range(3, k + 1))
        self.to_rgb = nn.ModuleList(_conv(nf(res - 1), self.channels, 1, gain=1.0) for res in range(2, k + 1))

    def forward(self, z: Tensor, lod: Optional[float] = None) -> Tensor:
        k = self.resolution_log2
        top, alpha = level(self.lod if lod is None else lod, k)
        x = self.dense(self.latent_norm(z)).view(z.shape[0], -1, 4, 4)
        x = self.conv_act(self.conv(self.dense_act(x)))
        prev = x
        for res in range(3, top + 1):
            prev, x = x, _run(self.blocks[res - 3], x, self.checkpoint_blocks)
        img = self.to_rgb[top - 2](x)
        if top > 2 and alpha < 1.0:
            img = _lerp(_up(self.to_rgb[top - 3](prev), 2), img, alpha)
        return _up(img, 2 ** (k - top))


class _DBlock(nn.Module):
    """8x8 and up: 3x3 conv + lrelu, then 3x3 conv, 2x2 average pool, bias + lrelu (``fused_scale``'s order)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = _conv(cin, cin, 3)
        self.conv1 = _conv(cin, cout, 3, bias=False)
        self.bias1 = nn.Parameter(torch.zeros(cout))

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.conv0(x), 0.2)
        x = F.avg_pool2d(self.conv1(x), 2) + self.bias1.view(1, -1, 1, 1)
        return F.leaky_relu(x, 0.2)


class ProGANDiscriminator(nn.Module):
    """``D(x, lod)`` -> ``(B,)`` scores for ``(B, C, R, R)`` images (``D_paper`` without labels).

    Args as :class:`ProGANGenerator`; ``mbstd_group_size`` is the minibatch
    standard deviation layer's group (the code: 4; 0 disables it);
    ``checkpoint_blocks`` as the generator's.
    """

    def __init__(self, sample_shape, fmap_base: int = 8192, fmap_max: int = 512, mbstd_group_size: int = 4,
                 checkpoint_blocks: bool = False) -> None:
        super().__init__()
        self.checkpoint_blocks = bool(checkpoint_blocks)
        self.channels, self.resolution_log2 = _check_shape(sample_shape)
        k = self.resolution_log2

        def nf(stage: int) -> int:
            return feature_maps(stage, fmap_base, fmap_max)

        self.register_buffer("lod", torch.tensor(float(k - 2)))
        #: from_rgb[i] reads resolution 2^(i + 2); blocks[i] takes resolution 2^(i + 3) to half of it
        self.from_rgb = nn.ModuleList(_conv(self.channels, nf(res - 1), 1) for res in range(2, k + 1))
        self.blocks = nn.ModuleList(_DBlock(nf(res - 1), nf(res - 2)) for res in range(3, k + 1))
        self.mbstd = MinibatchStdDev(mbstd_group_size) if mbstd_group_size > 1 else None
        extra = 1 if self.mbstd is not None else 0
        self.conv = _conv(nf(1) + extra, nf(1), 3)
        self.dense0 = _dense(nf(1) * 16, nf(0))
        self.dense1 = _dense(nf(0), 1, gain=1.0)

    def forward(self, x: Tensor, lod: Optional[float] = None) -> Tensor:
        k = self.resolution_log2
        top, alpha = level(self.lod if lod is None else lod, k)
        img = _down(x, 2 ** (k - top))
        h = F.leaky_relu(self.from_rgb[top - 2](img), 0.2)
        if top > 2:
            h = _run(self.blocks[top - 3], h, self.checkpoint_blocks)
            if alpha < 1.0:
                h = _lerp(F.leaky_relu(self.from_rgb[top - 3](_down(img, 2)), 0.2), h, alpha)
            for res in range(top - 1, 2, -1):
                h = _run(self.blocks[res - 3], h, self.checkpoint_blocks)
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = F.leaky_relu(self.conv(h), 0.2)
        h = F.leaky_relu(self.dense0(h.flatten(1)), 0.2)
        return self.dense1(h).squeeze(1)
