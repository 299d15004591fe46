"""feature_stats: every backend that can run here against the float64 reference."""

import importlib

import numpy as np
import pytest
import torch

import ganfast
from ganfast import testing
from ganfast.ref import feature_stats as ref

op_module = importlib.import_module("ganfast.ops.feature_stats")

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "feature_stats"


def _state(d, device, shift):
    return shift.to(device), torch.zeros(d, dtype=torch.float64, device=device), \
        torch.zeros(d, d, dtype=torch.float64, device=device)


def _run(backend, x, shift):
    s, total, gram = _state(x.shape[1], x.device, shift)
    ganfast.ops.feature_stats(x, s, total, gram, backend=backend)
    return total, gram


@pytest.mark.parametrize("n,d", [(1, 1), (37, 45), (70, 3), (5, 130)], ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_matches_reference(backend, device, n, d, dtype, gen):
    x = (torch.randn(n, d, generator=gen, dtype=torch.float64) * 3 + 5).to(dtype).to(device)
    shift = x[: max(1, n // 2)].double().mean(0)
    total, gram = _run(backend, x, shift)
    xs = x.double() - shift.to(device)  # exact: float64 differences of the stored values
    # float64 sums of products of the same values: the only difference is summation order.
    testing.assert_close(total, xs.sum(0), torch.float64, 0, "total")
    testing.assert_close(gram, xs.T @ xs, torch.float64, 0, "gram")
    if backend == "triton":  # one tile computed, stored twice: symmetric by construction
        assert torch.equal(gram, gram.T)


def test_accumulates_in_place_over_strided_input(backend, device, gen):
    base = torch.randn(40, 60, generator=gen).to(device)
    x = base[::2, 1::3]  # non-contiguous, odd strides
    shift = torch.randn(x.shape[1], generator=gen, dtype=torch.float64).to(device)
    s, total, gram = _state(x.shape[1], device, shift)
    total += 1.0
    gram += 2.0
    ganfast.ops.feature_stats(x, s, total, gram, backend=backend)
    xs = x.double() - shift
    testing.assert_close(total, xs.sum(0) + 1.0, torch.float64, 0, "total")
    testing.assert_close(gram, xs.T @ xs + 2.0, torch.float64, 0, "gram")


def test_large_means_keep_every_digit(gen):
    """Features ~1e4 +- 1 in float32: the shifted float64 sums give numpy's two-pass covariance to ~1e-13."""
    x = (torch.randn(5000, 32, generator=gen, dtype=torch.float64) + 1e4).float()
    shift = x[:100].double().mean(0)
    for backend in [c.backend for c in testing.backend_cases(OP) if c.device == "cpu" and c.availability]:
        total, gram = _run(backend, x[:1000], shift)  # the interpreter is slow: 1000 rows
        n = 1000
        cov = (gram - torch.outer(total, total) / n) / (n - 1)
        want = np.cov(x[:1000].double().numpy(), rowvar=False)
        assert np.abs(cov.numpy() - want).max() <= 1e-12 * np.abs(want).max(), backend


def test_opcheck(gen):
    x = torch.randn(9, 5, generator=gen)
    args = (x, x.double().mean(0), torch.zeros(5, dtype=torch.float64), torch.zeros(5, 5, dtype=torch.float64), "torch")
    for op in op_module.CUSTOM_OPS:
        torch.library.opcheck(op, args)


def test_reference_chunks_large_batches(gen, monkeypatch):
    monkeypatch.setattr(ref, "CHUNK_ROWS", 7)
    x = torch.randn(50, 4, generator=gen)
    shift = torch.zeros(4, dtype=torch.float64)
    total, gram = _run("torch", x, shift)
    testing.assert_close(gram, x.double().T @ x.double(), torch.float64, 0, "gram")


def test_bad_arguments(gen):
    x = torch.randn(4, 3)
    s, t, g = _state(3, "cpu", torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must have shape \(N, d\)"):
        ganfast.ops.feature_stats(x[None], s, t, g)
    with pytest.raises(TypeError, match="gram must be a float64 tensor"):
        ganfast.ops.feature_stats(x, s, t, g.float())
    with pytest.raises(ValueError, match=r"total must have shape \(3,\)"):
        ganfast.ops.feature_stats(x, s, torch.zeros(4, dtype=torch.float64), g)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        ganfast.ops.feature_stats(x.long(), s, t, g)
    with pytest.raises(ValueError, match="contiguous"):
        ganfast.ops.feature_stats(x, s, t, torch.zeros(3, 6, dtype=torch.float64)[:, ::2])


def test_former_name_is_an_alias():
    """``feature_stats_update`` was this function's name before the op took one name everywhere."""
    assert ganfast.ops.feature_stats_update is ganfast.ops.feature_stats
    assert ref.feature_stats_update is ref.feature_stats
