"""Timers and the statistics every benchmark row reports.

GPU work is asynchronous, so device code is timed with CUDA events around
each repetition, after a warm-up that keeps compilation, module loading and
handle creation out of the numbers.  Before every timed repetition the L2
cache is flushed by writing a buffer several times its size: otherwise a
tensor that fits in L2 (50 MB on an H100; a 32x512x32x32 bf16 feature map is
32 MB) is read from the cache and the op looks faster than it will be inside
a network.  Each row reports the median and the 20th/80th percentiles of the
repetitions, as Triton's ``do_bench`` and Liger's benchmarks do.

CPU code is timed with :func:`time.perf_counter`, every provider of a case
interleaved (:func:`time_cpu_interleaved`: one repetition of each in turn, the
order rotated every round) so that a loaded machine slows them alike; CPU
numbers say what ganfast costs on a CPU, nothing about GPU speed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, List, Optional, Sequence

import torch

# Bytes written before each timed CUDA repetition to evict the L2 cache:
# several times the largest L2 we target (H100: 50 MB, H200: 50 MB).
FLUSH_BYTES = 256 << 20


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, linearly interpolated.

    Same definition as ``numpy.quantile``'s default ("linear") and
    ``torch.quantile``: position ``q * (n - 1)`` in the sorted values.
    """
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1]; got {q}")
    xs = sorted(float(v) for v in values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclasses.dataclass(frozen=True)
class Stats:
    """Summary of one timed function, in milliseconds."""

    median: float
    p20: float
    p80: float
    n: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> "Stats":
        return cls(
            median=quantile(times_ms, 0.5),
            p20=quantile(times_ms, 0.2),
            p80=quantile(times_ms, 0.8),
            n=len(times_ms),
        )


def gbps(nbytes: float, ms: float) -> float:
    """Achieved bandwidth in GB/s (10^9 bytes per second) for ``nbytes`` in ``ms``."""
    if ms <= 0:
        raise ValueError(f"time must be positive; got {ms} ms")
    return nbytes / (ms * 1e-3) / 1e9


def tflops(flops: float, ms: float) -> float:
    """Achieved rate in TFLOP/s (10^12 per second) for ``flops`` in ``ms``."""
    if ms <= 0:
        raise ValueError(f"time must be positive; got {ms} ms")
    return flops / (ms * 1e-3) / 1e12


@dataclasses.dataclass(frozen=True)
class TimerConfig:
    """How long to warm up and how many repetitions to take.

    On CUDA, ``warmup_ms`` and ``rep_ms`` are budgets of device time (as in
    ``triton.testing.do_bench``), turned into counts from a first estimate and
    kept within ``[min_reps, max_reps]``.  On CPU, ``warmup`` calls are made and
    then repetitions are taken until ``max_reps`` or, once ``min_reps`` are in,
    until ``rep_ms`` of wall time is spent.
    """

    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    warmup: int = 2
    min_reps: int = 5
    max_reps: int = 1000
    flush_l2: bool = True

    @classmethod
    def full(cls, device_type: str) -> "TimerConfig":
        if device_type == "cuda":
            return cls(warmup_ms=25.0, rep_ms=200.0, min_reps=10, max_reps=1000)
        return cls(warmup=2, rep_ms=1000.0, min_reps=5, max_reps=30, flush_l2=False)

    @classmethod
    def quick(cls, device_type: str) -> "TimerConfig":
        if device_type == "cuda":
            return cls(warmup_ms=10.0, rep_ms=30.0, min_reps=5, max_reps=200)
        return cls(warmup=2, rep_ms=150.0, min_reps=3, max_reps=10, flush_l2=False)


def time_cpu(fn: Callable[[], object], cfg: TimerConfig) -> List[float]:
    """Wall-clock milliseconds of ``fn()`` per repetition, after warm-up."""
    for _ in range(cfg.warmup):
        fn()
    times: List[float] = []
    deadline = time.perf_counter() + cfg.rep_ms * 1e-3
    while len(times) < cfg.max_reps and (len(times) < cfg.min_reps or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_cpu_interleaved(fns: Sequence[Callable[[], object]], cfg: TimerConfig) -> List[object]:
    """Wall-clock milliseconds per repetition of each of ``fns``, timed in turn.

    Each round calls every function once (the order rotated by one each
    round, so none always runs first after another's cache traffic), until
    every function has ``cfg.min_reps`` repetitions and ``len(fns) *
    cfg.rep_ms`` of wall time is spent, or ``cfg.max_reps`` rounds are done.
    ``cfg.warmup`` calls of each come first.  A function that raises is
    dropped from the later rounds and its entry in the result is the
    exception; the others' entries are lists of milliseconds.
    """
    out: List[object] = [[] for _ in fns]
    live = list(range(len(fns)))

    def call(i: int) -> None:
        try:
            t0 = time.perf_counter()
            fns[i]()
            out[i].append((time.perf_counter() - t0) * 1e3)  # type: ignore[union-attr]
        except Exception as err:  # reported in the row, the others go on
            out[i] = err
            live.remove(i)

    for i in list(live):
        for _ in range(cfg.warmup):
            if i in live:
                call(i)
        if i in live:
            out[i] = []
    deadline = time.perf_counter() + len(fns) * cfg.rep_ms * 1e-3
    rounds = 0
    while live and rounds < cfg.max_reps and (rounds < cfg.min_reps or time.perf_counter() < deadline):
        k = rounds % len(live)
        for i in live[k:] + live[:k]:
            call(i)
        rounds += 1
    return out


class CudaTimer:
    """Times device work with CUDA events, flushing L2 before each repetition.

    The flush buffer is allocated once per timer (not at import: nothing here
    touches the device until asked).
    """

    def __init__(self, device: torch.device, cfg: TimerConfig) -> None:
        self.device = device
        self.cfg = cfg
        self._flush: Optional[torch.Tensor] = None

    def _flush_l2(self) -> None:
        if not self.cfg.flush_l2:
            return
        if self._flush is None:
            self._flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device=self.device)
        self._flush.zero_()

    def __call__(self, fn: Callable[[], object]) -> List[float]:
        cfg = self.cfg
        with torch.cuda.device(self.device):
            fn()
            torch.cuda.synchronize()
            # First estimate, flush included, to turn the budgets into counts.
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(5):
                self._flush_l2()
                fn()
            end.record()
            torch.cuda.synchronize()
            estimate = max(start.elapsed_time(end) / 5, 1e-3)
            n_warmup = max(1, int(cfg.warmup_ms / estimate))
            n_rep = min(max(cfg.min_reps, int(cfg.rep_ms / estimate)), cfg.max_reps)
            for _ in range(n_warmup):
                fn()
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
            for i in range(n_rep):
                self._flush_l2()
                starts[i].record()
                fn()
                ends[i].record()
            torch.cuda.synchronize()
            return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def make_timer(device: torch.device, cfg: TimerConfig) -> Callable[[Callable[[], object]], List[float]]:
    """A function ``timer(fn) -> [ms per repetition]`` for ``device``."""
    if device.type == "cuda":
        return CudaTimer(device, cfg)
    if device.type == "cpu":
        return lambda fn: time_cpu(fn, cfg)
    raise ValueError(f"benchmarks run on cpu or cuda devices, not {device.type!r}")
