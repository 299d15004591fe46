"""upfirdn2d: every backend that can run here against the float64 reference and scipy.signal.upfirdn."""

import re

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

import ganfast
from ganfast import testing
from ganfast.ops.upfirdn2d import CUSTOM_OPS
from ganfast.ref import upfirdn2d as ref

from conftest import HAS_CUDA

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "upfirdn2d"

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (up, down, padding (x0, x1, y0, y1), filter shape): StyleGAN2's up/down by 2 with the 4-tap separable filter and
# its padding, factor 4, anisotropic factors, negative padding (a crop), a non-separable odd filter.
CASES = [
    (1, 1, (0, 0, 0, 0), (3, 3)),
    (2, 1, (2, 1, 2, 1), (4,)),
    (1, 2, (1, 1, 1, 1), (4,)),
    (4, 1, (1, 2, 0, 3), (3, 5)),
    (1, 4, (2, 2, 1, 0), (5,)),
    ((2, 1), (1, 2), (1, -1, -2, 2), (2, 3)),
    (2, 2, (-1, 3, 2, -1), (4, 4)),
]


def _fast(backend, up, down, padding, flip_filter=False, gain=1.0):
    return lambda x, f: ganfast.ops.upfirdn2d(x, f, up, down, padding, flip_filter, gain, backend=backend)


def _ref(up, down, padding, flip_filter=False, gain=1.0):
    def pair(v):
        return v if isinstance(v, tuple) else (v, v)
    return lambda x, f: ref.upfirdn2d(x, f, pair(up), pair(down), padding, flip_filter, gain)


def _x(shape, dtype, device, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)


def _f(shape, device, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, case, dtype, gen):
    """Forward, gradient and the double backward (w.r.t. x and the upstream gradient), NCHW, odd sizes."""
    up, down, padding, fshape = CASES[case]
    x = _x((2, 3, 7, 9), dtype, device, gen)
    f = _f(fshape, device, gen).to(torch.float32)
    testing.check_op(_fast(backend, up, down, padding, gain=1.7), _ref(up, down, padding, gain=1.7), [x, f],
                     differentiable=[0], order=2, generator=gen, gradcheck=False)


@pytest.mark.parametrize("case", [1, 2, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_in_channels_last_out(backend, device, case, dtype, gen):
    up, down, padding, fshape = CASES[case]
    x = _x((2, 5, 6, 7), dtype, device, gen).contiguous(memory_format=torch.channels_last)
    f = _f(fshape, device, gen)
    y = ganfast.ops.upfirdn2d(x, f, up, down, padding, backend=backend)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    testing.check_op(_fast(backend, up, down, padding), _ref(up, down, padding), [x, f], differentiable=[0],
                     order=1, generator=gen, gradcheck=False)


def test_strided_input_and_flip_filter(backend, device, gen):
    x = _x((2, 4, 9, 12), torch.float32, device, gen)[:, 1:, ::2, 1::3]  # a sliced view, no unit stride
    f = _f((3, 4), device, gen)
    for flip in (False, True):
        testing.check_op(_fast(backend, 2, 1, (1, 2, 2, 1), flip_filter=flip), _ref(2, 1, (1, 2, 2, 1), flip),
                         [x, f], differentiable=[0], order=1, generator=gen, gradcheck=False)
    # flip_filter=True with f is flip_filter=False with f flipped
    a = ganfast.ops.upfirdn2d(x, f, 2, 1, (1, 2, 2, 1), flip_filter=True, backend=backend)
    b = ganfast.ops.upfirdn2d(x, f.flip([0, 1]), 2, 1, (1, 2, 2, 1), backend=backend)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_gradcheck_float64(backend, device, gen):
    """gradcheck and gradgradcheck in float64 (tiny: one op call per element under the interpreter)."""
    shape = (2, 2, 4, 5) if backend == "torch" or HAS_CUDA else (1, 2, 3, 2)
    x = _x(shape, torch.float64, device, gen)
    f = _f((4,), device, gen)
    testing.check_op(_fast(backend, 2, 1, (2, 1, 1, 2)), _ref(2, 1, (2, 1, 1, 2)), [x, f], differentiable=[0],
                     order=2, generator=gen)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (3, 1), (1, 2), (4, 3), (2, 4)])
@pytest.mark.parametrize("taps", [1, 4, 5])
def test_rows_match_scipy_signal_upfirdn(backend, device, up, down, taps, gen):
    """1-D rows (H = 1, a (1, k) filter) against scipy.signal.upfirdn: full convolution, so padding (k - 1, k - up)."""
    x = _x((1, 3, 1, 11), torch.float64, device, gen)
    h = _f((1, taps), device, gen)
    y = ganfast.ops.upfirdn2d(x, h, (up, 1), (down, 1), (taps - 1, taps - up, 0, 0), backend=backend)
    for c in range(3):
        want = scipy.signal.upfirdn(h[0].cpu().numpy(), x[0, c, 0].cpu().numpy(), up, down)
        np.testing.assert_allclose(y[0, c, 0].cpu().numpy(), want, rtol=1e-12, atol=1e-12)


def test_columns_and_2d_separable_match_scipy(backend, device, gen):
    """Columns (W = 1) likewise; a separable filter is scipy's upfirdn along the rows, then along the columns."""
    x = _x((1, 1, 9, 1), torch.float64, device, gen)
    h = _f((4, 1), device, gen)
    y = ganfast.ops.upfirdn2d(x, h, (1, 2), (1, 3), (0, 0, 3, 2), backend=backend)
    np.testing.assert_allclose(y[0, 0, :, 0].cpu().numpy(),
                               scipy.signal.upfirdn(h[:, 0].cpu().numpy(), x[0, 0, :, 0].cpu().numpy(), 2, 3),
                               rtol=1e-12, atol=1e-12)
    x = _x((1, 1, 5, 6), torch.float64, device, gen)
    k = _f((4,), device, gen)
    y = ganfast.ops.upfirdn2d(x, k, 2, 1, (3, 2, 3, 2), backend=backend)  # full convolution both ways
    xs, ks = x[0, 0].cpu().numpy(), k.cpu().numpy()
    rows = np.stack([scipy.signal.upfirdn(ks, r, 2, 1) for r in xs])
    want = np.stack([scipy.signal.upfirdn(ks, col, 2, 1) for col in rows.T]).T
    np.testing.assert_allclose(y[0, 0].cpu().numpy(), want, rtol=1e-12, atol=1e-12)


def test_gradient_is_the_op_with_up_down_swapped_filter_flipped_padding_mirrored(gen):
    """ref.grad_padding, which the backward uses, makes the adjoint op equal autograd of the reference."""
    for up, down, padding, fshape in CASES + [(3, 2, (0, 4, 5, -1), (5, 2)), (1, 3, (-2, -1, 0, 1), (1, 1))]:
        upx, upy = up if isinstance(up, tuple) else (up, up)
        dnx, dny = down if isinstance(down, tuple) else (down, down)
        x = torch.randn(2, 2, 7, 8, generator=gen, dtype=torch.float64, requires_grad=True)
        f = torch.randn(fshape, generator=gen, dtype=torch.float64)
        for flip in (False, True):
            y = ref.upfirdn2d(x, f, (upx, upy), (dnx, dny), padding, flip, 1.3)
            dy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
            (want,) = torch.autograd.grad(y, x, dy)
            fh, fw = (fshape[0], fshape[0]) if len(fshape) == 1 else fshape
            p = ref.grad_padding(7, 8, fh, fw, (upx, upy), (dnx, dny), padding)
            got = ref.upfirdn2d(dy, f, (dnx, dny), (upx, upy), p, not flip, 1.3)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_third_derivative_through_the_op(backend, device, gen):
    """Derivatives of every order: the backward is the registered op again.  A cubic of the op's output has
    non-zero first, second and third derivatives; each equals the reference's in float64."""
    x0 = _x((1, 2, 5, 4), torch.float64, device, gen)
    f = _f((4,), device, gen)
    v = _x((1, 2, 5, 4), torch.float64, device, gen)

    def derivatives(op):
        x = x0.clone().requires_grad_()
        s = op(x).pow(3).sum()
        (g1,) = torch.autograd.grad(s, x, create_graph=True)
        (g2,) = torch.autograd.grad((g1 * v).sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad((g2 * v).sum(), x)
        return g1, g2, g3

    fast = derivatives(lambda x: ganfast.ops.upfirdn2d(x, f, 2, 2, (2, 1, 1, 2), backend=backend))
    want = derivatives(lambda x: ref.upfirdn2d(x, f, (2, 2), (2, 2), (2, 1, 1, 2)))
    for a, r in zip(fast, want):
        assert r.abs().max() > 0
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def test_r1_penalty_through_downsample2d(backend, device, gen):
    """R1 (the squared input gradient, differentiated again w.r.t. the weights) through StyleGAN2's blur."""
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=gen).to(device).requires_grad_()
    x0 = _x((2, 2, 8, 8), torch.float64, device, gen)

    def penalty(down):
        x = x0.clone().requires_grad_()
        score = torch.tanh(F.conv2d(down(x), w)).sum()
        (gx,) = torch.autograd.grad(score, x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), w)[0]

    f = ganfast.ops.setup_filter(device=device, dtype=torch.float64)
    fast = penalty(lambda x: ganfast.ops.downsample2d(x, f, backend=backend))
    want = penalty(lambda x: ref.upfirdn2d(x, f, (1, 1), (2, 2), (1, 1, 1, 1)))
    torch.testing.assert_close(fast, want, rtol=1e-10, atol=1e-12)


# -- the helpers ------------------------------------------------------------------------------


def test_helpers_with_a_box_filter_are_nearest_and_average_pooling(backend, device, gen):
    """With the 2-tap box filter the padding formulas must give exactly nearest-neighbour upsampling, 2x2
    average pooling and a same-size blur: a check of upsample2d's, downsample2d's and filter2d's padding."""
    x = _x((2, 3, 6, 5), torch.float64, device, gen)
    box = ganfast.ops.setup_filter([1, 1], device=device, dtype=torch.float64)
    torch.testing.assert_close(ganfast.ops.upsample2d(x, box, backend=backend),
                               F.interpolate(x, scale_factor=2, mode="nearest"), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ganfast.ops.downsample2d(x[:, :, :, :4], box, backend=backend),
                               F.avg_pool2d(x[:, :, :, :4], 2), rtol=1e-12, atol=1e-12)
    y = ganfast.ops.filter2d(x, box, backend=backend)
    assert y.shape == x.shape
    # a 2-tap filter of even length is centred half a pixel off: f_w // 2 = 1 before, 0 after
    padded = F.pad(x, [1, 0, 1, 0])
    torch.testing.assert_close(y, F.avg_pool2d(padded, 2, stride=1), rtol=1e-12, atol=1e-12)


def test_helpers_with_stylegan2s_filter_keep_a_constant_image_and_the_sizes(backend, device, gen):
    f = ganfast.ops.setup_filter(device=device)
    assert f.shape == (4,) and torch.allclose(f, torch.tensor([1, 3, 3, 1.0], device=device) / 8)
    x = torch.full((1, 2, 8, 6), 0.7, device=device)
    up = ganfast.ops.upsample2d(x, backend=backend)  # f None: StyleGAN2's [1, 3, 3, 1]
    down = ganfast.ops.downsample2d(x, backend=backend)
    blur = ganfast.ops.filter2d(x, backend=backend)
    assert up.shape == (1, 2, 16, 12) and down.shape == (1, 2, 4, 3) and blur.shape == x.shape
    # away from the zero padding the level is kept (upsample2d's gain up^2 makes up for the stuffed zeros)
    for y in (up[..., 2:-2, 2:-2], down[..., 1:-1, 1:-1], blur[..., 2:-2, 2:-2]):
        torch.testing.assert_close(y, torch.full_like(y, 0.7), rtol=1e-6, atol=1e-6)
    assert ganfast.ops.setup_filter([1, 2, 1], separable=False).shape == (3, 3)
    torch.testing.assert_close(ganfast.ops.setup_filter([[1.0, 1.0], [1.0, 1.0]]), torch.full((2, 2), 0.25))
    with pytest.raises(ValueError, match="cannot be normalised"):
        ganfast.ops.setup_filter([1, -1])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        ganfast.ops.setup_filter([])
    with pytest.raises(TypeError, match="f must be a sequence of numbers"):
        ganfast.ops.setup_filter("abc")
    assert ganfast.ops.setup_filter(device="meta").shape == (4,)  # shape propagation: no values to check
    assert ganfast.ops.upsample2d(torch.empty(1, 2, 5, 5, device="meta")).shape == (1, 2, 10, 10)


def test_triton_64bit_path(gen, monkeypatch):
    """The 64-bit offset path, forced on small inputs (it is taken above 2^31 elements)."""
    from ganfast.kernels import upfirdn2d as kernels

    device = "cuda" if HAS_CUDA else "cpu"
    monkeypatch.setattr(kernels, "_index64", lambda *tensors: True)
    for case in (1, 5):
        up, down, padding, fshape = CASES[case]
        x = _x((2, 3, 5, 6), torch.float32, device, gen)
        testing.check_op(_fast("triton", up, down, padding), _ref(up, down, padding), [x, _f(fshape, device, gen)],
                         differentiable=[0], order=1, generator=gen, gradcheck=False)


def test_deterministic(backend, device, gen):
    x = _x((2, 3, 9, 7), torch.float32, device, gen).requires_grad_()
    f = ganfast.ops.setup_filter(device=device)
    g = torch.randn(2, 3, 18, 14, generator=gen).to(device)

    def run():
        y = ganfast.ops.upsample2d(x, f, backend=backend)
        return [y, *torch.autograd.grad(y, x, g)]

    assert all(torch.equal(a, c) for a, c in zip(run(), run()))


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    (op,) = CUSTOM_OPS
    f = _f((4,), device, gen).float()
    for layout in (torch.contiguous_format, torch.channels_last):
        x = _x((2, 3, 5, 6), dtype, device, gen).contiguous(memory_format=layout).requires_grad_()
        torch.library.opcheck(op, (x, f, 2, 2, 1, 1, 2, 1, 2, 1, False, 4.0, backend))
        torch.library.opcheck(op, (x, f, 1, 1, 2, 2, 1, 1, -1, 2, True, 1.0, backend))


def test_torch_compile_fullgraph(gen):
    """Every backend in one test: the first compile pays Dynamo's and Inductor's warm-up."""
    for backend, device, available in testing.backend_cases(OP):
        if not available:
            continue
        torch._dynamo.reset()
        x = _x((2, 3, 5, 6), torch.float32, device, gen).requires_grad_()
        f = ganfast.ops.setup_filter(device=device)

        def fn(x):
            return ganfast.ops.downsample2d(ganfast.ops.upsample2d(x, f, backend=backend), f,
                                            backend=backend).square().sum()

        results = []
        for g in (torch.compile(fn, fullgraph=True), fn):
            out = g(x)
            results.append((out, *torch.autograd.grad(out, x)))
        torch.testing.assert_close(results[0], results[1])


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(x="not a tensor"), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.randint(0, 5, (2, 3, 4, 4))), TypeError, "x must be float16"),
        (dict(x=torch.randn(3, 4, 4)), ValueError, "x must have shape (N, C, H, W)"),
        (dict(x=torch.randn(0, 3, 4, 4)), ValueError, "x must not be empty"),
        (dict(f=[1, 3, 3, 1]), TypeError, "f must be a torch.Tensor"),
        (dict(f=torch.ones(2, 2, 2)), ValueError, "f must be a 2-D (f_h, f_w) filter or a 1-D (k,) separable one"),
        (dict(f=torch.ones(0)), ValueError, "f must not be empty"),
        (dict(f=torch.ones(4, device="meta")), ValueError, "f must be on the same device"),
        (dict(f=torch.ones(4, requires_grad=True)), ValueError, "f must not require grad"),
        (dict(up=0), ValueError, "up must be an int >= 1"),
        (dict(up=1.5), TypeError, "up must be an int >= 1"),
        (dict(down=(2, 0)), ValueError, "down[1] must be an int >= 1"),
        (dict(down=(2, 2, 2)), TypeError, "down must be an int or an (x, y) pair"),
        (dict(padding=(1, 2, 3)), TypeError, "padding must be an int, an (x, y) pair or (x0, x1, y0, y1)"),
        (dict(padding=(1, 2.5)), TypeError, "padding[1] must be an int"),
        (dict(padding=-3), ValueError, "the output would be empty"),
        (dict(flip_filter=1), TypeError, "flip_filter must be True or False"),
        (dict(gain=float("nan")), ValueError, "gain must be a finite"),
        (dict(gain="2"), TypeError, "gain must be a float"),
        (dict(backend="cudnn"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    args = {"x": torch.randn(2, 3, 4, 4), "f": torch.ones(4) / 4, **kwargs}
    with pytest.raises(exc, match=re.escape(words)):
        ganfast.ops.upfirdn2d(**args)


def test_cuda_backend_is_unavailable_with_reason():
    with pytest.raises(ganfast.BackendUnavailable) as info:
        ganfast.ops.upfirdn2d(torch.randn(1, 1, 4, 4), torch.ones(2), backend="cuda")
    assert "upfirdn2d" in str(info.value)


# -- the benchmark baseline -------------------------------------------------------------


def test_bench_baseline_computes_the_reference_function(gen):
    """The eager form `ganfast bench` times (a user's depthwise conv2d) must compute what ganfast.ref defines."""
    from ganfast.bench.upfirdn2d import cases

    for case in [c for c in cases() if c.quick]:
        x, f = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False).args
        p = case.params
        want = ref.upfirdn2d(x, f.double(), (p["up"],) * 2, (p["down"],) * 2, tuple(p["padding"]), False, p["gain"])
        got = case.eager()(x, f.double())
        assert got.shape == want.shape == case.out_shape
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(case.ganfast(x, f.double(), backend="torch"), want, rtol=1e-12, atol=1e-12)
