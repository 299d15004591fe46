"""Glue for the pytest-benchmark suites in ``bench/bench_<op>.py``.

The suites time the same cases as ``ganfast bench`` (the tables in
``ganfast/bench/<op>.py``, not a re-declaration) with pytest-benchmark's
clock, so results can be kept and compared with ``--benchmark-save`` /
``--benchmark-compare``.  pytest-benchmark times on the host, so every
repetition ends with a device synchronisation, and the L2 flush runs in the
untimed ``setup`` of each round; ``ganfast bench`` (CUDA events) remains the
more precise instrument for short kernels.

Usage in ``bench/bench_<op>.py``::

    from ganfast.bench import suite
    pytest_generate_tests = suite.generate("bias_act")

    def test_bias_act(benchmark, bench_device, bench_case):
        suite.run(benchmark, bench_device, bench_case)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional

import torch

from . import all_cases
from .case import DTYPES, FWD_BWD, PASSES, BenchCase, max_rel_err
from .runner import (
    ALL_PROVIDERS,
    BenchConfig,
    Provider,
    case_skip_reason,
    ganfast_availability,
    make_callable,
    make_step,
    reference,
    skip_reason,
)
from ..testing import norm_tolerance
from .timing import FLUSH_BYTES, gbps, tflops


@dataclasses.dataclass(frozen=True)
class Param:
    case: BenchCase
    dtype: str
    pass_: str
    provider: Provider

    @property
    def id(self) -> str:
        name = self.case.name.replace(" ", "_")
        return f"{name}-{self.case.shape_str}-{self.dtype}-{self.pass_}-{self.provider.name}"


def params(op: str) -> List[Param]:
    """Every (case, dtype, pass, provider) of ``op``: static data, no device touched."""
    return [
        Param(case, dtype, pass_, provider)
        for case in all_cases(op)
        for dtype in case.dtypes
        for pass_ in PASSES
        if pass_ in case.passes
        for provider in ALL_PROVIDERS
    ]


def generate(op: str) -> Callable[[Any], None]:
    """A ``pytest_generate_tests`` hook parametrising ``bench_case`` over :func:`params`."""

    def pytest_generate_tests(metafunc: Any) -> None:
        if "bench_case" in metafunc.fixturenames:
            ps = params(op)
            metafunc.parametrize("bench_case", ps, ids=[p.id for p in ps])

    return pytest_generate_tests


def _rounds(device: torch.device, case: BenchCase) -> Dict[str, int]:
    if device.type == "cuda":
        return {"rounds": 50, "warmup_rounds": 5}
    return {"rounds": 5, "warmup_rounds": 1}


def run(benchmark: Any, device: torch.device, param: Param, peaks: Optional[Any] = None) -> None:
    """Check one provider on one case against float64 eager, then time it."""
    import pytest

    cfg = BenchConfig(device=device)
    case, provider = param.case, param.provider
    reason = case_skip_reason(case, device, cfg)
    if reason:
        pytest.skip(reason)
    if provider.kind == "ganfast":
        ok, why = ganfast_availability(case.op, device).get(provider.backend, (False, "unknown backend"))
        if not ok:
            pytest.skip(f"{provider.name} is unavailable here: {why}")
    reason = skip_reason(case, provider, device, cfg)
    if reason:
        pytest.skip(reason)

    dtype = DTYPES[param.dtype]
    grad = param.pass_ == FWD_BWD
    inputs = case.make_inputs(dtype, device, requires_grad=grad, seed=cfg.seed)
    refs, g = reference(case, inputs.args, grad, device, cfg.seed)
    try:
        step = make_step(make_callable(case, provider), inputs.args, inputs.grads, g)
        outs = step()
    except Exception as err:
        if provider.kind == "compile":
            pytest.skip(f"torch.compile failed: {type(err).__name__}: {str(err).strip()[:300]}")
        raise
    err = max_rel_err(outs, refs)
    tol = norm_tolerance(dtype)
    assert err <= tol, f"{provider.name} disagrees with float64 eager: rel. error {err:.2e} > {tol:.0e}"
    del outs

    setup: Optional[Callable[[], None]] = None
    target: Callable[[], Any] = step
    if device.type == "cuda":
        flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device=device)

        def setup() -> None:
            flush.zero_()  # evict L2, untimed
            torch.cuda.synchronize(device)

        def target() -> Any:
            out = step()
            torch.cuda.synchronize(device)
            return out

    benchmark.group = f"{case.op} {case.name} {case.shape_str} {param.dtype} {param.pass_}"
    nbytes, nflops = case.bytes_moved(dtype, param.pass_), case.flops(param.pass_)
    benchmark.extra_info.update(
        op=case.op, case=case.name, shape=list(case.shape), dtype=param.dtype, pass_=param.pass_,
        provider=provider.name, bytes=nbytes, flops=nflops, rel_err=err,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    )
    benchmark.pedantic(target, setup=setup, iterations=1, **_rounds(device, case))
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.median > 0:
        ms = stats.median * 1e3
        benchmark.extra_info.update(gbps=gbps(nbytes, ms), tflops=tflops(nflops, ms))
        if peaks is not None:
            benchmark.extra_info.update(
                pct_peak_bw=100.0 * gbps(nbytes, ms) / peaks.bandwidth_gbps,
                pct_peak_flops=100.0 * tflops(nflops, ms) / peaks.flops_tflops,
            )
