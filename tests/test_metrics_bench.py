"""The FID benchmark tables (``ganfast bench --op sqrtm_trace feature_stats``): cases, baselines, runner rows."""

import pytest
import torch

from ganfast.bench import all_cases, bench_ops, load_cases
from ganfast.bench.case import FWD, FWD_BWD
from ganfast.bench.report import format_table
from ganfast.bench.runner import EAGER, BenchConfig, Runner, ganfast_provider
from ganfast.bench.sqrtm import FrechetCase, frechet_eigvals, frechet_scipy
from ganfast.bench.timing import TimerConfig
from ganfast.metrics import frechet_distance

import scipy.linalg  # noqa: E402, F401  (the test extra: the bench compares with it)


class _NoCompileRunner(Runner):
    """Eager and ganfast-torch only: torch.compile costs tens of seconds on a CPU."""

    def providers(self, op):
        return [EAGER, ganfast_provider("torch")]


def _runner():
    cfg = BenchConfig(device=torch.device("cpu"), quick=True,
                      timer=TimerConfig(warmup=0, min_reps=1, max_reps=1, rep_ms=0.0, flush_l2=False))
    return _NoCompileRunner(cfg)


def test_tables():
    assert {"sqrtm_trace", "feature_stats"} <= set(bench_ops())
    sq, st = all_cases("sqrtm_trace"), all_cases("feature_stats")
    assert any(c.shape == (2048, 2048) and c.params["baseline"] == "scipy" and "cpu" in c.devices for c in sq)
    assert any(c.shape == (2048, 2048) and c.params["baseline"] == "eigvals" for c in sq)
    assert {c.params["method"] for c in sq} == {"auto", "eigh", "newton_schulz"}
    assert any(c.shape == (50000, 2048) for c in st)
    assert all(c.passes == (FWD,) for c in st)  # statistics have no backward
    assert all(max(c.shape) <= 2048 and c.shape[0] * c.shape[1] <= 1 << 17 for c in load_cases("feature_stats", True))
    assert all(c.shape[0] <= 256 for c in load_cases("sqrtm_trace", quick=True))


def test_baselines_compute_the_frechet_distance(gen):
    case = FrechetCase(op="sqrtm_trace", name="t", shape=(24, 24), params={"baseline": "scipy", "method": "auto"})
    mu1, s1, mu2, s2 = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False).args
    want = frechet_distance(mu1, s1, mu2, s2)
    assert float(frechet_scipy(mu1, s1, mu2, s2)) == pytest.approx(want, rel=1e-11)
    assert float(frechet_eigvals(mu1, s1, mu2, s2)) == pytest.approx(want, rel=1e-11)
    assert float(case.ganfast(mu1, s1, mu2, s2)) == pytest.approx(want, rel=1e-13)
    # the SciPy baseline's gradient (inverse of the root) is ganfast's closed form
    a, b = s1.clone().requires_grad_(), s2.clone().requires_grad_()
    ga = torch.autograd.grad(frechet_scipy(mu1, a, mu2, b), (a, b))
    a, b = s1.clone().requires_grad_(), s2.clone().requires_grad_()
    gb = torch.autograd.grad(case.ganfast(mu1, a, mu2, b), (a, b))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-7, atol=1e-9 * float(y.abs().max()))


def test_runner_rows_on_the_quick_cases():
    runner = _runner()
    rows = runner.run(load_cases("sqrtm_trace", quick=True) + load_cases("feature_stats", quick=True))
    for r in rows:
        assert r.status == "ok", (r.case, r.pass_, r.provider, r.reason)
        assert r.median_ms > 0
        if r.op == "sqrtm_trace" and r.pass_ == FWD:
            assert r.rel_err < 1e-12, r  # ganfast and SciPy/eigvals agree in float64
    assert not [r for r in rows if r.op == "feature_stats" and r.pass_ == FWD_BWD]
    assert {(r.op, r.pass_) for r in rows} == {("sqrtm_trace", FWD), ("sqrtm_trace", FWD_BWD), ("feature_stats", FWD)}
    assert "rel err" in format_table(rows)


def test_gpu_only_cases_say_so_on_a_cpu():
    gpu = [c for c in all_cases("sqrtm_trace") if c.devices == ("cuda",)]
    assert gpu
    (row,) = _runner().run_one(gpu[0], "float32", FWD)
    assert row.status == "skipped" and "cuda devices only" in row.reason
