"""instance_norm_act: every backend that can run here against the float64 reference (F.instance_norm + act)."""

import re

import pytest
import torch
import torch.nn.functional as F

import ganfast
from ganfast import testing
from ganfast.ops.instance_norm_act import CUSTOM_OPS
from ganfast.ref import instance_norm_act as ref

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "instance_norm_act"

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = [torch.contiguous_format, torch.channels_last]


def _fast(backend, act="relu", **kw):
    return lambda x, w, b: ganfast.ops.instance_norm_act(x, w, b, act=act, backend=backend, **kw)


def _ref(act="relu", negative_slope=0.2, eps=1e-5):
    slope = ref.slope_of(act, negative_slope)
    return lambda x, w, b: ref.instance_norm_act(x, None, None, w, b, True, 0.1, eps, slope)


def _inputs(shape, dtype, device, gen, affine=True, mean=0.5, std=2.0, layout=torch.contiguous_format):
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * std + mean).to(dtype).to(device)
    if x.dim() == 4:
        x = x.contiguous(memory_format=layout)
    c = shape[1]
    w = (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5).to(dtype).to(device) if affine else None
    b = torch.randn(c, generator=gen, dtype=torch.float64).to(dtype).to(device) if affine else None
    return x, w, b


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, dtype, layout, gen):
    """Forward, gradients (x, weight, bias) and the double backward, odd sizes, ReLU (CycleGAN's)."""
    x, w, b = _inputs((3, 5, 6, 7), dtype, device, gen, layout=layout)
    testing.check_op(_fast(backend), _ref(), [x, w, b], differentiable=[0, 1, 2], order=2, generator=gen,
                     gradcheck=False)
    y = ganfast.ops.instance_norm_act(x, w, b, backend=backend)
    if backend != "aten":  # aten returns F.instance_norm's layout, as torch.nn does
        assert y.stride() == x.stride()


@pytest.mark.parametrize("act", ["leaky_relu", "linear"])
def test_activations_and_no_affine(backend, device, act, gen):
    x, w, b = _inputs((2, 4, 5, 5), torch.float32, device, gen)
    testing.check_op(_fast(backend, act, negative_slope=0.3), _ref(act, 0.3), [x, w, b], differentiable=[0, 1, 2],
                     order=2, generator=gen, gradcheck=False)
    testing.check_op(lambda x: ganfast.ops.instance_norm_act(x, act=act, negative_slope=0.3, backend=backend),
                     lambda x: _ref(act, 0.3)(x, None, None), [x], differentiable=[0], order=2, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("shape", [(2, 3, 9), (2, 3, 3, 4, 5)], ids=["1d", "3d"])
def test_1d_and_3d(backend, device, shape, gen):
    x, w, b = _inputs(shape, torch.float32, device, gen)
    testing.check_op(_fast(backend), _ref(), [x, w, b], differentiable=[0, 1, 2], order=1, generator=gen,
                     gradcheck=False)


def test_gradcheck_float64(backend, device, gen):
    # small: the interpreter runs Triton's kernels once per gradcheck perturbation (37 s at (2, 3, 3, 4))
    x, w, b = _inputs((2, 2, 2, 3), torch.float64, device, gen)
    testing.check_op(_fast(backend, "leaky_relu"), _ref("leaky_relu"), [x, w, b], differentiable=[0, 1, 2],
                     order=2, generator=gen, gradcheck=True)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_statistics_exact_when_the_mean_dwarfs_the_deviation(backend, device, layout, dtype, gen):
    """|mean| / std = 1e3: E[x^2] - E[x]^2 in float32 would keep no digit of the variance.  The per-plane
    statistics the op returns match two-pass float64 on the same (rounded) values to 1e-6 relative, as
    batch_norm_act's do (the output's error is then the float32 rounding of the mean, ~6e-5 of a std)."""
    x, _, _ = _inputs((2, 3, 16, 16), dtype, device, gen, mean=1e3, std=1.0, layout=layout)
    _, mean, var = CUSTOM_OPS[0](x, None, None, 1e-5, 1.0, backend)
    x64 = x.double().flatten(2)
    want_mean = x64.mean(2).flatten()
    want_var = ((x64 - x64.mean(2, keepdim=True)) ** 2).mean(2).flatten()
    assert float(want_var.min()) > 0.05  # the rounded input still has spread
    assert float(((mean.double() - want_mean) / want_mean).abs().max()) < 1e-6
    assert float(((var.double() - want_var) / want_var).abs().max()) < 1e-6


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "channels_last"])
def test_running_statistics_as_torch(backend, device, layout, gen):
    """Training updates running_mean / running_var as F.instance_norm (batch average of the plane means and
    unbiased plane variances, factor momentum); use_input_stats=False normalises by them."""
    x, w, b = _inputs((4, 3, 5, 6), torch.float64, device, gen, layout=layout)
    rm, rv = torch.randn(3, generator=gen, dtype=torch.float64), torch.rand(3, generator=gen, dtype=torch.float64)
    rm_t, rv_t = rm.clone(), rv.clone()
    y = ganfast.ops.instance_norm_act(x, w, b, rm, rv, momentum=0.3, act="linear", backend=backend)
    want = F.instance_norm(x, rm_t, rv_t, w, b, True, 0.3, 1e-5)
    torch.testing.assert_close(y, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(rm, rm_t, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(rv, rv_t, rtol=1e-12, atol=1e-14)
    y = ganfast.ops.instance_norm_act(x, w, b, rm, rv, use_input_stats=False, backend=backend)
    torch.testing.assert_close(y, F.relu(F.instance_norm(x, rm_t, rv_t, w, b, False, 0.1, 1e-5)))


def test_r1_penalty_through_the_op(backend, device, gen):
    """R1 through a tiny translation discriminator (conv -> instance norm -> lrelu): the penalty's gradients
    equal the reference's in float64."""
    x, w, b = _inputs((2, 3, 6, 6), torch.float64, device, gen)
    conv = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    def penalty(norm):
        xr = x.clone().requires_grad_()
        score = norm(F.conv2d(xr, conv, padding=1)).square().mean(dim=(1, 2, 3)).sum()
        (g,) = torch.autograd.grad(score, xr, create_graph=True)
        return torch.autograd.grad(g.square().sum(), [conv, w4, b4])

    w4, b4 = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_(), torch.randn(4, dtype=torch.float64)
    b4.requires_grad_()
    got = penalty(lambda h: ganfast.ops.instance_norm_act(h, w4, b4, act="leaky_relu", backend=backend))
    want = penalty(lambda h: F.leaky_relu(F.instance_norm(h, weight=w4, bias=b4), 0.2))
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-11)


def test_deterministic(backend, device, gen):
    x, w, b = _inputs((2, 6, 9, 9), torch.float32, device, gen, layout=torch.channels_last)
    x.requires_grad_(True)
    g = torch.randn(x.shape, generator=gen).to(device)

    def run():
        y = ganfast.ops.instance_norm_act(x, w, b, backend=backend)
        return [y, *torch.autograd.grad(y, x, g)]

    assert all(torch.equal(a, c) for a, c in zip(run(), run()))


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    op, backward_op = CUSTOM_OPS
    for layout in LAYOUTS:
        x, w, b = _inputs((2, 3, 4, 5), dtype, device, gen, layout=layout)
        g = torch.randn(x.shape, generator=gen).to(dtype).to(device).contiguous(memory_format=layout)
        torch.library.opcheck(op, (x.clone().requires_grad_(), w.clone().requires_grad_(),
                                   b.clone().requires_grad_(), 1e-5, 0.0, backend))
        torch.library.opcheck(op, (x.clone().requires_grad_(), None, None, 1e-5, 0.2, backend))
        y, mean, var = op(x, w, b, 1e-5, 0.0, backend)
        torch.library.opcheck(backward_op, (g, x, w, b, mean, var, 1e-5, 0.0, backend))


def test_torch_compile_fullgraph(gen):
    """Every backend in one test: the first compile pays Dynamo's and Inductor's warm-up."""
    for backend, device, available in testing.backend_cases(OP):
        if not available:
            continue
        torch._dynamo.reset()
        x, w, b = _inputs((2, 3, 4, 4), torch.float32, device, gen)
        x.requires_grad_(True)
        w.requires_grad_(True)

        def f(x, w):
            return ganfast.ops.instance_norm_act(x, w, b, act="leaky_relu", backend=backend).square().mul(x).sum()

        results = []
        for fn in (torch.compile(f, fullgraph=True), f):
            out = fn(x, w)
            results.append((out, *torch.autograd.grad(out, (x, w))))
        torch.testing.assert_close(results[0], results[1])


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(x="not a tensor"), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.randint(0, 5, (2, 3, 4, 4))), TypeError, "x must be"),
        (dict(x=torch.randn(2, 3)), ValueError, "x must be (N, C, L), (N, C, H, W) or (N, C, D, H, W)"),
        (dict(x=torch.randn(0, 3, 4, 4)), ValueError, "x must not be empty"),
        (dict(x=torch.randn(2, 3, 1, 1)), ValueError, "Expected more than 1 spatial element when training"),
        (dict(weight=torch.randn(4)), ValueError, "weight must have shape (3,)"),
        (dict(bias=torch.randn(3, device="meta")), ValueError, "bias must be on the same device"),
        (dict(running_mean=torch.zeros(3)), ValueError, "running_mean and running_var must be given together"),
        (dict(running_mean=torch.zeros(2), running_var=torch.ones(2)), ValueError, "running_mean must have shape"),
        (dict(use_input_stats=False), ValueError, "use_input_stats=False normalises by the running statistics"),
        (dict(use_input_stats=1), TypeError, "use_input_stats must be a bool"),
        (dict(momentum=1.5), ValueError, "momentum must be in [0, 1]"),
        (dict(eps=0.0), ValueError, "eps must be"),
        (dict(act="gelu"), ValueError, "act must be one of"),
        (dict(act=None), TypeError, "act must be one of"),
        (dict(negative_slope="0.2"), TypeError, "negative_slope must be"),
        (dict(backend="cudnn"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    args = {"x": torch.randn(2, 3, 4, 4), "weight": torch.rand(3), "bias": torch.randn(3), **kwargs}
    with pytest.raises(exc, match=re.escape(words)):
        ganfast.ops.instance_norm_act(**args)


def test_parameters_in_another_dtype_than_x(backend, device, gen):
    """A float32 affine and running statistics with float64 x (ATen refuses the mix: found by a user's trial):
    the values are the float64 reference's with the parameters converted, in training and in eval."""
    x, w, b = _inputs((2, 3, 4, 5), torch.float64, device, gen)
    w32, b32 = w.float(), b.float()
    rm, rv = torch.zeros(3), torch.ones(3)
    y = ganfast.ops.instance_norm_act(x, w32, b32, rm, rv, backend=backend)
    torch.testing.assert_close(y, F.relu(F.instance_norm(x, weight=w32.double(), bias=b32.double())))
    assert rm.dtype == torch.float32 and bool(rm.abs().sum() > 0)
    y = ganfast.ops.instance_norm_act(x, w32, b32, rm, rv, use_input_stats=False, backend=backend)
    want = F.relu(F.instance_norm(x, rm.double(), rv.double(), w32.double(), b32.double(), False))
    torch.testing.assert_close(y, want)

