"""The dataset types every loader returns.

:class:`BatchDataset` is the contract the trainer's batch stream
(:class:`ganfast.train.loader.ShardedBatches`) relies on: a dataset says which
:class:`~ganfast.data.batch.Batch` fields it fills (``fields``), what kind of
samples those are (``kind``: ``"points"`` or ``"image"``) and how its batches
are laid out (``layout``); it serves a batch of indices either in process
(``in_memory``: :meth:`BatchDataset.batch`) or sample by sample through a
``DataLoader`` (``__getitem__`` + :meth:`BatchDataset.collate`).

:class:`GANDataset` is the in-memory dataset of images or points with
optional labels that the built-in sets, image folders and arrays load into.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .batch import Batch

_LABELLED_SOURCES = ("digits, fashion-mnist, mnist5k, an image folder with one sub-folder per class, "
                     "or an .npz with a 'y' array")

#: ``layout`` values and what a batch of each holds (shown by ``ganfast list``).
LAYOUTS: Dict[str, str] = {
    "points": "image: (B, D) points",
    "images": "image: (B, C, H, W) [+ label: (B,)]",
    "paired": "image (A): (B, C, H, W) + target (B, aligned): (B, C', H, W)",
    "unpaired": "image (domain A) + target (domain B, drawn independently)",
    "frames": "frames: (B, T, C, H, W) [+ target_frames from a second domain]",
    "captions": "image: (B, C, H, W) + text: B captions",
}


class BatchDataset(Dataset):
    """What every ganfast dataset provides (subclasses set the attributes in ``__init__``).

    Attributes:
        name: what it was loaded from (built-in name or path).
        kind: ``"points"`` or ``"image"``: what the ``image`` field holds.
        layout: one of :data:`LAYOUTS`.
        fields: the :class:`Batch` fields every batch fills.
        sample_shape: shape of one ``image`` sample: ``(D,)`` or ``(C, H, W)``.
        num_classes: label count (0: unlabeled); ``classes``: their names or None.
        in_memory: True when :meth:`batch` serves batches without decoding files.

    ``__getitem__(i)`` returns one sample as a dict of fields (what
    :meth:`collate` stacks); in-memory datasets serve whole batches with
    :meth:`batch`, which the trainer prefers.  Datasets whose pairing changes
    with the epoch (unpaired domains) override :meth:`batch` and :meth:`set_epoch`.
    """

    name: str = ""
    kind: str = "image"
    layout: str = "images"
    fields: Tuple[str, ...] = ("image",)
    sample_shape: Tuple[int, ...] = ()
    num_classes: int = 0
    classes: Optional[List[str]] = None
    in_memory: bool = False
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the batch stream before each epoch (and on resume), in every worker's copy."""
        self.epoch = int(epoch)

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        """The samples at ``indices`` (int64, shape (B,)) as one Batch; default: collate ``__getitem__``."""
        self.set_epoch(epoch)
        return self.collate([self[int(i)] for i in indices.tolist()])

    @staticmethod
    def collate(items: Sequence[Any]) -> Batch:
        """Stack per-sample dicts into a :class:`Batch` (see :meth:`Batch.collate`)."""
        return Batch.collate(items)

    def require_labels(self, who: str) -> None:
        """Raise ``ValueError`` unless the dataset is labelled.

        ``who`` names the caller: a bare model name (``"cgan"``, read as
        ``model 'cgan'``) or a phrase used as is (``"option --conditional"``).
        """
        if self.num_classes > 0 and "label" in self.fields:
            return
        who = str(who)
        if not any(ch.isspace() for ch in who):
            who = f"model {who!r}"
        raise ValueError(
            f"{who} is conditional and needs labels, but dataset {self.name!r} has none; "
            f"use a labelled dataset ({_LABELLED_SOURCES})"
        )

    def require_fields(self, names: Sequence[str], who: str) -> None:
        """Raise ValueError unless every batch of this dataset fills ``names`` (``who`` names the caller)."""
        missing = [n for n in names if n not in self.fields]
        if missing:
            raise ValueError(f"{who} needs batch field(s) {missing}, but dataset {self.name!r} ({self.layout}) "
                             f"gives {list(self.fields)}")


class GANDataset(BatchDataset):
    """Samples for GAN training: 2-D points or images, optionally labelled.

    Attributes:
        name: what it was loaded from (built-in name or path).
        kind: ``"points"`` or ``"image"``.
        sample_shape: ``(D,)`` for points, ``(C, H, W)`` for images.
        num_classes: number of labels, 0 when unlabeled.
        classes: label names (index = label), or ``None`` when unlabeled.
        tensors: ``(x, y)`` when held in memory (``x`` float32
            ``(N, *sample_shape)``, images in [-1, 1]; ``y`` int64 ``(N,)`` or
            ``None``), else ``None`` (see :class:`~ganfast.data.folder.LazyImageFolder`).
        modes: ``(M, 2)`` float32 mode centres of a Gaussian mixture, else ``None``.
        mode_std: the mixture's per-mode standard deviation, else ``None``.

    ``dataset[i]`` is ``(x, y)``: a float32 sample and an int64 0-d label,
    ``-1`` when unlabeled, so a ``DataLoader``'s default collate stacks both.
    For in-memory data, indexing ``tensors`` directly is much faster than a
    ``DataLoader`` calling ``__getitem__`` once per sample.
    """

    def __init__(
        self,
        name: str,
        x: torch.Tensor,
        y: Optional[torch.Tensor] = None,
        *,
        classes: Optional[Sequence[str]] = None,
        modes: Optional[torch.Tensor] = None,
        mode_std: Optional[float] = None,
    ):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.ndim not in (2, 4):
            raise ValueError("x must be a float32 tensor of shape (N, D) (points) or (N, C, H, W) (images)")
        if y is not None:
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"y must be an int64 tensor of shape ({x.shape[0]},), one label per sample")
            if classes is None:
                classes = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
        elif classes is not None:
            raise ValueError("classes were given without labels y")
        self._set_meta(name, "points" if x.ndim == 2 else "image", tuple(x.shape[1:]), classes)
        self.tensors: Optional[Tuple[torch.Tensor, Optional[torch.Tensor]]] = (x, y)
        self.in_memory = True
        self.modes = modes
        self.mode_std = mode_std

    def _set_meta(self, name: str, kind: str, sample_shape: tuple, classes: Optional[Sequence[str]]) -> None:
        self.name = str(name)
        self.kind = kind
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.classes: Optional[List[str]] = list(classes) if classes is not None else None
        self.num_classes = len(self.classes) if self.classes is not None else 0
        self.layout = "points" if kind == "points" else "images"
        self.fields = ("image", "label") if self.num_classes > 0 else ("image",)
        self.in_memory = False
        self.modes = None
        self.mode_std = None

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        x, y = self.tensors
        label = y[index] if y is not None else torch.tensor(-1, dtype=torch.int64)
        return x[index], label

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        if self.tensors is None:  # decoded sample by sample (LazyImageFolder)
            return super().batch(indices, epoch)
        x, y = self.tensors
        indices = indices.to(x.device)
        return Batch(image=x[indices], label=y[indices] if y is not None else None)

    @staticmethod
    def collate(items: Sequence[Any]) -> Batch:
        """``(x, y)`` samples (y = -1 when unlabeled) into a Batch."""
        xs, ys = zip(*items)
        return Batch.from_any((torch.stack(xs), torch.stack([torch.as_tensor(v) for v in ys])))

    def __repr__(self) -> str:
        if self.classes is None:
            labels = "unlabeled"
        else:
            shown = self.classes if len(self.classes) <= 6 else self.classes[:3] + ["..."] + self.classes[-2:]
            labels = f"{self.num_classes} classes [{', '.join(shown)}]"
        where = "in memory" if self.tensors is not None else "lazy"
        return (
            f"{type(self).__name__}({self.name!r}, kind={self.kind!r}, N={len(self)}, "
            f"shape={self.sample_shape}, {labels}, {where})"
        )
