"""The generic benchmark loop: cases x dtypes x passes x providers.

Providers, for every case:

``eager``
    the unfused PyTorch a user writes without ganfast (``case.eager()``).
``compile``
    ``torch.compile`` of that same function; skipped, with the reason in the
    table, where compilation fails (no C++ compiler, unsupported Python).
``ganfast-auto``
    the registered ganfast op as a user calls it (``backend="auto"``: the
    row of ``ganfast._backend.OPS`` for the device picks).
``ganfast-<backend>``
    the registered ganfast op with ``backend=`` each backend that is
    available on the device (``ganfast.available_backends``).

On a CPU the providers of one case are timed interleaved
(:func:`~ganfast.bench.timing.time_cpu_interleaved`), so a loaded machine
slows them alike; on a GPU each is timed on its own with CUDA events.

Before a provider is timed, its output (and, for fwd+bwd, its gradients) is
compared with the eager function run in float64 on upcast inputs; a provider
outside the dtype's tolerance is still timed but its row says ``mismatch``,
and the command exits non-zero (a baseline outside it is only noted).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .._backend import BACKENDS
from ..testing import norm_tolerance
from .case import DTYPES, FWD, FWD_BWD, PASSES, BenchCase, max_rel_err
from .peak import Peaks
from .timing import Stats, TimerConfig, gbps, make_timer, tflops, time_cpu_interleaved

GANFAST_BACKENDS: Tuple[str, ...] = BACKENDS

# The relative error (||out - ref|| / ||ref||, ref in float64) a provider may
# show is ganfast.testing.norm_tolerance: one table for the project, which
# says why the benchmark's bound is norm-wise.

# On a CPU: cases above this many elements are skipped (minutes per case, and
# CPU timings say nothing about GPU speed anyway) ...
CPU_MAX_NUMEL = 1 << 22
# ... and Triton kernels, which run there only through the interpreter
# (TRITON_INTERPRET=1, roughly a million times slower), only up to this.
INTERPRETER_MAX_NUMEL = 1 << 17


@dataclasses.dataclass(frozen=True)
class Provider:
    name: str
    kind: str  # "eager" | "compile" | "ganfast"
    backend: Optional[str] = None


EAGER = Provider("eager", "eager")
COMPILE = Provider("compile", "compile")


def ganfast_provider(backend: str) -> Provider:
    return Provider(f"ganfast-{backend}", "ganfast", backend)


AUTO = ganfast_provider("auto")
ALL_PROVIDERS: Tuple[Provider, ...] = (EAGER, COMPILE, AUTO) + tuple(ganfast_provider(b) for b in GANFAST_BACKENDS)


@dataclasses.dataclass
class Row:
    op: str
    case: str
    shape: List[int]
    dtype: str
    pass_: str
    provider: str
    status: str  # "ok" | "mismatch" | "skipped" | "error"
    reason: str = ""
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    median_ms: Optional[float] = None
    p20_ms: Optional[float] = None
    p80_ms: Optional[float] = None
    reps: int = 0
    bytes: int = 0
    flops: int = 0
    gbps: Optional[float] = None
    tflops: Optional[float] = None
    pct_peak_bw: Optional[float] = None
    pct_peak_flops: Optional[float] = None
    speedup_vs_eager: Optional[float] = None
    speedup_vs_compile: Optional[float] = None
    rel_err: Optional[float] = None

    def as_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pass"] = d.pop("pass_")
        for k in ("rel_err",):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = str(d[k])  # JSON has no inf
        return d

    @property
    def timed(self) -> bool:
        return self.median_ms is not None


@dataclasses.dataclass
class BenchConfig:
    device: torch.device
    quick: bool = False
    dtypes: Optional[Sequence[str]] = None  # None: each case's own
    passes: Sequence[str] = PASSES
    seed: int = 0
    cpu_max_numel: int = CPU_MAX_NUMEL
    interpreter_max_numel: int = INTERPRETER_MAX_NUMEL
    timer: Optional[TimerConfig] = None

    def timer_config(self) -> TimerConfig:
        if self.timer is not None:
            return self.timer
        return TimerConfig.quick(self.device.type) if self.quick else TimerConfig.full(self.device.type)


def ganfast_availability(op: str, device: torch.device) -> Dict[str, Tuple[bool, str]]:
    """``{backend: (available, reason)}`` for ``op`` on ``device``; never raises.

    Asks ``ganfast.available_backends``; if that raises (one backend's probe
    failing, say), asks backend by backend so one broken probe does not hide
    the others.
    """
    from .. import _backend

    try:
        avail = _backend.available_backends(op, device=device)
        return {b: (bool(a), getattr(a, "reason", "")) for b, a in avail.items()}
    except Exception:
        pass
    out: Dict[str, Tuple[bool, str]] = {}
    for b in GANFAST_BACKENDS:
        try:
            a = _backend.status(op, b, device.type)
            out[b] = (bool(a), getattr(a, "reason", ""))
        except Exception as err:
            out[b] = (False, f"availability check failed: {_first_line(err)}")
    return out


def _first_line(err: BaseException, limit: int = 300) -> str:
    text = str(err).strip().splitlines()
    msg = f"{type(err).__name__}: {text[0] if text else ''}"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def case_skip_reason(case: BenchCase, device: torch.device, cfg: "BenchConfig") -> Optional[str]:
    """Why a whole case is not run on ``device`` (None: it is)."""
    if device.type not in case.devices:
        return f"this case runs on {' and '.join(case.devices)} devices only"
    if device.type == "cpu" and case.numel > cfg.cpu_max_numel:
        return f"{case.numel:,} elements is too large for a CPU run (limit {cfg.cpu_max_numel:,}); run on a GPU"
    return None


def skip_reason(case: BenchCase, provider: Provider, device: torch.device, cfg: "BenchConfig") -> Optional[str]:
    """Why one available provider is not timed on one case (None: it is)."""
    if (
        device.type == "cpu"
        and provider.kind == "ganfast"
        and provider.backend == "triton"
        and case.numel > cfg.interpreter_max_numel
    ):
        return (
            f"Triton on CPU runs through the interpreter; {case.numel:,} elements is over the "
            f"{cfg.interpreter_max_numel:,} it is timed at (run on a GPU)"
        )
    return None


def make_callable(case: BenchCase, provider: Provider) -> Callable[..., torch.Tensor]:
    """The function of ``case``'s tensor arguments that ``provider`` times."""
    if provider.kind == "eager":
        return case.eager()
    if provider.kind == "compile":
        # A fresh compile per (case, dtype, pass): the eager functions of all
        # cases share one code object, and Dynamo's per-code cache limit would
        # otherwise make later cases fall back to eager without a word.
        torch._dynamo.reset()
        return torch.compile(case.eager())
    if provider.kind == "ganfast":
        return functools.partial(case.ganfast, backend=provider.backend)
    raise ValueError(f"unknown provider kind {provider.kind!r}")


def make_step(fn: Callable[..., torch.Tensor], args: Tuple[Any, ...], grads: List[torch.Tensor],
              g: Optional[torch.Tensor]) -> Callable[[], List[torch.Tensor]]:
    """One timed repetition: the forward, or forward and backward when ``g`` is given."""
    if g is None:
        def forward() -> List[torch.Tensor]:
            return [fn(*args)]
        return forward

    def forward_backward() -> List[torch.Tensor]:
        y = fn(*args)
        # autograd.grad rather than backward(): nothing accumulates in .grad
        # between repetitions, so no zeroing step is timed.
        return [y, *torch.autograd.grad(y, grads, g)]
    return forward_backward


def reference(case: BenchCase, args: Tuple[Any, ...], grad: bool, device: torch.device, seed: int = 0):
    """The eager function in float64 on upcast inputs: ``([y, *grads], g)``.

    ``g`` is the random incoming gradient (in the inputs' dtype) every
    provider's backward is given; None for a forward-only pass.
    """
    args64 = tuple(
        a.detach().to(torch.float64).requires_grad_(grad and a.requires_grad) if torch.is_tensor(a) else a
        for a in args
    )
    y64 = case.eager()(*args64)
    if not grad:
        return [y64.detach()], None
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    dtype = next(a.dtype for a in args if torch.is_tensor(a))
    g = torch.randn(y64.shape, device=device, generator=gen).to(dtype)
    leaves = [a for a in args64 if torch.is_tensor(a) and a.requires_grad]
    grads64 = torch.autograd.grad(y64, leaves, g.to(torch.float64))
    return [y64.detach(), *grads64], g


class Runner:
    """Runs cases and yields :class:`Row` objects; ``progress`` gets a line per step."""

    def __init__(self, config: BenchConfig, peaks: Optional[Peaks] = None,
                 progress: Callable[[str], None] = lambda s: None) -> None:
        self.config = config
        self.peaks = peaks
        self.progress = progress
        self.timer = make_timer(config.device, config.timer_config())
        self._availability: Dict[str, Dict[str, Tuple[bool, str]]] = {}
        self._tracebacks_shown: set = set()

    # --- providers ----------------------------------------------------------

    def availability(self, op: str) -> Dict[str, Tuple[bool, str]]:
        if op not in self._availability:
            self._availability[op] = ganfast_availability(op, self.config.device)
        return self._availability[op]

    def providers(self, op: str) -> List[Provider]:
        avail = self.availability(op)
        return [EAGER, COMPILE, AUTO] + [ganfast_provider(b) for b in GANFAST_BACKENDS
                                         if avail.get(b, (False, ""))[0]]

    def unavailable(self, op: str) -> Dict[str, str]:
        return {f"ganfast-{b}": r for b, (ok, r) in self.availability(op).items() if not ok}

    # --- the loop -----------------------------------------------------------

    def dtypes_for(self, case: BenchCase) -> List[str]:
        return list(self.config.dtypes) if self.config.dtypes else list(case.dtypes)

    def run(self, cases: Sequence[BenchCase]) -> List[Row]:
        rows: List[Row] = []
        for case in cases:
            for dname in self.dtypes_for(case):
                for pass_ in self.config.passes:
                    if pass_ in case.passes:
                        rows.extend(self.run_one(case, dname, pass_))
        return rows

    def _row(self, case: BenchCase, dname: str, pass_: str, provider: str, status: str, reason: str = "") -> Row:
        return Row(
            op=case.op, case=case.name, shape=list(case.shape), dtype=dname, pass_=pass_,
            provider=provider, status=status, reason=reason, params=dict(case.params),
        )

    def run_one(self, case: BenchCase, dname: str, pass_: str) -> List[Row]:
        cfg = self.config
        dev = cfg.device
        dtype = DTYPES[dname]
        label = f"{case.op} {case.name} {case.shape_str} {dname} {pass_}"
        reason = case_skip_reason(case, dev, cfg)
        if reason:
            self.progress(f"skip  {label}: {reason}")
            return [self._row(case, dname, pass_, "*", "skipped", reason)]

        grad = pass_ == FWD_BWD
        inputs = case.make_inputs(dtype, dev, requires_grad=grad, seed=cfg.seed)
        refs, g = reference(case, inputs.args, grad, dev, cfg.seed)
        nbytes = case.bytes_moved(dtype, pass_)
        nflops = case.flops(pass_)
        tol = norm_tolerance(dtype)

        rows: List[Row] = []
        pending: List[Tuple[Row, Callable[[], List[torch.Tensor]]]] = []  # CPU: timed together below
        for provider in self.providers(case.op):
            row = self._row(case, dname, pass_, provider.name, "ok")
            row.bytes, row.flops = nbytes, nflops
            rows.append(row)
            skip = skip_reason(case, provider, dev, cfg)
            if skip:
                row.status, row.reason = "skipped", skip
                self.progress(f"skip  {label} {provider.name}: {skip}")
                continue
            self.progress(f"time  {label} {provider.name}")
            try:
                step = make_step(make_callable(case, provider), inputs.args, inputs.grads, g)
                outs = step()  # first call: compiles, and is checked
                row.rel_err = max_rel_err(outs, refs)
                if not row.rel_err <= tol:
                    # A ganfast provider off the float64 result fails the run.  A baseline
                    # (eager PyTorch, or torch.compile of it) in bf16/fp16 can be off
                    # by its own roundings: that is reported, not failed, since it is
                    # the thing compared against, not the thing under test.
                    row.reason = f"rel. error {row.rel_err:.2e} vs float64 eager exceeds {tol:.0e}"
                    if provider.kind == "ganfast":
                        row.status = "mismatch"
                    else:
                        row.reason = "baseline " + row.reason
                del outs
                if dev.type == "cpu":
                    pending.append((row, step))
                    continue
                stats = Stats.of(self.timer(step))
            except Exception as err:
                if provider.kind == "compile":
                    row.status, row.reason = "skipped", f"torch.compile failed: {_first_line(err)}"
                else:
                    row.status, row.reason = "error", _first_line(err)
                    if row.reason not in self._tracebacks_shown:  # once per distinct error
                        self._tracebacks_shown.add(row.reason)
                        self.progress(traceback.format_exc())
                self.progress(f"      {row.status}: {row.reason}")
                continue
            self._fill(row, stats)
        if pending:
            self.progress(f"time  {label}: {', '.join(r.provider for r, _ in pending)} interleaved")
            for (row, _), times in zip(pending, time_cpu_interleaved([st for _, st in pending],
                                                                     self.config.timer_config())):
                if isinstance(times, Exception):
                    row.status, row.reason = "error", _first_line(times)
                    self.progress(f"      {row.provider} {row.status}: {row.reason}")
                else:
                    self._fill(row, Stats.of(times))

        by_name = {r.provider: r for r in rows if r.timed}
        for base, attr in (("eager", "speedup_vs_eager"), ("compile", "speedup_vs_compile")):
            if base in by_name:
                for r in rows:
                    if r.timed:
                        setattr(r, attr, by_name[base].median_ms / r.median_ms)
        del inputs, refs, g
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        return rows

    def _fill(self, row: Row, stats: Stats) -> None:
        row.median_ms, row.p20_ms, row.p80_ms, row.reps = stats.median, stats.p20, stats.p80, stats.n
        row.gbps = gbps(row.bytes, stats.median)
        row.tflops = tflops(row.flops, stats.median)
        if self.peaks is not None:
            row.pct_peak_bw = 100.0 * row.gbps / self.peaks.bandwidth_gbps
            row.pct_peak_flops = 100.0 * row.tflops / self.peaks.flops_tflops
