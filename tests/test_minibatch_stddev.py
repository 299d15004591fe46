"""minibatch_stddev: every backend that can run here against the float64 reference."""

import pytest
import torch

import ganfast
from ganfast import testing
from ganfast.bench.minibatch_stddev import _stylegan2_form
from ganfast.ops.minibatch_stddev import CUSTOM_OPS
from ganfast.ref import minibatch_stddev as ref

from conftest import HAS_CUDA

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "minibatch_stddev"

# (shape, group_size, num_channels): 5x7 maps; G = N; G = min(4, 3) = 3; batch 1
# (G = 1, zero variance); F = C with 1-pixel-wide maps; several groups per batch.
SHAPES = [
    pytest.param((4, 6, 5, 7), 4, 1, id="g4"),
    pytest.param((6, 4, 5, 7), 3, 2, id="g3-n2-f2"),
    pytest.param((3, 5, 5, 7), 4, 1, id="batch3-g4"),
    pytest.param((1, 3, 5, 7), 4, 3, id="batch1"),
    pytest.param((8, 4, 3, 1), 2, 4, id="n4-f4-w1"),
]


def _fast(backend, group_size, num_channels):
    return lambda x: ganfast.ops.minibatch_stddev(x, group_size, num_channels, backend=backend)


def _ref(group_size, num_channels):
    return lambda x: ref.minibatch_stddev(x, group_size, num_channels)


def _x(shape, dtype, device, gen, scale=1.5):
    # An offset so that the statistic is not dominated by values near 0.
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale + 0.5).to(dtype).to(device)


@pytest.mark.parametrize("shape,group_size,num_channels", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, shape, group_size, num_channels, dtype, gen):
    """Forward and the backend's own first derivative (order 1: no create_graph, so no reference recompute)."""
    x = _x(shape, dtype, device, gen)
    testing.check_op(_fast(backend, group_size, num_channels), _ref(group_size, num_channels), [x],
                     differentiable=[0], order=1, generator=gen, gradcheck=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_double_backward(backend, device, dtype, gen):
    """create_graph=True recomputes through the reference: R1 / WGAN-GP through the layer."""
    x = _x((6, 4, 5, 7), dtype, device, gen)
    testing.check_op(_fast(backend, 3, 2), _ref(3, 2), [x], differentiable=[0], order=2, generator=gen,
                     gradcheck=False)


def test_gradcheck_float64(backend, device, gen):
    # gradcheck runs the op twice per input element and the backward once per
    # output element, each ~0.1 s under the Triton interpreter: 4 elements
    # there.  Larger float64 inputs are compared with the reference above.
    shape = (4, 2, 1, 3) if backend == "torch" or HAS_CUDA else (2, 2, 1, 1)
    x = _x(shape, torch.float64, device, gen)
    testing.check_op(_fast(backend, 2, 2), _ref(2, 2), [x], differentiable=[0], order=2, generator=gen)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nearly_coincident_samples(backend, device, dtype, gen):
    """Mode collapse: samples within ~1e-4 of each other at |x| ~ 100, deviations near sqrt(eps).

    Deviations are computed from values shifted by the group's first sample,
    so float32 keeps them to ~1e-7 of the spread (a plain x - mean would lose
    them to ~1e-5 of |x|, and the gradient with them).
    """
    base = 100 + torch.randn(1, 4, 5, 7, generator=gen, dtype=torch.float64)
    spread = torch.randn(4, 4, 5, 7, generator=gen, dtype=torch.float64) * (1e-4 if dtype == torch.float32 else 1.0)
    x = (base + spread).to(dtype).to(device)
    testing.check_op(_fast(backend, 4, 2), _ref(4, 2), [x], differentiable=[0], order=1, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_memory_layouts(backend, device, layout, gen):
    """Any strides in; channels_last stays channels_last; an expanded (stride-0) gradient is read as such."""
    base = _x((4, 6, 5, 7), torch.float32, device, gen)
    x = base.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else base[:, ::2, 1:, :5]
    y = ganfast.ops.minibatch_stddev(x, 2, 1, backend=backend)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)
    testing.check_op(_fast(backend, 2, 1), _ref(2, 1), [x], differentiable=[0], order=1, generator=gen,
                     gradcheck=False)
    xg = x.clone().requires_grad_()
    (dx,) = torch.autograd.grad(ganfast.ops.minibatch_stddev(xg, 2, 1, backend=backend).sum(), xg)
    xr = x.double().requires_grad_()
    (want,) = torch.autograd.grad(ref.minibatch_stddev(xr, 2, 1).sum(), xr)
    testing.assert_close(dx, want, torch.float32, 1, "gradient of sum()")


def test_nan_stays_in_its_group(backend, device, gen):
    x = _x((4, 3, 5, 7), torch.float32, device, gen)
    x[1, 2, 3, 4] = float("nan")  # group 1 of 2
    y = ganfast.ops.minibatch_stddev(x, 2, 1, backend=backend)
    assert torch.isnan(y[1::2, 3]).all() and torch.isfinite(y[0::2, 3]).all()
    testing.check_op(_fast(backend, 2, 1), _ref(2, 1), [x], differentiable=[0], order=1, generator=gen,
                     gradcheck=False)


def test_deterministic(backend, device, gen):
    x = _x((8, 16, 9, 9), torch.float32, device, gen).requires_grad_()
    g = torch.randn(8, 17, 9, 9, generator=gen).to(device)
    runs = []
    for _ in range(2):
        y = ganfast.ops.minibatch_stddev(x, 4, 1, backend=backend)
        runs.append((y, *torch.autograd.grad(y, x, g)))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_triton_64bit_offsets(layout, gen, monkeypatch):
    """The INDEX64 path (taken past 2^31 elements) on a small input, by forcing it."""
    from ganfast.kernels import minibatch_stddev as kernels

    monkeypatch.setattr(kernels, "_index64", lambda *tensors: True)
    x = _x((4, 6, 5, 7), torch.float32, "cuda" if HAS_CUDA else "cpu", gen)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    testing.check_op(_fast("triton", 2, 3), _ref(2, 3), [x], differentiable=[0], order=1, generator=gen,
                     gradcheck=False)


def test_closed_form_gradient_matches_autograd(gen):
    """ref.minibatch_stddev_grad, which the kernels implement, is autograd of ref.minibatch_stddev."""
    x = torch.randn(6, 4, 3, 5, generator=gen, dtype=torch.float64).requires_grad_()
    for group_size, num_channels in ((3, 2), (2, 4), (6, 1), (1, 1)):
        y = ref.minibatch_stddev(x, group_size, num_channels)
        g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        (want,) = torch.autograd.grad(y, x, g)
        got = ref.minibatch_stddev_grad(g, x.detach(), group_size, num_channels)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    op, backward_op = CUSTOM_OPS
    x = _x((6, 4, 3, 5), dtype, device, gen)
    g = torch.randn(6, 6, 3, 5, generator=gen).to(dtype).to(device)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        torch.library.opcheck(op, (xl.clone().requires_grad_(), 3, 2, 1e-8, backend))
        torch.library.opcheck(backward_op, (g.contiguous(memory_format=layout), xl, 3, 2, 1e-8, backend))


def test_torch_compile_fullgraph(gen):
    """Every backend in one test: the first compile pays Dynamo's and Inductor's warm-up."""
    for backend, device, available in testing.backend_cases(OP):
        if not available:
            continue
        torch._dynamo.reset()
        x = _x((6, 4, 5, 7), torch.float32, device, gen).requires_grad_()

        def f(x):
            return ganfast.ops.minibatch_stddev(x, 3, 2, backend=backend).square().sum()

        got = torch.compile(f, fullgraph=True)(x)
        (got_grad,) = torch.autograd.grad(got, x)
        want = f(x)
        (want_grad,) = torch.autograd.grad(want, x)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got_grad, want_grad)


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "x,kwargs,exc,words",
    [
        ("not a tensor", {}, TypeError, "x must be a torch.Tensor"),
        (torch.randint(0, 5, (4, 2, 3, 3)), {}, TypeError, "x must be float16"),
        (torch.randn(4, 2, 3), {}, ValueError, "x must have shape (N, C, H, W)"),
        (torch.randn(4, 0, 3, 3), {}, ValueError, "x must not be empty"),
        (torch.randn(6, 2, 3, 3), {}, ValueError, "batch size (6) must be divisible by the group size"),
        (torch.randn(4, 3, 3, 3), dict(num_channels=2), ValueError, "num_channels (2) must divide the channels"),
        (torch.randn(4, 2, 3, 3), dict(group_size=0), ValueError, "group_size must be >= 1"),
        (torch.randn(4, 2, 3, 3), dict(group_size=True), TypeError, "group_size must be an int"),
        (torch.randn(4, 2, 3, 3), dict(num_channels=2.0), TypeError, "num_channels must be an int"),
        (torch.randn(4, 2, 3, 3), dict(eps=-1e-8), ValueError, "eps must be a finite non-negative"),
        (torch.randn(4, 2, 3, 3), dict(backend="fast"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(x, kwargs, exc, words):
    with pytest.raises(exc) as info:
        ganfast.ops.minibatch_stddev(x, **kwargs)
    assert words in str(info.value)


def test_cuda_backend_is_unavailable_with_reason():
    with pytest.raises(ganfast.BackendUnavailable) as info:
        ganfast.ops.minibatch_stddev(torch.randn(4, 2, 3, 3), backend="cuda")
    assert "minibatch_stddev" in str(info.value)


# -- the module -------------------------------------------------------------------------


def stylegan2_minibatch_std(x, group_size=4, num_channels=1):
    """StyleGAN2's MinibatchStdLayer.forward as a user writes it: the benchmark's eager baseline."""
    return _stylegan2_form(group_size, num_channels)(x)


@pytest.mark.parametrize("group_size,num_channels", [(4, 1), (2, 3)])
def test_module_matches_stylegan2(backend, device, group_size, num_channels, gen):
    m = ganfast.nn.MinibatchStdDev(group_size, num_channels, backend=backend)
    assert len(list(m.parameters())) == 0 and len(m.state_dict()) == 0
    x = _x((8, 6, 5, 7), torch.float64, device, gen).requires_grad_()
    y = m(x)
    assert y.shape == (8, 6 + num_channels, 5, 7)
    want = stylegan2_minibatch_std(x, group_size, num_channels)
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device)
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(want, x, g)[0],
                               rtol=1e-12, atol=1e-12)
    assert f"group_size={group_size}" in repr(m)


def test_module_validation():
    with pytest.raises(ValueError, match="group_size must be a positive int"):
        ganfast.nn.MinibatchStdDev(0)
    with pytest.raises(ValueError, match="num_channels must be a positive int"):
        ganfast.nn.MinibatchStdDev(4, 1.5)
    with pytest.raises(ValueError, match="backend must be one of"):
        ganfast.nn.MinibatchStdDev(backend="fast")


# -- the benchmark baseline -------------------------------------------------------------


def test_bench_baseline_computes_the_reference_function():
    """The StyleGAN2 form `ganfast bench` times is plain user code, but must compute what ganfast.ref defines."""
    from ganfast.bench.minibatch_stddev import cases

    for case in [c for c in cases() if c.quick]:
        (x,) = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False).args
        want = ref.minibatch_stddev(x, case.params["group_size"], case.params["num_channels"])
        torch.testing.assert_close(case.eager()(x), want, rtol=1e-12, atol=1e-12)
