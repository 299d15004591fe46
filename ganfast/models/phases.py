"""One training iteration as a list of phases, and the context the phases run in.

The shape follows StyleGAN2-ADA's ``training_loop.py``: an iteration is a
list of phases (``Gmain``, ``Greg``, ``Dmain``, ``Dreg`` there), each with
the optimiser it steps, the loss it computes and how often it runs.  A
:class:`Phase` here is

* ``name``: what the logs and errors call it;
* ``optimizer``: the name of the optimiser it steps (its networks are the
  ones that get gradients; every other network is frozen while it runs);
* ``loss``: a closure ``(batch, ctx) -> (loss, logs)``;
* ``interval``: it runs on the steps ``step % interval == 0`` (0-based);
* ``lazy``: lazy regularisation (Karras et al. 2020, StyleGAN2, sec. 3.1 and
  appendix B): the loss is multiplied by ``interval`` so that its expected
  gradient is unchanged, and the optimiser it shares with the main phase
  gets Adam's learning rate and betas corrected by ``c = k / (k + 1)``
  (``lr * c``, ``beta ** c``; StyleGAN2-ADA ``training_loop.py``), done once by
  :func:`lazy_ratios` when the optimisers are made;
* ``repeat``: how many times it runs per iteration (WGAN's ``n_critic``),
  each time on a new batch when ``batch == "next"``;
* ``batch``: ``"next"`` draws a new batch for every run; ``"same"`` reuses the
  iteration's latest batch (drawing one if none was drawn yet);
* ``when``: an optional condition ``ctx -> bool`` (VAE-GAN's balance gate,
  SRGAN's pre-training), checked each time the phase would run;
* ``start`` / ``stop``: the phase runs on steps ``start <= step < stop``;
* ``after``: an optional ``ctx -> None`` run after the optimiser step (weight
  clipping, historical averages).

:func:`run_iteration` runs them.  Everything about *how* a loss becomes an
update (mixed precision, gradient scaling, the cross-process gradient
all-reduce) is the :class:`StepContext`'s, which the trainer subclasses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..data.batch import Batch

__all__ = ["Phase", "StepContext", "run_iteration", "lazy_ratios", "set_requires_grad"]

LossFn = Callable[[Batch, "StepContext"], Tuple[Tensor, Dict[str, Tensor]]]


@dataclass(frozen=True)
class Phase:
    """One phase of a training iteration (see the module docstring for each field).

    Raises:
        ValueError: a bad interval, repeat, batch mode or step range (at construction).
    """

    name: str
    optimizer: str
    loss: LossFn
    interval: int = 1
    lazy: bool = False
    repeat: int = 1
    batch: str = "next"
    when: Optional[Callable[["StepContext"], bool]] = None
    start: int = 0
    stop: Optional[int] = None
    after: Optional[Callable[["StepContext"], None]] = None

    def __post_init__(self) -> None:
        for key in ("interval", "repeat"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"phase {self.name!r}: {key} must be an int >= 1; got {v!r}")
        if self.batch not in ("next", "same"):
            raise ValueError(f"phase {self.name!r}: batch must be 'next' or 'same'; got {self.batch!r}")
        if self.lazy and self.interval == 1:
            raise ValueError(f"phase {self.name!r}: lazy=True needs an interval > 1")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"phase {self.name!r}: start must be an int >= 0; got {self.start!r}")
        if self.stop is not None and (not isinstance(self.stop, int) or self.stop <= self.start):
            raise ValueError(f"phase {self.name!r}: stop must be None or an int > start; got {self.stop!r}")
        if not callable(self.loss):
            raise TypeError(f"phase {self.name!r}: loss must be callable (batch, ctx) -> (loss, logs)")

    def due(self, step: int) -> bool:
        """Whether the phase runs at 0-based ``step`` by its schedule alone (``when`` aside)."""
        if step < self.start or (self.stop is not None and step >= self.stop):
            return False
        return (step - self.start) % self.interval == 0


class StepContext:
    """What a training iteration needs from its surroundings (the trainer subclasses it).

    The default runs in float32 on one process: ``autocast`` does nothing,
    ``backward`` is ``loss.backward()`` and ``step`` is ``optimizer.step()``.

    Attributes:
        step: the iteration's 0-based index.
        total_steps: the length of the run (None when unknown).
        schedule: the values of the method's schedules at ``step`` (set by the trainer).
        optimizers: the optimisers by name (set by :func:`run_iteration`).
        logs: the logs of this iteration so far (earlier phases'); ``last_logs``: the previous iteration's.
        skipped_steps: per optimiser, how many of its steps a float16 gradient scaler
            skipped (an inf/NaN gradient: the scaler halves its scale and leaves the weights);
            ``consecutive_skips``: how many of the latest ones in a row.
    """

    def __init__(self) -> None:
        self.step: int = 0
        self.total_steps: Optional[int] = None
        self.schedule: Dict[str, float] = {}
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}
        self.logs: Dict[str, Tensor] = {}
        self.last_logs: Dict[str, Tensor] = {}
        self.skipped_steps: Dict[str, int] = {}
        self.consecutive_skips: Dict[str, int] = {}

    @property
    def iteration(self) -> int:
        """Alias of ``step`` (the name earlier ganfast code used)."""
        return self.step

    def autocast(self):
        return contextlib.nullcontext()

    def scaler(self, name: str) -> Optional["torch.amp.GradScaler"]:
        """The gradient scaler of optimiser ``name`` (fp16 only), else None."""
        return None

    def backward(self, loss: Tensor, name: str) -> None:
        scaler = self.scaler(name)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def reduce_gradients(self, params: Sequence[Tensor]) -> None:
        """Average gradients across processes (a no-op on one process)."""

    def step_optimizer(self, optimizer: torch.optim.Optimizer, name: str) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.reduce_gradients(params)
        scaler = self.scaler(name)
        if scaler is not None:
            # scaler.step() reads found_inf back to the host already; the two
            # get_scale() calls add no synchronisation.  A skipped step is the
            # only way update() lowers the scale.
            before = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            skipped = scaler.get_scale() < before
            self.skipped_steps[name] = self.skipped_steps.get(name, 0) + int(skipped)
            self.consecutive_skips[name] = self.consecutive_skips.get(name, 0) + 1 if skipped else 0
        else:
            optimizer.step()


def set_requires_grad(modules: Sequence[nn.Module], flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def lazy_ratios(phases: Sequence[Phase]) -> Dict[str, float]:
    """``{optimizer: k / (k + 1)}`` for every optimiser stepped by a lazy phase of interval k.

    Raises:
        ValueError: two lazy phases of different intervals share an optimiser
            (no single correction fits both).
    """
    out: Dict[str, float] = {}
    seen: Dict[str, int] = {}
    for p in phases:
        if not p.lazy:
            continue
        k = p.interval
        if p.optimizer in seen and seen[p.optimizer] != k:
            raise ValueError(f"lazy phases with intervals {seen[p.optimizer]} and {k} share optimiser "
                             f"{p.optimizer!r}; give them one interval")
        seen[p.optimizer] = k
        out[p.optimizer] = k / (k + 1)
    return out


def run_iteration(phases: Sequence[Phase], networks: Mapping[str, nn.Module],
                  trains: Mapping[str, Sequence[str]], next_batch: Callable[[], Any],
                  optimizers: Mapping[str, torch.optim.Optimizer], ctx: StepContext) -> Dict[str, Tensor]:
    """Run one iteration's phases; returns the logs of the phases that ran (later values win).

    Args:
        phases: the method's phases, in order.
        networks: every network of the method by name.
        trains: optimiser name -> the networks it trains (only those get
            gradients while its phase runs).
        next_batch: draws the next batch (a :class:`Batch` or an ``(x, y)`` tuple).
        optimizers: by name, as :meth:`Method.make_optimizers` returns them.
        ctx: the step context; ``ctx.step`` is the iteration's index.

    Raises:
        KeyError: a phase names an optimiser that is not in ``optimizers``.
    """
    ctx.optimizers = dict(optimizers)
    ctx.logs = {}
    batch: Optional[Batch] = None
    try:
        for phase in phases:
            if not phase.due(ctx.step):
                continue
            if phase.optimizer not in optimizers:
                raise KeyError(f"phase {phase.name!r} steps optimiser {phase.optimizer!r}, but the optimisers are "
                               f"{sorted(optimizers)}")
            opt = optimizers[phase.optimizer]
            trained = set(trains[phase.optimizer])
            for name, net in networks.items():
                set_requires_grad([net], name in trained)
            for _ in range(phase.repeat):
                if phase.when is not None and not phase.when(ctx):
                    break
                if phase.batch == "next" or batch is None:
                    batch = Batch.from_any(next_batch())
                with ctx.autocast():
                    loss, logs = phase.loss(batch, ctx)
                if phase.lazy:
                    loss = loss * phase.interval
                opt.zero_grad(set_to_none=True)
                ctx.backward(loss, phase.optimizer)
                ctx.step_optimizer(opt, phase.optimizer)
                if phase.after is not None:
                    phase.after(ctx)
                ctx.logs.update(logs)
    finally:
        set_requires_grad(list(networks.values()), True)
    ctx.last_logs = ctx.logs
    return dict(ctx.logs)
