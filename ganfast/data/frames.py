"""Video frames as runs of ``T`` consecutive frames (RecycleGAN): field ``frames``, ``(T, C, H, W)`` per sample.

Folder layout: one sub-folder per clip, holding numbered frames
(``clip_a/frame_1.png``, ``frame_2.png``, ..., ``frame_10.png``).  Frames are
ordered by the last integer in their file name, so ``frame_2`` comes before
``frame_10``; a clip with a frame without a number, or two frames with the
same number, is an error.  Every start position of every clip with at least
``frames_per_sample`` frames is a sample; shorter clips are skipped with a
warning.

Two domains (unpaired video): ``A/`` and ``B/`` (or ``trainA/`` and
``trainB/``, any ``<split>A/`` and ``<split>B/``), each holding clip folders,
give ``frames`` from A and ``target_frames`` from B, paired per epoch as in
:mod:`.unpaired`.  A folder with such a pair of sub-folders is read as two
domains, so single-domain clips must not be named like that.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import folder as _folder
from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from .batch import Batch
from .dataset import BatchDataset
from .folder import ImageFiles, list_images, probe_image, require_folder, sub_folders, uniform_channels, uniform_hw
from .unpaired import EpochPairing, cap_domains, domain_folders

#: Frames per sample when not given: RecycleGAN predicts frame t+2 from frames t and t+1.
FRAMES_PER_SAMPLE = 3
_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits
_SHOWN = 5


def check_frames_per_sample(k) -> int:
    """``None`` (-> :data:`FRAMES_PER_SAMPLE`) or a positive int."""
    if k is None:
        return FRAMES_PER_SAMPLE
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"frames_per_sample must be a positive int or None, got {k!r}")
    if k <= 0:
        raise ValueError(f"frames_per_sample must be a positive int, got {k}")
    return int(k)


def clip_frames(clip: str) -> List[str]:
    """The image files directly inside ``clip``, ordered by the last integer in their names.

    Raises:
        ValueError: a frame name holds no number, or two frames share one.
    """
    names = [os.path.basename(f) for f in list_images(clip, recursive=False)]
    numbered: Dict[int, str] = {}
    for name in sorted(names):
        m = _NUMBER.search(os.path.splitext(name)[0])
        if m is None:
            raise ValueError(f"frame {os.path.join(clip, name)} has no number in its name; frames must be numbered "
                             f"(frame_1.png, frame_2.png, ...) to be put in order")
        k = int(m.group(1))
        if k in numbered:
            raise ValueError(f"frames {numbered[k]} and {name} in clip {clip} have the same number {k}")
        numbered[k] = name
    return [os.path.join(clip, numbered[k]) for k in sorted(numbered)]


def scan_clips(root: str, k: int) -> Tuple[List[str], List[int], List[str]]:
    """``(frame files, window starts, clip names)`` of the clips under ``root`` with at least ``k`` frames.

    ``starts`` index into the frame list: window ``w`` is ``frames[starts[w]:starts[w] + k]``.

    Raises:
        ValueError: ``root`` has no clip folders, or no clip has ``k`` frames.
    """
    clips = sub_folders(require_folder(root))
    if not clips:
        raise ValueError(f"layout 'frames' expects one sub-folder per clip of numbered frames in {root}; "
                         f"found no sub-folders")
    files: List[str] = []
    starts: List[int] = []
    kept: List[str] = []
    short: List[str] = []
    for name in clips:
        frames = clip_frames(os.path.join(root, name))
        if len(frames) < k:
            short.append(f"{name} ({len(frames)})")
            continue
        starts.extend(range(len(files), len(files) + len(frames) - k + 1))
        files.extend(frames)
        kept.append(name)
    listed = ", ".join(short[:_SHOWN]) + (f" and {len(short) - _SHOWN} more" if len(short) > _SHOWN else "")
    if not kept:
        raise ValueError(f"no clip in {root} has frames_per_sample={k} frames or more; frame counts: {listed}")
    if short:
        warnings.warn(f"{len(short)} clip(s) in {root} have fewer than frames_per_sample={k} frames and are "
                      f"skipped: {listed}", stacklevel=3)
    return files, starts, kept


class FrameWindows:
    """The ``k``-frame windows of some clips: ``frames`` (one per file) and each window's first frame."""

    def __init__(self, frames: ImageFiles, starts: Sequence[int], k: int):
        self.frames = frames
        self.starts = torch.as_tensor(list(starts), dtype=torch.int64)
        self.k = k

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, windows: torch.Tensor) -> torch.Tensor:
        """Windows at ``windows`` (int64 ``(B,)``) as float32 ``(B, k, C, H, W)``."""
        idx = self.starts[windows][:, None] + torch.arange(self.k)
        return self.frames.take(idx.reshape(-1)).view(len(windows), self.k, *self.frames.item_shape)


class FrameClips(EpochPairing, BatchDataset):
    """Runs of consecutive frames (``layout="frames"``): fields ``("frames",)``, or ``("frames", "target_frames")``.

    Attributes (beyond :class:`BatchDataset`'s):
        frames_per_sample: T, the frames in one sample.
        sample_shape: ``(C, H, W)`` of one frame (a sample is ``(T, C, H, W)``).
        domains: one or two :class:`FrameWindows`.  clips: the clip names used, per domain.
        seed: seeds each epoch's pairing of two domains.

    ``dataset[i]`` is ``{"frames": (T, C, H, W)}`` (and ``"target_frames"``), float32 in [-1, 1].
    """

    kind = "image"
    layout = "frames"

    def __init__(self, name: str, domains: Sequence[FrameWindows], clips: Sequence[List[str]], seed: int,
                 split: Optional[str], eager: bool):
        self.name = name
        self.domains = list(domains)
        if eager:
            for d in self.domains:
                d.frames.load()
        self.clips = [list(c) for c in clips]
        self.seed = seed
        self.split = split
        self.in_memory = eager
        self.tensors = None
        self.frames_per_sample = domains[0].k
        self.sample_shape = tuple(int(v) for v in domains[0].frames.item_shape)
        self.fields = ("frames", "target_frames") if len(domains) == 2 else ("frames",)

    def __len__(self) -> int:
        return max(len(d) for d in self.domains)

    def _take(self, indices: torch.Tensor) -> Dict[str, torch.Tensor]:
        if len(self.domains) == 1:
            return {"frames": self.domains[0].take(indices)}
        a, b = self.pairs(indices, *map(len, self.domains))
        return {"frames": self.domains[0].take(a), "target_frames": self.domains[1].take(b)}

    def __getitem__(self, index) -> Dict[str, torch.Tensor]:
        return {f: v[0] for f, v in self._take(torch.tensor([int(index)])).items()}

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        self.set_epoch(epoch)
        return Batch(**self._take(indices.cpu().to(torch.int64)))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(c)} clips/{len(d)} windows" for c, d in zip(self.clips, self.domains))
        return (f"FrameClips({self.name!r}, T={self.frames_per_sample}, frame={self.sample_shape}, {sizes}, "
                f"{'in memory' if self.in_memory else 'lazy'})")


def load_frames(root, *, image_size: Optional[int] = None, channels: Optional[int] = None,
                num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None,
                frames_per_sample: Optional[int] = None, eager: Optional[bool] = None) -> FrameClips:
    """Frame windows from the clip folders under ``root`` (see the module docstring).

    Args:
        image_size: output side of every frame (shorter side scaled, then centre crop); without
            it every frame must have one size.
        channels: convert every frame to 1, 3 or 4 channels; without it the frames must agree.
        num_samples: keep a seeded subset of at most this many windows (per domain).
        seed: seeds the subset and, for two domains, each epoch's pairing.
        split: for two domains, picks ``<split>A/`` + ``<split>B/`` (default ``train``, else ``A/`` + ``B/``).
        frames_per_sample: T, frames per sample (default 3).
        eager: decode into memory (True), per sample (False) or by size (None).

    Returns:
        a :class:`FrameClips`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no clip folders, no clip long enough, unnumbered or duplicate frames,
            differing sizes or channels.
    """
    root = os.fspath(root)
    size, channels = check_image_size(image_size), check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    k = check_frames_per_sample(frames_per_sample)
    subs = sub_folders(require_folder(root))
    # two domains when asked for a split or when any <split>A/ + <split>B/ pair (or A/ + B/) is there
    two = split is not None or any(s.endswith("A") and s[:-1] + "B" in subs for s in subs)
    folders = domain_folders(root, split, "frames") if two else (root, None)
    scans = [scan_clips(d, k) for d in folders[:-1]]
    keeps = (cap_domains([len(s[1]) for s in scans], n, seed, root) if two
             else [subset_indices(len(scans[0][1]), n, seed, root)])
    files = [f for s in scans for f in s[0]]
    probes = [probe_image(f) for f in files]
    channels = uniform_channels(root, files, probes, channels)
    hw = uniform_hw(root, files, probes, size)
    domains = []
    for (frames, starts, _), keep in zip(scans, keeps):
        if keep is not None:
            starts = [starts[i] for i in keep.tolist()]
        domains.append(FrameWindows(ImageFiles(frames, channels, size, hw), starts, k))
    eager = _folder.decide_eager(eager, len(files), sum(d.frames.nbytes for d in domains))
    return FrameClips(root, domains, [s[2] for s in scans], seed, folders[-1], eager)
