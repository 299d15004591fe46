"""sqrtm_trace and sqrtm against SciPy, against 60-digit arithmetic, and their registrations.

Where SciPy is wrong: on rank-deficient covariances (fewer samples than
dimensions) ``scipy.linalg.sqrtm(S1 @ S2)`` works on a singular,
non-symmetric matrix through a complex Schur form; its trace comes back with
an imaginary part (~1e-7) and a real part off by ~1e-8 relative.  On inputs
built to be exactly rank deficient (integer factors) the 60-digit answer
shows ganfast exact to rounding there and SciPy off (test_rank_deficient_*).
"""

import functools
import importlib

import numpy as np
import pytest
import torch

import ganfast
from ganfast import testing
from ganfast.ref import sqrtm as ref

import mpmath  # noqa: E402  (the test extra; missing it must fail, not skip the file)
import scipy.linalg as scipy_linalg  # noqa: E402

ops_sqrtm = importlib.import_module("ganfast.ops.sqrtm")  # the module (ganfast.ops.sqrtm is the function)


def _cov(n, d, gen, scale=1.0, dtype=torch.float64):
    """Covariance of n samples of correlated, non-negative (post-ReLU, like Inception) features."""
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64) / d ** 0.5
    x = (torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix).relu() * scale
    return torch.cov(x.T).to(dtype)


def _scipy_trace(s1, s2):
    return np.trace(scipy_linalg.sqrtm(s1.double().numpy() @ s2.double().numpy()))


def _exact_trace(s1: np.ndarray, s2: np.ndarray, digits: int = 60) -> float:
    """tr sqrt(S1 S2) from the eigenvalues of the product in `digits`-digit arithmetic (mpmath)."""
    with mpmath.workdps(digits):
        p = mpmath.matrix(s1.tolist()) * mpmath.matrix(s2.tolist())
        ev = mpmath.eig(p, left=False, right=False)
        return float(sum(mpmath.sqrt(mpmath.re(e)) for e in ev if mpmath.re(e) > 0))


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize("d,n1,n2", [(8, 50, 40), (64, 500, 300), (257, 1000, 900)])
@pytest.mark.parametrize("method", ["auto", "cholesky", "eigh"])
def test_matches_scipy_full_rank(d, n1, n2, method, gen):
    s1, s2 = _cov(n1, d, gen), _cov(n2, d, gen, scale=1.3)
    want = _scipy_trace(s1, s2)
    assert abs(want.imag) < 1e-10 * abs(want.real)  # SciPy is accurate here
    got = ganfast.ops.sqrtm_trace(s1, s2, method=method)
    assert got.dtype == torch.float64 and got.shape == ()
    assert abs(float(got) - want.real) <= 1e-10 * abs(want.real)


@functools.lru_cache(maxsize=None)
def _rotation(d: int) -> torch.Tensor:
    """A random dense orthogonal matrix (fixed seed; built once per size)."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64))
    return q


def _rotated_blocks(gen, d, samples, b=64):
    """Two dense d x d covariances Q B1 Q^T, Q B2 Q^T from block-diagonal B1, B2 (blocks of b).

    tr sqrt(Q B1 Q^T Q B2 Q^T) = tr sqrt(B1 B2) = the sum over the blocks, so
    a reference is d / b small problems; ganfast sees the dense matrices.
    """
    s1 = torch.zeros(d, d, dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    pairs = []
    for k in range(d // b):
        c1, c2 = _cov(300, b, gen), _cov(samples(k), b, gen)
        s1[k * b:(k + 1) * b, k * b:(k + 1) * b] = c1
        s2[k * b:(k + 1) * b, k * b:(k + 1) * b] = c2
        pairs.append((c1, c2))
    q = _rotation(d)
    return q @ s1 @ q.T, q @ s2 @ q.T, pairs


def test_matches_scipy_2048(gen):
    """The FID size, d = 2048, against SciPy's sqrtm (per block: SciPy at 2048 takes ~10 s here)."""
    r1, r2, pairs = _rotated_blocks(gen, 2048, lambda k: 200 + k)
    want = sum(_scipy_trace(c1, c2).real for c1, c2 in pairs)
    got = float(ganfast.ops.sqrtm_trace(r1, r2))
    assert abs(got - want) <= 1e-9 * abs(want)
    # and the distance itself (FID from 2048-d statistics)
    from ganfast.metrics import frechet_distance

    mu1, mu2 = torch.rand(2048, generator=gen, dtype=torch.float64), torch.rand(2048, generator=gen, dtype=torch.float64)
    fd = float((mu1 - mu2).square().sum() + r1.trace() + r2.trace()) - 2 * want
    assert frechet_distance(mu1, r1, mu2, r2) == pytest.approx(fd, rel=1e-9)


def test_rank_deficient_dense(gen):
    """Half the blocks of sigma2 from 40 samples (rank 39 of 64): dense, singular, 1024-d.

    The reference sums the blocks' traces (each exact by test_rank_deficient_exact's
    argument); SciPy is off by ~1e-8 on such blocks, so it is not the reference here.
    """
    r1, r2, pairs = _rotated_blocks(gen, 1024, lambda k: 40 if k % 2 else 300)
    want = sum(float(ganfast.ops.sqrtm_trace(c1, c2, method="eigh")) for c1, c2 in pairs)
    for method in ("auto", "eigh"):
        got = float(ganfast.ops.sqrtm_trace(r1, r2, method=method))
        assert abs(got - want) <= 1e-10 * abs(want), method
    # both singular: the eigh route, and still exact
    got = float(ganfast.ops.sqrtm_trace(r2, r2))
    assert got == pytest.approx(float(torch.trace(r2)), rel=1e-10)


@pytest.mark.slow
def test_matches_scipy_2048_dense(gen):
    """Dense 2048-d covariances of 4000 and 3000 samples against SciPy's sqrtm of the product."""
    s1, s2 = _cov(4000, 2048, gen), _cov(3000, 2048, gen, scale=0.8)
    want = _scipy_trace(s1, s2).real
    got = float(ganfast.ops.sqrtm_trace(s1, s2))
    assert abs(got - want) <= 1e-9 * abs(want)


@pytest.mark.parametrize("d,k1,k2", [(12, 4, 7), (16, 5, 16), (20, 9, 11)])
def test_rank_deficient_exact(d, k1, k2):
    """S = A A^T with integer A (d x k) is exactly representable and exactly of rank k."""
    rng = np.random.default_rng(d * 100 + k1)
    a = rng.integers(-3, 4, size=(d, k1)).astype(np.float64)
    b = rng.integers(-3, 4, size=(d, k2)).astype(np.float64)
    s1, s2 = a @ a.T, b @ b.T
    exact = _exact_trace(s1, s2)
    for method in ("auto", "eigh"):
        got = float(ganfast.ops.sqrtm_trace(torch.from_numpy(s1), torch.from_numpy(s2), method=method))
        assert abs(got - exact) <= 1e-12 * exact, (method, got, exact)
    # SciPy is the one that is wrong here (see the module docstring); recorded, not required.
    sc = _scipy_trace(torch.from_numpy(s1), torch.from_numpy(s2))
    if k1 < d and k2 < d:
        assert abs(sc.real - exact) > 1e-12 * exact or abs(sc.imag) > 0


def test_fewer_samples_than_dimensions_is_finite_and_agrees_with_scipy(gen):
    s1, s2 = _cov(30, 96, gen), _cov(40, 96, gen)  # ranks 29 and 39 of 96
    got = float(ganfast.ops.sqrtm_trace(s1, s2))
    want = _scipy_trace(s1, s2)
    assert np.isfinite(got) and got > 0
    # SciPy's answer is only good to ~1e-8 here (complex part ~1e-8); ours is exact (test above).
    assert abs(got - want.real) <= 1e-6 * abs(want.real)
    assert float(ganfast.ops.sqrtm_trace(s1, s2, method="eigh")) == pytest.approx(got, rel=1e-12)


def test_zero_and_identical_inputs(gen):
    s = _cov(200, 24, gen)
    zero = torch.zeros(24, 24, dtype=torch.float64)
    assert float(ganfast.ops.sqrtm_trace(s, zero)) == 0.0
    assert float(ganfast.ops.sqrtm_trace(zero, zero)) == 0.0
    # tr sqrt(S S) = tr S
    assert float(ganfast.ops.sqrtm_trace(s, s)) == pytest.approx(float(torch.trace(s)), rel=1e-12)


def test_diagonal_closed_form(gen):
    a = torch.rand(33, generator=gen, dtype=torch.float64) + 0.1
    b = torch.rand(33, generator=gen, dtype=torch.float64)
    b[::3] = 0.0  # singular
    want = float((a * b).sqrt().sum())
    got = float(ganfast.ops.sqrtm_trace(torch.diag(a), torch.diag(b)))
    assert got == pytest.approx(want, rel=1e-13)


def test_float32_inputs_are_computed_in_float64(gen):
    s1, s2 = _cov(300, 40, gen, dtype=torch.float32), _cov(200, 40, gen, dtype=torch.float32)
    got = ganfast.ops.sqrtm_trace(s1, s2)
    want = ganfast.ops.sqrtm_trace(s1.double(), s2.double())
    assert got.dtype == torch.float64 and float(got) == float(want)


def test_symmetrizes_its_inputs(gen):
    s1, s2 = _cov(300, 20, gen), _cov(200, 20, gen)
    skew = torch.randn(20, 20, generator=gen, dtype=torch.float64) * 1e-9
    got = float(ganfast.ops.sqrtm_trace(s1 + skew - skew.T, s2))
    assert got == pytest.approx(float(ganfast.ops.sqrtm_trace(s1, s2)), rel=1e-12)


def test_nan_in_nan_out(gen):
    s1, s2 = _cov(100, 10, gen), _cov(100, 10, gen)
    s1[2, 3] = float("nan")
    assert torch.isnan(ganfast.ops.sqrtm_trace(s1, s2))
    s2[0, 0] = float("inf")
    assert torch.isnan(ganfast.ops.sqrtm_trace(s2, s2))


def test_newton_schulz_is_a_close_approximation_on_full_rank(gen):
    s1, s2 = _cov(500, 48, gen), _cov(400, 48, gen)
    want = float(ganfast.ops.sqrtm_trace(s1, s2))
    assert float(ganfast.ops.sqrtm_trace(s1, s2, method="newton_schulz")) == pytest.approx(want, rel=1e-6)


def test_cholesky_method_needs_a_positive_definite_input(gen):
    s1, s2 = _cov(10, 30, gen), _cov(12, 30, gen)
    with pytest.raises(ValueError, match="positive definite"):
        ganfast.ops.sqrtm_trace(s1, s2, method="cholesky")
    # one positive definite input is enough (tr sqrt(S1 S2) = tr sqrt(S2 S1))
    s3 = _cov(300, 30, gen)
    a = float(ganfast.ops.sqrtm_trace(s1, s3, method="cholesky"))
    assert a == pytest.approx(float(ganfast.ops.sqrtm_trace(s1, s3, method="eigh")), rel=1e-11)
    assert ops_sqrtm.product_eigvals(s1, s3).route == "cholesky"
    assert ops_sqrtm.product_eigvals(s1, s2).route == "eigh"


# -- derivatives and registration ---------------------------------------------------------


def _pd(d, gen, extra=3):
    a = torch.randn(d, d + extra, generator=gen, dtype=torch.float64)
    return a @ a.T / d


def test_gradcheck_full_rank(gen):
    s1, s2 = _pd(5, gen), _pd(5, gen)
    f = lambda a, b: ganfast.ops.sqrtm_trace(a, b)  # noqa: E731
    assert torch.autograd.gradcheck(f, (s1.requires_grad_(), s2.requires_grad_()))


def test_gradient_matches_autograd_through_the_eigh_route(gen):
    """The closed-form gradient against autograd of plain eigh / eigvalsh code, in float64."""
    s1, s2 = _pd(7, gen), _pd(7, gen)
    a, b = s1.clone().requires_grad_(), s2.clone().requires_grad_()
    g1, g2 = torch.autograd.grad(ganfast.ops.sqrtm_trace(a, b), (a, b))
    a, b = s1.clone().requires_grad_(), s2.clone().requires_grad_()
    w, v = torch.linalg.eigh((a + a.T) / 2)
    r = (v * w.sqrt()) @ v.T
    c = r @ ((b + b.T) / 2) @ r
    want = torch.autograd.grad(torch.linalg.eigvalsh((c + c.T) / 2).sqrt().sum(), (a, b))
    testing.assert_close(g1, want[0], torch.float64, 1, "d/dS1")
    testing.assert_close(g2, want[1], torch.float64, 1, "d/dS2")


def test_gradient_is_finite_for_rank_deficient_inputs(gen):
    s1, s2 = _cov(6, 12, gen).requires_grad_(), _cov(8, 12, gen).requires_grad_()
    g1, g2 = torch.autograd.grad(ganfast.ops.sqrtm_trace(s1, s2), (s1, s2))
    assert torch.isfinite(g1).all() and torch.isfinite(g2).all()
    assert torch.allclose(g1, g1.T) and torch.allclose(g2, g2.T)


def test_float32_gradient_dtype(gen):
    s1, s2 = _pd(6, gen).float().requires_grad_(), _pd(6, gen).float().requires_grad_()
    g1, g2 = torch.autograd.grad(ganfast.ops.sqrtm_trace(s1, s2), (s1, s2))
    assert g1.dtype == torch.float32 and g2.dtype == torch.float32


def test_second_derivative_raises(gen):
    s1, s2 = _pd(4, gen).requires_grad_(), _pd(4, gen)
    (g,) = torch.autograd.grad(ganfast.ops.sqrtm_trace(s1, s2), s1, create_graph=True)
    with pytest.raises(NotImplementedError, match="first derivatives only"):
        torch.autograd.grad(g.sum(), s1)
    x = _pd(4, gen).requires_grad_()
    (g,) = torch.autograd.grad(ganfast.ops.sqrtm(x).sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="first derivatives only"):
        torch.autograd.grad(g.sum(), x)


def test_opcheck(gen):
    s1, s2 = _pd(5, gen), _pd(5, gen)
    g = torch.tensor(1.5, dtype=torch.float64)
    cases = [
        (ops_sqrtm._sqrtm_trace_op, (s1.clone().requires_grad_(), s2.clone().requires_grad_(), "auto", "auto")),
        (ops_sqrtm._sqrtm_trace_backward_op, (g, s1, s2, "auto")),
        (ops_sqrtm._sqrtm_op, (s1.clone().requires_grad_(), "auto")),
        (ops_sqrtm._sqrtm_backward_op, (s2, s1, "auto")),
    ]
    assert len(cases) == len(ops_sqrtm.CUSTOM_OPS)
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_compile_fullgraph(gen):
    s1, s2 = _pd(6, gen), _pd(6, gen)

    def fd(m1, a, m2, b):
        return (m1 - m2).square().sum() + a.trace() + b.trace() - 2 * ganfast.ops.sqrtm_trace(a, b)

    m1, m2 = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    compiled = torch.compile(fd, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(m1, s1, m2, s2), fd(m1, s1, m2, s2), rtol=1e-12, atol=0)


# -- sqrtm ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sqrtm_psd_against_reference(dtype, gen):
    """check_op: the op (closed-form backward) against autograd through the eigh reference, float64."""
    a = _pd(9, gen).to(dtype)
    testing.check_op(lambda x: ganfast.ops.sqrtm(x), ref.sqrtm_psd, [a], differentiable=[0], order=1, generator=gen,
                     gradcheck=dtype == torch.float64)


def test_sqrtm_psd_matches_scipy_and_squares_back(gen):
    a = _cov(400, 50, gen)
    x = ganfast.ops.sqrtm(a)
    np.testing.assert_allclose(x.numpy(), scipy_linalg.sqrtm(a.numpy()).real, rtol=0, atol=1e-11 * float(x.abs().max()))
    torch.testing.assert_close(x @ x, a, rtol=0, atol=1e-12 * float(a.abs().max()))
    assert torch.equal(x, x.T)


def test_sqrtm_psd_rank_deficient(gen):
    a = _cov(10, 30, gen)  # rank 9
    x = ganfast.ops.sqrtm(a)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x @ x, a, rtol=0, atol=1e-10 * float(a.abs().max()))
    assert float(torch.linalg.eigvalsh(x).min()) >= -1e-12 * float(x.abs().max())


def test_sqrtm_of_a_product(gen):
    s1, s2 = _cov(400, 40, gen), _cov(300, 40, gen)
    x = ganfast.ops.sqrtm(s1, s2)
    want = scipy_linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    np.testing.assert_allclose(x.numpy(), want, rtol=0, atol=1e-9 * np.abs(want).max())
    torch.testing.assert_close(x @ x, s1 @ s2, rtol=0, atol=1e-10 * float((s1 @ s2).abs().max()))
    # singular S1: still the right trace (the documented contract)
    s3 = _cov(10, 40, gen)
    y = ganfast.ops.sqrtm(s3, s2)
    assert float(torch.trace(y)) == pytest.approx(float(ganfast.ops.sqrtm_trace(s3, s2)), rel=1e-7)


def test_sqrtm_of_a_product_gradcheck(gen):
    s1, s2 = _pd(4, gen), _pd(4, gen)
    assert torch.autograd.gradcheck(lambda a, b: ganfast.ops.sqrtm(a, b), (s1.requires_grad_(), s2.requires_grad_()))


# -- arguments ------------------------------------------------------------------------


def test_bad_arguments(gen):
    s = _pd(4, gen)
    with pytest.raises(ValueError, match="sigma1 must be a square matrix"):
        ganfast.ops.sqrtm_trace(torch.ones(3, 4, dtype=torch.float64), s)
    with pytest.raises(ValueError, match=r"sigma2 must have shape \(4, 4\)"):
        ganfast.ops.sqrtm_trace(s, _pd(5, gen))
    with pytest.raises(TypeError, match="sigma2 must be a torch.Tensor"):
        ganfast.ops.sqrtm_trace(s, s.numpy())
    with pytest.raises(TypeError, match="sigma1 must be a floating-point tensor"):
        ganfast.ops.sqrtm_trace(torch.ones(4, 4, dtype=torch.int64), s)
    with pytest.raises(ValueError, match="method must be one of"):
        ganfast.ops.sqrtm_trace(s, s, method="schur")
    with pytest.raises(ValueError, match="a must be a square matrix"):
        ganfast.ops.sqrtm(torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="b must have shape"):
        ganfast.ops.sqrtm(s, _pd(3, gen))
    with pytest.raises(ganfast.BackendUnavailable, match="no triton implementation"):
        ganfast.ops.sqrtm_trace(s, s, backend="triton")
