"""The dataset type every loader returns."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

_LABELLED_SOURCES = "digits, an image folder with one sub-folder per class, or an .npz with a 'y' array"


class GANDataset(Dataset):
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
        self.modes = modes
        self.mode_std = mode_std

    def _set_meta(self, name: str, kind: str, sample_shape: tuple, classes: Optional[Sequence[str]]) -> None:
        self.name = str(name)
        self.kind = kind
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.classes: Optional[List[str]] = list(classes) if classes is not None else None
        self.num_classes = len(self.classes) if self.classes is not None else 0
        self.modes = None
        self.mode_std = None

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        x, y = self.tensors
        label = y[index] if y is not None else torch.tensor(-1, dtype=torch.int64)
        return x[index], label

    def require_labels(self, who: str) -> None:
        """Raise ``ValueError`` unless the dataset is labelled.

        ``who`` names the caller: a bare model name (``"cgan"``, read as
        ``model 'cgan'``) or a phrase used as is (``"option --conditional"``).
        """
        if self.num_classes > 0:
            return
        who = str(who)
        if not any(ch.isspace() for ch in who):
            who = f"model {who!r}"
        raise ValueError(
            f"{who} is conditional and needs labels, but dataset {self.name!r} has none; "
            f"use a labelled dataset ({_LABELLED_SOURCES})"
        )

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
