"""bias_act_pixel_norm: every backend that can run here against the float64 reference."""

import re

import pytest
import torch

import ganfast
from ganfast import testing
from ganfast.ops.bias_act_pixel_norm import CUSTOM_OPS
from ganfast.ref import bias_act_pixel_norm as ref

from conftest import HAS_CUDA

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "bias_act_pixel_norm"

# Channel counts: 1 (y = +-1 up to eps), 3, an odd 17, and 130 (more than one channel block of the
# two-pass kernel path when forced, below; a single padded 256-wide block otherwise).
CHANNELS = [1, 3, 17, 130]


def _eps_for(channels):
    """eps for a test at ``channels``: ProGAN's 1e-8, except with one channel.

    With C = 1, y = a / sqrt(a^2 + eps) is sign(a) to within eps / a^2, and
    its derivative eps / (a^2 + eps)^1.5 is g * (1 - y^2) r: 1 - y^2 ~ 1e-8
    is below float32's resolution, so in float32 (or half) any
    implementation, autograd included, returns rounding noise there.  eps =
    1.0 keeps the derivative well conditioned; C = 1 with eps = 1e-8 is
    checked in float64 (test_closed_form_gradient_matches_autograd,
    test_pixel_norm_formula_written_out).
    """
    return dict(eps=1.0) if channels == 1 else {}


def _fast(backend, **kw):
    return lambda x, b: ganfast.ops.bias_act_pixel_norm(x, b, backend=backend, **kw)


def _ref(**kw):
    return lambda x, b: ref.bias_act_pixel_norm(x, b, **kw)


def _inputs(shape, dtype, device, gen, bias=True, scale=1.5):
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)
    b = torch.randn(shape[1], generator=gen, dtype=torch.float64).to(dtype).to(device) if bias else None
    return x, b


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, channels, dtype, gen):
    """Forward, gradients (x and bias) and the double backward, NCHW, odd sizes."""
    x, b = _inputs((2, channels, 3, 5), dtype, device, gen)
    kw = _eps_for(channels)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0, 1], order=2, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("channels", [3, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last(backend, device, channels, dtype, gen):
    """channels_last in, channels_last out; read through the strides, no copy."""
    x, b = _inputs((2, channels, 3, 5), dtype, device, gen)
    x = x.contiguous(memory_format=torch.channels_last)
    y = ganfast.ops.bias_act_pixel_norm(x, b, backend=backend)
    assert y.stride() == x.stride()
    testing.check_op(_fast(backend), _ref(), [x, b], differentiable=[0, 1], order=2, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("layout", ["sliced", "expanded"])
def test_strided_views(backend, device, layout, gen):
    """Views with gaps or stride 0 are read as they are; the output is torch.empty_like's layout."""
    base, b = _inputs((3, 8, 5, 6), torch.float32, device, gen)
    x = base[:, ::2, 1:, :5] if layout == "sliced" else base[:1].expand(3, 8, 5, 6)
    b = b[: x.shape[1]].contiguous()
    y = ganfast.ops.bias_act_pixel_norm(x, b, backend=backend)
    assert y.stride() == torch.empty_like(x).stride()
    testing.check_op(_fast(backend), _ref(), [x, b], differentiable=[0, 1], order=1, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("channels", [1, 17, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_latent_2d(backend, device, channels, dtype, gen):
    """(N, C): ProGAN normalises the latent z this way, without bias or activation (slope 1)."""
    x, _ = _inputs((5, channels), dtype, device, gen, bias=False)
    kw = dict(negative_slope=1.0, **_eps_for(channels))
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, None], differentiable=[0], order=2, generator=gen,
                     gradcheck=False)
    x, b = _inputs((5, channels), dtype, device, gen)
    kw = _eps_for(channels)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0, 1], order=1, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_bias(backend, device, dtype, gen):
    x, _ = _inputs((2, 17, 3, 4), dtype, device, gen, bias=False)
    kw = dict(negative_slope=0.0, eps=1e-4)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, None], differentiable=[0], order=2, generator=gen,
                     gradcheck=False)


def test_float32_bias_with_half_input(backend, device, gen):
    """Mixed precision: a float32 bias with bfloat16 activations; its gradient stays float32."""
    x, _ = _inputs((2, 6, 3, 3), torch.bfloat16, device, gen, bias=False)
    b = torch.randn(6, generator=gen).to(device).requires_grad_()
    y = ganfast.ops.bias_act_pixel_norm(x, b, backend=backend)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert b.grad.dtype == torch.float32
    testing.check_op(_fast(backend), _ref(), [x, b.detach()], differentiable=[0, 1], order=1, generator=gen,
                     gradcheck=False)


def test_gradcheck_float64(backend, device, gen):
    """gradcheck and gradgradcheck in float64 (tiny: each is one op call per element under the interpreter)."""
    shape = (2, 5, 2, 3) if backend == "torch" or HAS_CUDA else (2, 3, 1, 2)
    x, b = _inputs(shape, torch.float64, device, gen)
    testing.check_op(_fast(backend, negative_slope=0.3), _ref(negative_slope=0.3), [x, b], differentiable=[0, 1],
                     order=2, generator=gen)


def test_triton_two_pass_and_64bit_paths(gen, monkeypatch):
    """The channel-block loop (taken above 1024 channels) and 64-bit offsets, forced on small inputs."""
    from ganfast.kernels import bias_act_pixel_norm as kernels

    device = "cuda" if HAS_CUDA else "cpu"
    monkeypatch.setattr(kernels, "_MAX_SINGLE_C", 16)
    monkeypatch.setattr(kernels, "_MULTI_BLOCK_C", 16)
    monkeypatch.setattr(kernels, "_index64", lambda *tensors: True)
    for shape in ((2, 130, 2, 3), (3, 17)):
        for layout in (torch.contiguous_format, torch.channels_last):
            x, b = _inputs(shape, torch.float32, device, gen)
            if x.dim() == 4:
                x = x.contiguous(memory_format=layout)
            testing.check_op(_fast("triton"), _ref(), [x, b], differentiable=[0, 1], order=1, generator=gen,
                             gradcheck=False)


def test_pixel_norm_formula_written_out(backend, device, gen):
    """The op against ProGAN's formula spelled out in float64, element by element."""
    x, b = _inputs((2, 7, 3, 2), torch.float64, device, gen)
    slope, eps = 0.2, 1e-8
    y = ganfast.ops.bias_act_pixel_norm(x, b, slope, eps, backend=backend)
    want = torch.empty_like(x)
    N, C, H, W = x.shape
    for n in range(N):
        for h in range(H):
            for w in range(W):
                a = [float(x[n, c, h, w] + b[c]) for c in range(C)]
                a = [v if v > 0 else v * slope for v in a]
                norm = (sum(v * v for v in a) / C + eps) ** 0.5
                for c in range(C):
                    want[n, c, h, w] = a[c] / norm
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-14)
    # ProGAN's code, as the benchmark's eager baseline writes it.
    a = torch.nn.functional.leaky_relu(x + b.view(1, -1, 1, 1), slope)
    torch.testing.assert_close(y, a * torch.rsqrt(a.pow(2).mean(dim=1, keepdim=True) + eps), rtol=1e-12, atol=1e-14)


def test_closed_form_gradient_matches_autograd(gen):
    """ref.bias_act_pixel_norm_grad, which the kernels implement, is autograd of ref.bias_act_pixel_norm."""
    for shape, slope in (((3, 5, 2, 4), 0.2), ((4, 9), 1.0), ((2, 1, 3, 3), 0.0)):
        x = torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()
        b = torch.randn(shape[1], generator=gen, dtype=torch.float64)
        y = ref.bias_act_pixel_norm(x, b, slope, 1e-6)
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        (want,) = torch.autograd.grad(y, x, g)
        got = ref.bias_act_pixel_norm_grad(g, x.detach(), b, slope, 1e-6)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_r1_penalty_through_the_op(backend, device, gen):
    """An R1-style penalty (gradient of a gradient norm) through the op matches the reference."""
    w = torch.randn(6, 4, dtype=torch.float64, generator=gen).to(device).requires_grad_()
    b = torch.randn(6, dtype=torch.float64, generator=gen).to(device).requires_grad_()
    z = torch.randn(5, 4, dtype=torch.float64, generator=gen).to(device)
    v = torch.randn(5, 6, dtype=torch.float64, generator=gen).to(device)

    def penalty(fn):
        zz = z.clone().requires_grad_()
        score = (fn(zz @ w.T, b) * v).sum()
        (gz,) = torch.autograd.grad(score, zz, create_graph=True)
        return torch.autograd.grad(gz.square().sum(), [w, b])

    fast = penalty(lambda t, bias: ganfast.ops.bias_act_pixel_norm(t, bias, backend=backend))
    want = penalty(lambda t, bias: ref.bias_act_pixel_norm(t, bias))
    for a, r in zip(fast, want):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


@pytest.mark.registered_op
def test_backward_op_refuses_a_second_derivative(backend, device, gen):
    x, b = _inputs((2, 3, 2, 2), torch.float64, device, gen)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    dx = CUSTOM_OPS[1](g, x, b, 0.2, 1e-8, backend)
    with pytest.raises(NotImplementedError, match="first derivatives only"):
        dx.sum().backward()


def test_deterministic(backend, device, gen):
    x, b = _inputs((2, 130, 3, 3), torch.float32, device, gen)
    x.requires_grad_(True)
    g = torch.randn(x.shape, generator=gen).to(device)

    def run():
        y = ganfast.ops.bias_act_pixel_norm(x, b, backend=backend)
        return [y, *torch.autograd.grad(y, x, g)]

    assert all(torch.equal(a, c) for a, c in zip(run(), run()))


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    op, backward_op = CUSTOM_OPS
    x, b = _inputs((2, 5, 3, 3), dtype, device, gen)
    g = torch.randn(x.shape, generator=gen).to(dtype).to(device)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        torch.library.opcheck(op, (xl.clone().requires_grad_(), b.clone().requires_grad_(), 0.2, 1e-8, backend))
        torch.library.opcheck(op, (xl.clone().requires_grad_(), None, 1.0, 1e-8, backend))
        torch.library.opcheck(backward_op, (g.contiguous(memory_format=layout), xl, b, 0.2, 1e-8, backend))
    torch.library.opcheck(op, (x[:, :, 0, 0].clone().requires_grad_(), None, 1.0, 1e-8, backend))


def test_torch_compile_fullgraph(gen):
    """Every backend in one test: the first compile pays Dynamo's and Inductor's warm-up."""
    for backend, device, available in testing.backend_cases(OP):
        if not available:
            continue
        torch._dynamo.reset()
        x, b = _inputs((2, 5, 3, 3), torch.float32, device, gen)
        x.requires_grad_(True)
        b.requires_grad_(True)

        def f(x, b):
            return ganfast.ops.bias_act_pixel_norm(x, b, 0.2, backend=backend).square().mul(x).sum()

        results = []
        for fn in (torch.compile(f, fullgraph=True), f):
            out = fn(x, b)
            results.append((out, *torch.autograd.grad(out, (x, b))))
        torch.testing.assert_close(results[0], results[1])


# -- argument checks --------------------------------------------------------------------


def _x():
    return torch.randn(2, 3, 4, 4)


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(x="not a tensor"), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.randint(0, 5, (2, 3, 4, 4))), TypeError, "x must be float16"),
        (dict(x=torch.randn(2, 3, 4)), ValueError, "x must have shape (N, C, H, W) or (N, C)"),
        (dict(x=torch.randn(2, 0, 4, 4)), ValueError, "x must not be empty"),
        (dict(bias=torch.randn(4)), ValueError, "bias must have shape (3,)"),
        (dict(bias=torch.randn(3, 1)), ValueError, "bias must have shape (3,)"),
        (dict(bias=torch.randn(3, device="meta")), ValueError, "bias must be on the same device"),
        (dict(bias=torch.randn(3).to(torch.bfloat16)), TypeError, "bias must have x's dtype"),
        (dict(bias=[1.0, 2.0, 3.0]), TypeError, "bias must be a torch.Tensor"),
        (dict(negative_slope=-0.1), ValueError, "negative_slope must be a number in [0, 1]"),
        (dict(negative_slope=1.5), ValueError, "negative_slope must be a number in [0, 1]"),
        (dict(negative_slope="0.2"), TypeError, "negative_slope must be a float"),
        (dict(eps=0.0), ValueError, "eps must be a finite positive number"),
        (dict(eps=-1e-8), ValueError, "eps must be a finite positive number"),
        (dict(eps=float("inf")), ValueError, "eps must be a finite positive number"),
        (dict(backend="cudnn"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    with pytest.raises(exc, match=re.escape(words)):
        ganfast.ops.bias_act_pixel_norm(**{"x": _x(), "bias": torch.randn(3), **kwargs})


def test_cuda_backend_is_unavailable_with_reason():
    with pytest.raises(ganfast.BackendUnavailable) as info:
        ganfast.ops.bias_act_pixel_norm(_x(), backend="cuda")
    assert "bias_act_pixel_norm" in str(info.value)


# -- the benchmark baseline -------------------------------------------------------------


def test_bench_baseline_computes_the_reference_function():
    """ProGAN's eager form that `ganfast bench` times is plain user code, but must compute what ganfast.ref
    defines."""
    from ganfast.bench.bias_act_pixel_norm import cases

    for case in [c for c in cases() if c.quick]:
        x, b = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False).args
        want = ref.bias_act_pixel_norm(x, b, case.params["negative_slope"], case.params["eps"])
        torch.testing.assert_close(case.eager()(x, b), want, rtol=1e-12, atol=1e-12)
