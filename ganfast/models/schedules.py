"""Schedules: values that are functions of the training step.

A schedule is any callable ``(step, total_steps) -> float``; a method
returns its schedules by name from ``Method.schedules()`` and reads their
current values from ``ctx.schedule[name]`` inside its phases.  The trainer
evaluates every schedule before each iteration and stores the values in
each checkpoint; on resume it evaluates them again at the checkpoint's step
and warns when they differ (the run's length changed, say), so a schedule
never silently jumps.  Being pure functions of the step, schedules need no
state of their own and resume exactly.

Names the trainer itself acts on:

* ``"lr"``: a factor on every optimiser's initial learning rate;
* ``"lr/<optimizer>"``: a factor on one optimiser's (both multiply).

The helpers below cover the usual shapes: :class:`Linear` (learning-rate
decay, instance-noise annealing), :class:`Ramp` (ProGAN's fade-in alpha
from 0 to 1 over a window), :class:`Steps` (SRGAN's 1e-4 then 1e-5).
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Dict, Optional, Sequence

Schedule = Callable[[int, Optional[int]], float]

__all__ = ["Schedule", "Constant", "Linear", "Ramp", "Steps", "evaluate"]


class Constant:
    """``value`` at every step."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int, total: Optional[int] = None) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class Linear:
    """From ``start`` at step 0 to ``end`` at step ``steps`` (default: the run's length), then ``end``.

    ``start * (1 - step / steps) + end * step / steps``, written so that
    ``end == 0`` gives exactly ``start * (1 - step / steps)``.
    """

    def __init__(self, start: float, end: float = 0.0, steps: Optional[int] = None) -> None:
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps must be None or an int >= 1; got {steps!r}")
        self.start, self.end, self.steps = float(start), float(end), steps

    def __call__(self, step: int, total: Optional[int] = None) -> float:
        n = self.steps if self.steps is not None else total
        if n is None:
            raise ValueError("Linear schedule without steps needs the run's total_steps")
        if step >= n:
            return self.end
        p = step / n
        value = self.start * (1.0 - p)
        return value + self.end * p if self.end != 0.0 else value

    def __repr__(self) -> str:
        return f"Linear({self.start}, {self.end}, steps={self.steps})"


class Ramp:
    """0 before ``begin``, rising linearly to 1 at ``begin + length``, 1 after (ProGAN's fade-in alpha)."""

    def __init__(self, begin: int, length: int) -> None:
        if length < 1 or begin < 0:
            raise ValueError(f"Ramp needs begin >= 0 and length >= 1; got begin={begin}, length={length}")
        self.begin, self.length = int(begin), int(length)

    def __call__(self, step: int, total: Optional[int] = None) -> float:
        return min(1.0, max(0.0, (step - self.begin) / self.length))

    def __repr__(self) -> str:
        return f"Ramp(begin={self.begin}, length={self.length})"


class Steps:
    """Piecewise constant: ``values[i]`` from ``boundaries[i - 1]`` on (``values[0]`` before the first).

    Boundaries are steps, or fractions of the run when every one is in (0, 1).
    """

    def __init__(self, boundaries: Sequence[float], values: Sequence[float]) -> None:
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"Steps needs one more value than boundaries; got {len(boundaries)} boundaries and "
                             f"{len(values)} values")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"Steps boundaries must increase; got {list(boundaries)}")
        self.boundaries = [float(b) for b in boundaries]
        self.values = [float(v) for v in values]
        self.fractional = all(0.0 < b < 1.0 for b in self.boundaries)

    def __call__(self, step: int, total: Optional[int] = None) -> float:
        bounds = self.boundaries
        if self.fractional:
            if total is None:
                raise ValueError("Steps with fractional boundaries needs the run's total_steps")
            bounds = [b * total for b in bounds]
        return self.values[bisect.bisect_right(bounds, step)]

    def __repr__(self) -> str:
        return f"Steps({self.boundaries}, {self.values})"


def evaluate(schedules: Dict[str, Schedule], step: int, total: Optional[int]) -> Dict[str, float]:
    """``{name: float(schedule(step, total))}``; a non-finite value raises ValueError naming the schedule."""
    out = {}
    for name, fn in schedules.items():
        v = float(fn(step, total))
        if not math.isfinite(v):
            raise ValueError(f"schedule {name!r} gave {v} at step {step}")
        out[name] = v
    return out
