"""Two real domains for unpaired translation (CycleGAN, RecycleGAN): Fashion-MNIST sneakers and ankle boots.

Both sets come from the Debian package ``dataset-fashion-mnist`` (read by
:func:`ganfast.data.packaged.fashion_mnist_arrays`; nothing is downloaded).
Domain A is class 7 ("Sneaker"), domain B class 9 ("Ankle boot"): 6,000
images each in ``split="train"`` (default), 1,000 each in ``"test"``.  Images
are upscaled 28 -> ``image_size`` (default 32) exactly as ``fashion-mnist``
does (bilinear, :func:`~ganfast.data.packaged.to_images`; no padding), float32
in [-1, 1], background -1.

``fashion-shoes`` (layout ``"unpaired"``, fields ``image`` (A), ``target``
(B)): every image of both domains (or a seeded subset of ``num_samples`` per
domain), served by :class:`~ganfast.data.unpaired.UnpairedImages`: A and B are
drawn independently and B is re-paired with A every epoch.

``fashion-shoes-clips`` (layout ``"frames"``, fields ``frames`` (A),
``target_frames`` (B)): short videos made from real images.  Each clip is one
source image moving smoothly over :data:`CLIP_FRAMES` = 8 frames; samples are
the windows of ``frames_per_sample`` (T, default 3) consecutive frames of a
clip (8 - T + 1 per clip), served by :class:`~ganfast.data.frames.FrameClips`
and re-paired across domains every epoch.  By default each domain holds
:data:`DEFAULT_CLIPS` = 1,000 clips (a seeded subset of its source images, one
clip per image; 33 MB per domain at 32x32), i.e. 6,000 windows at T = 3;
``num_samples`` asks for that many windows per domain instead
(``ceil(num_samples / (8 - T + 1))`` clips, at most one per source image).

Motion model (all draws seeded by ``seed`` and the domain, one set per clip).
Frame ``t = 0..7`` has ``tau = t - 3.5``, so the untransformed image sits
half-way between frames 3 and 4 and the clip moves symmetrically about it:

* translation ``tau * v`` pixels, a straight line at constant velocity ``v``:
  direction uniform in [0, 360) degrees, speed uniform in
  :data:`SPEED_RANGE` = [0.25, 1.0] pixels per frame (pixels of a 32-pixel
  frame: the motion scales with ``image_size``), so at most 3.5 pixels from the
  centre position;
* rotation about the image centre by ``tau * w`` degrees, ``w`` uniform in
  :data:`TURN_RANGE` = [-3, 3] degrees per frame (positive turns clockwise on
  screen; at most 10.5 degrees);
* scaling about the image centre by ``exp(tau * z)``, ``z`` uniform in
  :data:`ZOOM_RANGE` = [-0.02, 0.02] per frame (at most 2 % per frame; 0.93 to
  1.07 over a clip).

The frame's pixel at ``p`` (relative to the image centre, x right, y down)
shows the source at ``R(-tau*w) (p - tau*v) / exp(tau*z)``, sampled bilinearly
(``torch.nn.functional.affine_grid`` / ``grid_sample``, ``align_corners=False``);
points outside the source read the background -1.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from ._images import convert_channels
from .frames import FrameClips, FrameWindows, check_frames_per_sample
from .packaged import FASHION_MNIST_SPLITS, MNIST_SIZE, fashion_mnist_arrays, to_images
from .unpaired import UnpairedImages, cap_domains

__all__ = ["TensorItems", "ClipMotion", "draw_motion", "render_clips", "load_fashion_shoes",
           "load_fashion_shoes_clips", "SHOE_CLASSES", "CLIP_FRAMES", "DEFAULT_CLIPS", "SPEED_RANGE", "TURN_RANGE",
           "ZOOM_RANGE", "DESCRIPTIONS"]

#: Fashion-MNIST labels of domain A (Sneaker) and domain B (Ankle boot).
SHOE_CLASSES = (7, 9)
CLIP_FRAMES = 8
DEFAULT_CLIPS = 1000
SPEED_RANGE = (0.25, 1.0)  # pixels per frame, in a 32-pixel frame
TURN_RANGE = (-3.0, 3.0)  # degrees per frame
ZOOM_RANGE = (-0.02, 0.02)  # log-scale per frame
BACKGROUND = -1.0  # Fashion-MNIST's background in [-1, 1]
_MOTION_SIDE = 32  # the frame side SPEED_RANGE is measured in
# Mixed into the motion seed so the draws are not the subset's (seeded with seed + domain).
_MOTION_SALT = 0x5DEECE66D

DESCRIPTIONS = {
    "fashion-shoes": "Fashion-MNIST sneakers (A) and ankle boots (B), 6,000 / 1,000 each (split), upscaled to 32x32, "
                     "unpaired for CycleGAN, B re-paired every epoch (layout 'unpaired'); dataset-fashion-mnist",
    "fashion-shoes-clips": f"{DEFAULT_CLIPS:,} clips per domain of {CLIP_FRAMES} frames, one Fashion-MNIST sneaker (A) "
                           f"or ankle boot (B) each, drifting, turning and zooming smoothly; runs of "
                           f"frames_per_sample (default 3) frames for RecycleGAN (layout 'frames', split)",
}


class TensorItems:
    """Items held in memory, float32 ``(N, *item_shape)``, with :class:`~ganfast.data.folder.ImageFiles`' interface.

    ``len``, ``items[i]``, :meth:`take`, :meth:`load` and ``item_shape``: what
    :class:`~ganfast.data.unpaired.UnpairedImages` and :class:`~ganfast.data.frames.FrameWindows`
    read, so they serve tensors exactly as they serve decoded files.
    """

    def __init__(self, items: torch.Tensor) -> None:
        self.memory = items.float().contiguous()
        self.item_shape = tuple(int(v) for v in items.shape[1:])

    def __len__(self) -> int:
        return len(self.memory)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.memory[i]

    def load(self) -> "TensorItems":
        """Already in memory: returns ``self``."""
        return self

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Items at ``indices`` (int64 ``(B,)``) as ``(B, *item_shape)``."""
        return self.memory[indices]


class ClipMotion(NamedTuple):
    """Per-clip motion (see the module docstring), float64: ``velocity`` ``(N, 2)`` (x right, y down) in pixels
    per frame of a 32-pixel frame, ``turn`` ``(N,)`` degrees per frame (clockwise), ``zoom`` ``(N,)`` log-scale
    per frame."""

    velocity: torch.Tensor
    turn: torch.Tensor
    zoom: torch.Tensor


def draw_motion(n: int, seed: int) -> ClipMotion:
    """``n`` clips' motion, uniform over :data:`SPEED_RANGE`, all directions, :data:`TURN_RANGE`, :data:`ZOOM_RANGE`."""
    g = torch.Generator().manual_seed((seed ^ _MOTION_SALT) % (2 ** 63))
    u = torch.rand(n, 4, generator=g, dtype=torch.float64)
    direction = u[:, 0] * (2 * math.pi)
    speed = SPEED_RANGE[0] + u[:, 1] * (SPEED_RANGE[1] - SPEED_RANGE[0])
    velocity = torch.stack([direction.cos(), direction.sin()], dim=1) * speed[:, None]
    turn = TURN_RANGE[0] + u[:, 2] * (TURN_RANGE[1] - TURN_RANGE[0])
    zoom = ZOOM_RANGE[0] + u[:, 3] * (ZOOM_RANGE[1] - ZOOM_RANGE[0])
    return ClipMotion(velocity, turn, zoom)


def render_clips(images: torch.Tensor, motion: ClipMotion, frames: int = CLIP_FRAMES) -> torch.Tensor:
    """Clips of ``images`` ``(N, C, S, S)`` in [-1, 1] moved by ``motion``: float32 ``(N, frames, C, S, S)``, [-1, 1].

    Raises:
        ValueError: images not square ``(N, C, S, S)``, or ``motion`` not for N clips.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"render_clips takes square images (N, C, S, S); got {tuple(images.shape)}")
    n, c, s = images.shape[0], images.shape[1], images.shape[-1]
    if motion.velocity.shape != (n, 2) or motion.turn.shape != (n,) or motion.zoom.shape != (n,):
        raise ValueError(f"motion must hold velocity (N, 2), turn (N,), zoom (N,) for N={n} clips; got "
                         f"{tuple(motion.velocity.shape)}, {tuple(motion.turn.shape)}, {tuple(motion.zoom.shape)}")
    tau = torch.arange(frames, dtype=torch.float64) - (frames - 1) / 2
    # affine_grid maps output to input coordinates, normalised so the frame spans [-1, 1]:
    # one pixel of a 32-pixel frame is 2 / 32 whatever the side, so the motion scales with it.
    shift = motion.velocity[:, None, :] * tau[None, :, None] * (2.0 / _MOTION_SIDE)  # (N, F, 2)
    angle = torch.deg2rad(motion.turn[:, None] * tau)  # (N, F)
    inv_scale = torch.exp(-motion.zoom[:, None] * tau)
    cos, sin = angle.cos() * inv_scale, angle.sin() * inv_scale
    a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # R(-angle) / scale
    b = -(a @ shift[..., None])
    theta = torch.cat([a, b], dim=-1).reshape(n * frames, 2, 3).to(torch.float32)
    src = images.float().repeat_interleave(frames, dim=0)
    grid = F.affine_grid(theta, [n * frames, c, s, s], align_corners=False)
    # zeros padding of (x - background) is padding with the background itself
    out = F.grid_sample(src - BACKGROUND, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + BACKGROUND).clamp_(-1.0, 1.0).view(n, frames, c, s, s)


def _check_split(split: Optional[str], name: str) -> str:
    split = "train" if split is None else split
    if split not in FASHION_MNIST_SPLITS:
        raise ValueError(f"split for {name!r} must be one of {tuple(FASHION_MNIST_SPLITS)}, got {split!r}")
    return split


def _shoe_sources(split: str) -> Tuple[np.ndarray, List[np.ndarray]]:
    """``(images (N, 28, 28) uint8, [indices of class 7, indices of class 9])`` of one Fashion-MNIST split."""
    images, labels = fashion_mnist_arrays(split)
    return images, [np.flatnonzero(labels == c) for c in SHOE_CLASSES]


def _pixels(images: np.ndarray, idx: np.ndarray, size: int, channels: Optional[int]) -> torch.Tensor:
    return to_images(torch.from_numpy(images[idx]).unsqueeze(1), size, channels)


def load_fashion_shoes(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                       num_samples: Optional[int] = None, seed: int = 0,
                       split: Optional[str] = None) -> UnpairedImages:
    """Sneakers (A) and ankle boots (B), unpaired (see the module docstring).

    Args:
        image_size: side of every image (default 32, as ``fashion-mnist``; 28 keeps the originals).
        channels: 1 (default) or 3 / 4 repeating the gray channel.
        num_samples: a seeded random subset of at most this many images per domain (the dataset then
            has ``num_samples`` samples); default all (6,000 per domain in train, 1,000 in test).
        seed: seeds the subsets and every epoch's pairing.
        split: ``"train"`` (default) or ``"test"``.

    Returns:
        an :class:`~ganfast.data.unpaired.UnpairedImages` in memory: ``image`` and ``target`` float32
        ``(C, S, S)`` in [-1, 1]; ``sources``: per domain, the int64 indices of its images in the
        Fashion-MNIST split.

    Raises:
        FileNotFoundError: Fashion-MNIST is not installed (``apt-get install dataset-fashion-mnist``).
        TypeError, ValueError: a bad option, or ``num_samples`` over the domain size.
    """
    name = "fashion-shoes"
    size, channels = check_image_size(image_size) or MNIST_SIZE, check_channels(channels)
    n, seed, split = check_num_samples(num_samples), check_seed(seed), _check_split(split, name)
    images, sources = _shoe_sources(split)
    keeps = cap_domains([len(s) for s in sources], n, seed, name)
    sources = [s if k is None else s[k.numpy()] for s, k in zip(sources, keeps)]
    a, b = (TensorItems(_pixels(images, s, size, channels)) for s in sources)
    ds = UnpairedImages(name, a, b, seed, split, eager=True)
    ds.sources = tuple(torch.from_numpy(s.astype(np.int64)) for s in sources)
    return ds


def load_fashion_shoes_clips(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                             num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None,
                             frames_per_sample: Optional[int] = None) -> FrameClips:
    """Clips of moving sneakers (A) and ankle boots (B), unpaired (motion model: the module docstring).

    Args:
        image_size: side of every frame (default 32); the motion scales with it.
        channels: 1 (default) or 3 / 4 repeating the gray channel.
        num_samples: windows per domain (default: those of :data:`DEFAULT_CLIPS` clips, 6,000 at T = 3).
        seed: seeds the choice of source images, the motion and every epoch's pairing.
        split: ``"train"`` (default, clips from 6,000 images per domain) or ``"test"`` (1,000).
        frames_per_sample: T, frames per sample, 1 to 8 (default 3).

    Returns:
        a :class:`~ganfast.data.frames.FrameClips` in memory: ``frames`` and ``target_frames`` float32
        ``(T, C, S, S)`` in [-1, 1]; window ``i`` of a domain is frames ``j .. j + T - 1`` of clip
        ``i // (8 - T + 1)``, ``j = i % (8 - T + 1)``.  Per domain: ``sources`` (int64 index of each
        clip's image in the Fashion-MNIST split), ``motion`` (a :class:`ClipMotion`), ``clips``
        (names ``"<split>-<index>"``).

    Raises:
        FileNotFoundError: Fashion-MNIST is not installed (``apt-get install dataset-fashion-mnist``).
        TypeError, ValueError: a bad option, T over 8, or more windows than one clip per image gives.
    """
    name = "fashion-shoes-clips"
    size, channels = check_image_size(image_size) or MNIST_SIZE, check_channels(channels)
    n, seed, split = check_num_samples(num_samples), check_seed(seed), _check_split(split, name)
    k = check_frames_per_sample(frames_per_sample)
    if k > CLIP_FRAMES:
        raise ValueError(f"frames_per_sample={k} is more than the {CLIP_FRAMES} frames of a {name!r} clip")
    per_clip = CLIP_FRAMES - k + 1
    images, sources = _shoe_sources(split)
    most = max(len(s) for s in sources)
    clips = DEFAULT_CLIPS if n is None else -(-n // per_clip)
    if clips > most and n is not None:
        raise ValueError(f"num_samples={n} asks for more than the {most * per_clip} windows dataset {name!r} "
                         f"holds in split {split!r} ({most} clips, one per image, of {per_clip} windows of "
                         f"frames_per_sample={k})")
    domains, names, motions, kept = [], [], [], []
    for d, src in enumerate(sources):
        keep = subset_indices(len(src), min(clips, len(src)), seed + d, name)
        src = src if keep is None else src[keep.numpy()]
        motion = draw_motion(len(src), seed * 2 + d)
        frames = render_clips(_pixels(images, src, size, None), motion)
        frames = convert_channels(frames.flatten(0, 1), channels)
        starts = [c * CLIP_FRAMES + j for c in range(len(src)) for j in range(per_clip)][:n]
        domains.append(FrameWindows(TensorItems(frames), starts, k))
        names.append([f"{split}-{i}" for i in src.tolist()])
        motions.append(motion)
        kept.append(torch.from_numpy(src.astype(np.int64)))
    ds = FrameClips(name, domains, names, seed, split, eager=True)
    ds.sources, ds.motion = tuple(kept), tuple(motions)
    return ds

