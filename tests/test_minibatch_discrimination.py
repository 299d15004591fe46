"""minibatch_discrimination: every backend that can run here against the float64 reference."""

import math

import pytest
import torch

import ganfast
from ganfast import testing
from ganfast.ops.minibatch_discrimination import CUSTOM_OPS
from ganfast.ref import minibatch_discrimination as ref

from conftest import HAS_CUDA

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TRITON_DEVICE = "cuda" if HAS_CUDA else "cpu"

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "minibatch_discrimination"


def _layer(backend):
    return lambda x, T: ganfast.ops.minibatch_discrimination(x, T, backend=backend)


def _inputs(B, A, K, D, dtype, device, gen, duplicate=True):
    """x (B, A) and T (A, K, D) at the module's initial scale: M ~ N(0, 1/4), distances of a few units."""
    x = torch.randn(B, A, generator=gen, dtype=torch.float64)
    if duplicate and B > 2:
        x[2] = x[0]  # a duplicate sample: identical rows of M, distance 0, c = 1, sign(0) = 0
    T = torch.randn(A, K, D, generator=gen, dtype=torch.float64) * (0.5 / math.sqrt(A))
    return x.to(dtype).to(device), T.to(dtype).to(device)


def _M(shape, dtype, device, gen):
    # Scale 0.5: L1 distances of a few units, so exp(-distance) spans ~1e-3..1.
    M = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5
    if shape[0] > 3:
        M[3, :, 0] = M[1, :, 0]  # ties in one dimension only: sign(0) = 0 there
        M[2] = M[0]  # a duplicate sample
    return M.to(dtype).to(device)


@pytest.mark.parametrize(
    "B,A,K,D",
    [(1, 4, 3, 5), (3, 6, 4, 5), (5, 4, 3, 1), (9, 5, 2, 3), (70, 6, 2, 5)],
    ids=["batch1", "batch3", "d1", "b9-d3", "b70-tiles"],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, B, A, K, D, dtype, gen):
    """Forward and the backend's own first derivative (order 1: no create_graph, no reference recompute).

    B = 70 spans several row and column tiles of the kernels and ragged edges.
    """
    x, T = _inputs(B, A, K, D, dtype, device, gen)
    testing.check_op(_layer(backend), ref.minibatch_discrimination, [x, T], differentiable=[0, 1], order=1,
                     generator=gen, gradcheck=False)


@pytest.mark.parametrize("dtype", DTYPES + [torch.float64])
def test_triton_kernels_on_M(dtype, gen):
    """The kernels against the closed forms on M directly, with ties in single dimensions (sign(0) = 0),
    which x @ T does not produce reliably.  M in the input dtype here: the kernels take any float M."""
    from ganfast.kernels import minibatch_discrimination as kernels

    M = _M((37, 3, 5), dtype, TRITON_DEVICE, gen)
    g = torch.randn(37, 3, generator=gen).to(dtype).to(TRITON_DEVICE)
    o, dM = M.new_empty(37, 3), torch.empty_like(M)
    kernels.forward(M, o)
    kernels.backward(g, M, dM)
    testing.assert_close(o, ref.minibatch_features(M.double()), dtype, 0, "o")
    testing.assert_close(dM, ref.minibatch_features_grad(g.double(), M.double()), dtype, 1, "dM")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_double_backward(backend, device, dtype, gen):
    """create_graph=True recomputes through the reference: R1 / WGAN-GP through the layer."""
    x, T = _inputs(6, 10, 4, 3, dtype, device, gen)
    testing.check_op(_layer(backend), ref.minibatch_discrimination, [x, T], differentiable=[0, 1], order=2,
                     generator=gen, gradcheck=False)


def test_gradcheck_float64(backend, device, gen):
    # gradcheck runs the op per input element and the backward per output
    # element (~0.1 s each under the Triton interpreter): tiny there.
    x = torch.randn(3, 2, generator=gen, dtype=torch.float64).to(device)
    T = torch.randn(2, 2, 2, generator=gen, dtype=torch.float64).to(device) * 0.7
    testing.check_op(_layer(backend), ref.minibatch_discrimination, [x, T], differentiable=[0, 1], order=2,
                     generator=gen)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_float32_T_with_half_x(backend, device, dtype, gen):
    """Mixed precision: T in float32, x in half; the output is in x's dtype, T's gradient in float32."""
    x, T = _inputs(6, 8, 3, 4, dtype, device, gen)
    T = T.float().requires_grad_()
    y = ganfast.ops.minibatch_discrimination(x, T, backend=backend)
    assert y.dtype == dtype
    (dT,) = torch.autograd.grad(y.float().square().sum(), T)
    assert dT.dtype == torch.float32
    testing.check_op(_layer(backend), ref.minibatch_discrimination, [x, T.detach().to(dtype)],
                     differentiable=[0, 1], order=1, generator=gen, gradcheck=False)


def test_strided_inputs_and_partial_gradients(backend, device, gen):
    """x and T as non-contiguous views; gradients for x only and T only; an expanded incoming gradient."""
    xb, Tb = _inputs(6, 16, 6, 4, torch.float32, device, gen)
    x, T = xb[:, ::2], Tb[::2, ::2]
    assert not x.is_contiguous() and not T.is_contiguous()
    testing.check_op(_layer(backend), ref.minibatch_discrimination, [x, T], differentiable=[0, 1], order=1,
                     generator=gen, gradcheck=False)
    for wrt in ("x", "T"):
        xg = x.clone().requires_grad_(wrt == "x")
        Tg = T.clone().requires_grad_(wrt == "T")
        (got,) = torch.autograd.grad(ganfast.ops.minibatch_discrimination(xg, Tg, backend=backend).sum(),
                                     xg if wrt == "x" else Tg)
        xr = x.double().requires_grad_(wrt == "x")
        Tr = T.double().requires_grad_(wrt == "T")
        (want,) = torch.autograd.grad(ref.minibatch_discrimination(xr, Tr).sum(), xr if wrt == "x" else Tr)
        testing.assert_close(got, want, torch.float32, 1, f"gradient of sum() w.r.t. {wrt}")


def test_closed_form_gradient_matches_autograd(gen):
    """ref.minibatch_features_grad, which the kernels implement, is autograd of ref.minibatch_features,
    ties (torch's sign(0) = 0) and duplicate samples included."""
    M = _M((7, 3, 4), torch.float64, "cpu", gen).requires_grad_()
    o = ref.minibatch_features(M)
    g = torch.randn(o.shape, generator=gen, dtype=torch.float64)
    (want,) = torch.autograd.grad(o, M, g)
    torch.testing.assert_close(ref.minibatch_features_grad(g, M.detach()), want, rtol=1e-12, atol=1e-12)


def test_deterministic(backend, device, gen):
    x, T = _inputs(40, 8, 3, 5, torch.float32, device, gen)
    x.requires_grad_()
    T.requires_grad_()
    g = torch.randn(40, 11, generator=gen).to(device)
    runs = []
    for _ in range(2):
        y = ganfast.ops.minibatch_discrimination(x, T, backend=backend)
        runs.append((y, *torch.autograd.grad(y, (x, T), g)))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    op, backward_op = CUSTOM_OPS
    x, T = _inputs(7, 6, 3, 5, dtype, device, gen)
    torch.library.opcheck(op, (x.clone().requires_grad_(), T.clone().requires_grad_(), backend))
    _, M = op(x, T, backend)
    g = torch.randn(7, 3, generator=gen).to(dtype).to(device)
    for need_x, need_T in ((True, True), (True, False), (False, True)):
        torch.library.opcheck(backward_op, (g, x, T, M, need_x, need_T, backend))


def test_torch_compile_fullgraph(gen):
    """Every backend in one test: the first compile pays Dynamo's and Inductor's warm-up."""
    for backend, device, available in testing.backend_cases(OP):
        if not available:
            continue
        torch._dynamo.reset()
        x = torch.randn(5, 8, generator=gen).to(device).requires_grad_()
        T = (torch.randn(8, 3, 4, generator=gen) / math.sqrt(8)).to(device).requires_grad_()

        def f(x, T):
            return ganfast.ops.minibatch_discrimination(x, T, backend=backend).square().sum()

        got = torch.compile(f, fullgraph=True)(x, T)
        got_grads = torch.autograd.grad(got, (x, T))
        want = f(x, T)
        want_grads = torch.autograd.grad(want, (x, T))
        torch.testing.assert_close(got, want)
        for a, w in zip(got_grads, want_grads):
            torch.testing.assert_close(a, w)


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "x,T,kwargs,exc,words",
    [
        ("x", torch.randn(4, 3, 2), {}, TypeError, "x must be a torch.Tensor"),
        (torch.randn(5, 4), "T", {}, TypeError, "T must be a torch.Tensor"),
        (torch.randint(0, 3, (5, 4)), torch.randn(4, 3, 2), {}, TypeError, "x must be float16"),
        (torch.randn(5, 4, 1), torch.randn(4, 3, 2), {}, ValueError, "x must have shape (B, in_features)"),
        (torch.randn(0, 4), torch.randn(4, 3, 2), {}, ValueError, "x must not be empty"),
        (torch.randn(5, 4), torch.randn(4, 6), {}, ValueError, "T must have shape (in_features, num_kernels"),
        (torch.randn(5, 4), torch.randn(3, 3, 2), {}, ValueError, "T must have shape (4, num_kernels, kernel_dim)"),
        (torch.randn(5, 4), torch.randn(4, 0, 2), {}, ValueError, "T must not be empty"),
        (torch.randn(5, 4), torch.randn(4, 3, 2).half(), {}, TypeError, "T must have x's dtype"),
        (torch.randn(5, 4), torch.randn(4, 3, 2, device="meta"), {}, ValueError, "T must be on the same device"),
        (torch.randn(5, 4), torch.randn(4, 3, 2), dict(backend="fast"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(x, T, kwargs, exc, words):
    with pytest.raises(exc) as info:
        ganfast.ops.minibatch_discrimination(x, T, **kwargs)
    assert words in str(info.value)


def test_cuda_backend_is_unavailable_with_reason():
    with pytest.raises(ganfast.BackendUnavailable, match="minibatch_discrimination"):
        ganfast.ops.minibatch_discrimination(torch.randn(4, 3), torch.randn(3, 3, 2), backend="cuda")


# -- the module -------------------------------------------------------------------------


def salimans_minibatch_layer(x, T):
    """Minibatch discrimination as written in openai/improved-gan (MinibatchLayer), restated in torch:
    the diagonal is pushed out by adding 1e6 to its distances instead of masked."""
    B = x.shape[0]
    activation = (x @ T.reshape(T.shape[0], -1)).reshape(B, T.shape[1], T.shape[2])
    abs_dif = (activation[:, :, :, None] - activation.permute(1, 2, 0)[None]).abs().sum(dim=2)  # (B, K, B)
    abs_dif = abs_dif + 1e6 * torch.eye(B, dtype=x.dtype, device=x.device)[:, None, :]
    f = torch.exp(-abs_dif).sum(dim=2)
    return torch.cat([x, f], dim=1)


def test_module_matches_the_paper(backend, device, gen):
    m = ganfast.nn.MinibatchDiscrimination(12, 5, 3, backend=backend).to(device).double()
    assert set(m.state_dict()) == {"T"} and m.T.shape == (12, 5, 3) and m.out_features == 17
    x = torch.randn(6, 12, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    y = m(x)
    want = salimans_minibatch_layer(x, m.T)
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device)
    got = torch.autograd.grad(y, (x, m.T), g)
    expected = torch.autograd.grad(want, (x, m.T), g)
    for a, w in zip(got, expected):
        torch.testing.assert_close(a, w, rtol=1e-10, atol=1e-12)
    assert "num_kernels=5" in repr(m)


def test_module_initialisation_keeps_features_alive():
    """T ~ N(0, 1/in_features): at in_features = 8192 the features of unit-scale inputs are not all 0."""
    torch.manual_seed(0)
    m = ganfast.nn.MinibatchDiscrimination(8192, 16, 5, backend="torch")
    assert abs(float(m.T.detach().std()) * math.sqrt(8192) - 1) < 0.05
    with torch.no_grad():
        o = m(torch.randn(8, 8192))[:, 8192:]
    assert o.shape == (8, 16) and float(o.min()) > 0 and float(o.max()) < 7


def test_module_validation():
    with pytest.raises(ValueError, match="num_kernels must be a positive int"):
        ganfast.nn.MinibatchDiscrimination(8, 0, 5)
    with pytest.raises(ValueError, match="backend must be one of"):
        ganfast.nn.MinibatchDiscrimination(8, 4, 5, backend="fast")


# -- the benchmark baselines ------------------------------------------------------------


def test_bench_baselines_compute_the_reference_function():
    """The naive and cdist forms `ganfast bench` times are plain user code, but must compute what ganfast.ref defines."""
    from ganfast.bench.minibatch_discrimination import cases

    for case in [c for c in cases() if c.quick]:
        x, T = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False).args
        torch.testing.assert_close(case.eager()(x, T), ref.minibatch_discrimination(x, T), rtol=1e-12, atol=1e-12)
