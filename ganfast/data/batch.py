"""The batch every dataset produces and every method reads: named fields, not positions.

A :class:`Batch` holds whichever of these fields its dataset provides (the
others are ``None``):

=================  ==================================  =============================================
field              shape / type                        meaning
=================  ==================================  =============================================
``image``          ``(B, C, H, W)`` float32 in [-1, 1]  the images (or ``(B, D)`` points); for paired
                   or ``(B, D)`` float32                and unpaired data, domain A (pix2pix's input)
``label``          ``(B,)`` int64                       class labels 0..K-1
``target``         ``(B, C', H', W')`` float32          domain B: aligned with ``image`` for paired
                                                        data (pix2pix's ``real_B``), an independent
                                                        draw for unpaired data (CycleGAN's ``trainB``)
``condition``      ``(B, C', H, W)`` float32            a conditioning map that is not generated
                                                        (a semantic layout, a mask)
``frames``         ``(B, T, C, H, W)`` float32          runs of T consecutive video frames (domain A)
``target_frames``  ``(B, T, C, H, W)`` float32          runs of domain B's frames (unpaired video)
``text``           ``list`` of B ``str``                one caption per image
=================  ==================================  =============================================

Datasets say which fields they fill (``dataset.fields``) and methods say
which they read (``Method.requires``), so a mismatch is reported before
training starts.  ``Batch.from_any`` also accepts the ``(x, y)`` tuples of
earlier ganfast code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

#: Every field a batch can hold, in a fixed order (the order ``fields()`` reports them in).
FIELDS: Tuple[str, ...] = ("image", "label", "target", "condition", "frames", "target_frames", "text")
TENSOR_FIELDS: Tuple[str, ...] = FIELDS[:-1]


@dataclass
class Batch:
    """One batch of training data, by field name (see the module docstring for each field).

    Raises:
        ValueError: from :meth:`require` when a field a method needs is absent,
            and from :meth:`check` when the fields disagree on the batch size.
    """

    image: Optional[Tensor] = None
    label: Optional[Tensor] = None
    target: Optional[Tensor] = None
    condition: Optional[Tensor] = None
    frames: Optional[Tensor] = None
    target_frames: Optional[Tensor] = None
    text: Optional[List[str]] = None

    # -- what is here -----------------------------------------------------------------------------

    def fields(self) -> Tuple[str, ...]:
        """Names of the fields that are set, in :data:`FIELDS` order."""
        return tuple(f for f in FIELDS if getattr(self, f) is not None)

    def __len__(self) -> int:
        """The batch size B (the leading dimension every field shares)."""
        for f in FIELDS:
            v = getattr(self, f)
            if v is not None:
                return len(v)
        return 0

    def check(self) -> "Batch":
        """Raise ValueError unless every field has the same batch size; returns ``self``."""
        sizes = {f: len(getattr(self, f)) for f in self.fields()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"batch fields disagree on the batch size: {sizes}")
        return self

    def require(self, names: Iterable[str], who: str) -> None:
        """Raise ValueError naming ``who`` and the absent fields unless every one of ``names`` is set."""
        missing = [n for n in names if getattr(self, n, None) is None]
        if missing:
            raise ValueError(f"{who} needs batch field(s) {missing}, but this batch has only {list(self.fields())}")

    # -- moving and slicing -----------------------------------------------------------------------

    def to(self, device: Any, non_blocking: bool = False) -> "Batch":
        """A batch with every tensor on ``device`` (captions are left as they are)."""
        moved = {f: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v)
                 for f, v in self.as_dict().items()}
        return Batch(**moved)

    def as_dict(self) -> Dict[str, Any]:
        """The set fields as a dict (shallow: the tensors are not copied)."""
        return {f: getattr(self, f) for f in self.fields()}

    def replace(self, **fields: Any) -> "Batch":
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **fields)

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_any(cls, value: Any) -> "Batch":
        """A Batch from a Batch, a dict of fields, or an ``(image, label)`` tuple (label None or -1: absent).

        Raises:
            TypeError: for anything else, or a dict with unknown keys.
        """
        if isinstance(value, Batch):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(FIELDS))
            if unknown:
                raise TypeError(f"unknown batch field(s) {unknown}; a batch has {list(FIELDS)}")
            return cls(**value)
        if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], Tensor):
            x, y = value
            if isinstance(y, Tensor) and y.numel() > 0 and bool((y < 0).any()):
                y = None
            return cls(image=x, label=y)
        raise TypeError(f"a batch must be a ganfast.data.Batch, a dict of its fields or an (image, label) tuple; "
                        f"got {type(value).__name__}")

    @classmethod
    def collate(cls, items: Sequence[Dict[str, Any]]) -> "Batch":
        """Stack per-sample dicts (what a dataset's ``__getitem__`` returns) into a Batch.

        Tensors are stacked; captions are gathered into a list.  A label of
        -1 (unlabeled) in any sample drops the ``label`` field.
        """
        if not items:
            raise ValueError("cannot collate an empty list of samples")
        out: Dict[str, Any] = {}
        for f in items[0]:
            values = [it[f] for it in items]
            if f == "text":
                out[f] = [str(v) for v in values]
            else:
                out[f] = torch.stack([torch.as_tensor(v) for v in values])
        label = out.get("label")
        if label is not None and bool((label < 0).any()):
            del out["label"]
        return cls.from_any(out)
