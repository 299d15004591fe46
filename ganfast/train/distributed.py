"""Multi-process training under ``torchrun``: process group, gradient averaging, reductions.

``torchrun --nproc-per-node N -m ganfast train ...`` sets RANK, WORLD_SIZE
and LOCAL_RANK; :func:`env_info` reads them and :func:`setup` joins the
group (nccl on GPUs, gloo on the CPU).  Every function here is a no-op on
a single process.

The networks are not wrapped in ``DistributedDataParallel``.  A GAN
iteration breaks DDP's assumptions: the discriminator runs two or three
forwards per backward (real, fake, and the gradient penalty's
interpolates, which needs double backward, which DDP's reducer does not
support), and in the generator's step D is used with frozen parameters.
DDP's reducer then either raises ("marked ready twice") or reduces at the
wrong time.  Instead:

* :func:`broadcast_module` copies rank 0's parameters and buffers to every
  rank once, before training;
* :func:`all_reduce_gradients` runs after a phase's backward, just before
  its optimiser step (``StepContext.step_optimizer`` calls it through the
  trainer's context): each gradient becomes its mean over ranks, with one
  flat all-reduce per (dtype, device), the bucketing DDP uses; a parameter
  that got no gradient on a rank joins with zeros so the buffers line up.
  Parameters start equal and receive equal updates, so they stay equal,
  as under DDP with a single forward;
* :func:`check_in_sync` verifies that at the end of a run (it raises when
  the ranks' parameters differ).

The rest are the collectives the trainer needs around that:
:func:`mean_over_ranks` for the logged losses, :func:`any_rank` for a
coordinated stop or best-checkpoint decision, :func:`gather_objects` for
every rank's RNG state in a checkpoint, :func:`barrier`, :func:`teardown`.
BatchNorm statistics stay per process, as with DDP without SyncBatchNorm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """The process's place in a ``torchrun`` launch (1 process when not launched by it)."""
    def get(name: str, default: int) -> int:
        v = os.environ.get(name)
        try:
            return int(v) if v is not None else default
        except ValueError:
            raise ValueError(f"environment variable {name}={v!r} is not an integer") from None
    world = get("WORLD_SIZE", 1)
    return DistInfo(rank=get("RANK", 0), world_size=world, local_rank=get("LOCAL_RANK", 0))


def setup(device_type: str) -> DistInfo:
    """Join the process group when launched with WORLD_SIZE > 1; no-op otherwise."""
    info = env_info()
    if not info.enabled or (dist.is_available() and dist.is_initialized()):
        return info
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed: multi-process training is unavailable")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    return info


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Make every rank's parameters and buffers equal to rank ``src``'s."""
    if not _active():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def all_reduce_gradients(params: Sequence[Tensor]) -> None:
    """Replace each gradient by its mean over ranks: one flat all-reduce per dtype."""
    if not _active():
        return
    world = dist.get_world_size()
    groups: Dict[Any, List[Tensor]] = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p)
    # A rank whose parameter got no gradient must still take part in the collective
    # with zeros, or the flat buffers would not line up across ranks.
    for p in params:
        if p.grad is None and p.requires_grad:
            p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p)
    for key in sorted(groups, key=str):
        ps = groups[key]
        flat = torch.cat([p.grad.reshape(-1) for p in ps])
        dist.all_reduce(flat)
        flat.div_(world)
        at = 0
        for p in ps:
            n = p.grad.numel()
            p.grad.copy_(flat[at:at + n].view_as(p.grad))
            at += n


def mean_over_ranks(values: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Average a dict of 0-d tensors over ranks (same keys on every rank)."""
    if not _active() or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    return {k: flat[i] for i, k in enumerate(keys)}


def any_rank(flag: bool, device: Any = "cpu") -> bool:
    """True on every rank when ``flag`` is true on any rank (for a coordinated stop)."""
    if not _active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj`` on every rank (rank order)."""
    if not _active():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        dist.barrier()


def check_in_sync(module: nn.Module, what: str = "model") -> None:
    """Raise when the ranks' parameters differ (they must stay equal after every step).

    One all-reduce of two numbers per parameter tensor: cheap enough to run
    once at the end of a run, and it catches a missed gradient reduction or
    a rank-dependent update, which would otherwise train silently wrong.
    """
    if not _active():
        return
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in module.parameters()]).cpu()
    lo, hi = sums.clone(), sums.clone()
    dev_lo, dev_hi = lo, hi
    if dist.get_backend() == "nccl":
        dev_lo, dev_hi = lo.cuda(), hi.cuda()
    dist.all_reduce(dev_lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(dev_hi, op=dist.ReduceOp.MAX)
    spread = (dev_hi - dev_lo).abs().max().item()
    if spread > 1e-6 * max(1.0, dev_hi.abs().max().item()):
        raise RuntimeError(f"the {what}'s parameters differ across ranks (max spread {spread:.3g}): "
                           "gradient averaging failed")
