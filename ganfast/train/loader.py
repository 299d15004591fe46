"""Batches for training: sharded across processes, reproducible, resumable.

The order of the data is a pure function of (seed, epoch): epoch e shuffles
all N indices with a generator seeded by ``seed * 1_000_003 + e``, rank r of
W takes every W-th index of that order, and the number of samples already
delivered in the epoch is the whole state.  A resumed run therefore sees
exactly the batches the uninterrupted run would have seen, on any number of
workers.  A call may ask for a batch size other than the loader's (a
method with a per-resolution batch schedule, ProGAN's ``minibatch_dict``):
the batch is the next that many indices of the same order, and an epoch
ends when fewer than that many remain (the ragged tail is dropped).

Every batch is a :class:`ganfast.data.Batch`.  Datasets held in memory
(``dataset.in_memory``) serve a whole batch of indices in process
(``dataset.batch(indices, epoch)``): no DataLoader, no collation, no worker
processes (a 2-D point batch is microseconds of work, and a DataLoader costs
far more than that).  Lazy datasets (large image folders) go through a
DataLoader with a batch sampler over the same index order and the dataset's
``collate``.  Datasets whose pairing depends on the epoch (unpaired domains)
get it through ``set_epoch``, so a resumed run sees the same pairs.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

import torch
from torch import Tensor

from ..data.batch import Batch


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) % (2 ** 63))
    return torch.randperm(n, generator=g)


class ShardedBatches:
    """An endless stream of :class:`ganfast.data.Batch` es.

    Args:
        dataset: a :class:`ganfast.data.BatchDataset` (or any map-style dataset
            returning ``(x, y)`` with ``y == -1`` meaning unlabeled).
        batch_size: per process.
        rank, world_size: this process's shard.
        seed: the shuffling seed.
        device: where batches are delivered.
        num_workers: DataLoader workers for lazy datasets.
    """

    def __init__(self, dataset: Any, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 device: Any = "cpu", num_workers: int = 0) -> None:
        n = len(dataset)
        per_rank = n // world_size
        if per_rank < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than this process's share of the data ({n} samples over "
                f"{world_size} process(es) = {per_rank}); use a smaller --batch-size")
        self.dataset = dataset
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.per_rank = per_rank
        self.batches_per_epoch = per_rank // batch_size  # at the loader's batch size; the ragged tail is dropped
        self.epoch = 0
        self.offset = 0  # samples already delivered in this epoch (per process)
        self.delivered = 0  # batches delivered by this object (not checkpointed: for throughput only)
        self.delivered_samples = 0  # samples delivered by this object (not checkpointed: for throughput only)
        self._order: Optional[Tensor] = None
        self._iter: Optional[Iterator] = None
        self._iter_size = batch_size
        tensors = getattr(dataset, "tensors", None)
        self._x, self._y = (tensors if tensors is not None else (None, None))
        if self._x is not None and self.device.type != "cpu":
            # small in-memory data lives on the device once, not copied every batch
            self._x = self._x.to(self.device)
            self._y = self._y.to(self.device) if self._y is not None else None

    # -- state ---------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Batches of the loader's size already delivered in this epoch (``offset // batch_size``)."""
        return self.offset // self.batch_size

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "offset": self.offset, "seed": self.seed}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        # checkpoints written before the sample cursor existed hold the batch position only
        self.offset = int(state["offset"]) if "offset" in state else int(state["position"]) * self.batch_size
        self.seed = int(state.get("seed", self.seed))
        self._order = None
        self._iter = None

    # -- batches -------------------------------------------------------------------------------

    def _shard(self) -> Tensor:
        order = epoch_order(len(self.dataset), self.seed, self.epoch)
        return order[self.rank::self.world_size][: self.per_rank]

    def _lazy_iter(self, shard: Tensor, start: int, size: int) -> Iterator:
        rest = shard[start:]
        idx = rest[: len(rest) // size * size].view(-1, size).tolist()
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)  # before the workers take their copies
        collate = getattr(self.dataset, "collate", None) or _default_collate
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=idx, num_workers=self.num_workers, collate_fn=collate,
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        return iter(loader)

    def __call__(self, batch_size: Optional[int] = None) -> Batch:
        """The next batch: ``batch_size`` samples (default: the loader's).

        Raises:
            ValueError: ``batch_size`` is not a positive int or is larger than
                this process's share of the data.
        """
        size = self.batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        if size > self.per_rank:
            raise ValueError(f"batch_size {size} is larger than this process's share of the data "
                             f"({self.per_rank} samples); use a smaller batch size")
        if self.offset + size > self.per_rank:
            self.epoch += 1
            self.offset = 0
            self._order = None
            self._iter = None
        if self._order is None:
            self._order = self._shard()
        idx = self._order[self.offset:self.offset + size]
        if self._x is not None:
            idx = idx.to(self._x.device)
            batch = Batch(image=self._x[idx], label=self._y[idx] if self._y is not None else None)
        elif getattr(self.dataset, "in_memory", False):
            batch = self.dataset.batch(idx, self.epoch).to(self.device, non_blocking=True)
        else:
            if self._iter is None or self._iter_size != size:  # a new size: a new sampler from the cursor
                self._iter = self._lazy_iter(self._order, self.offset, size)
                self._iter_size = size
            batch = Batch.from_any(next(self._iter)).to(self.device, non_blocking=True)
        self.offset += size
        self.delivered += 1
        self.delivered_samples += size
        return batch

    next_batch = __call__


def _default_collate(items):
    return Batch.from_any(torch.utils.data.default_collate(items))
