"""bias_act: every backend that can run here against the float64 reference."""

import functools

import pytest
import torch

import ganfast
from ganfast import testing
from ganfast._activations import SCALAR_SLOPE_NAMES
from ganfast.ops.bias_act import CUSTOM_OPS
from ganfast.ref import bias_act as ref

from conftest import HAS_CUDA

# prelu (a tensor slope, its own ops) is tested in test_bias_act_prelu.py.
ACTS = sorted(a for a in ref.ACTIVATIONS if not ref.has_channel_slope(a))
DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "bias_act"


def _fast(backend, **kw):
    return lambda x, b: ganfast.ops.bias_act(x, b, backend=backend, **kw)


def _ref(**kw):
    return lambda x, b: ref.bias_act(x, b, **kw)


def _inputs(shape, dim, dtype, device, gen, bias=True, scale=2.0):
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)
    b = torch.randn(shape[dim], generator=gen, dtype=torch.float64).to(dtype).to(device) if bias else None
    return x, b


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, act, dtype, gen):
    kw = dict(act=act, negative_slope=0.2, gain=1.4, clamp=None, dim=1)
    x, b = _inputs((2, 5, 3, 7), 1, dtype, device, gen)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0, 1], order=2, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_float64(backend, device, act, gen):
    """gradcheck and gradgradcheck in float64, with gain and clamp (both active on these inputs)."""
    kw = dict(act=act, negative_slope=0.1, gain=1.7, clamp=1.2, dim=1)
    x, b = _inputs((2, 3, 2, 3), 1, torch.float64, device, gen)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0, 1], order=2, generator=gen)


@pytest.mark.parametrize(
    "shape,dim",
    [((1,), 0), ((3,), 0), ((1, 17), 1), ((17, 1), 1), ((1000003,), 0), ((2, 3, 5, 7), -1), ((4, 3, 5), 0)],
    ids=["n1", "n3", "n17", "c1", "n1000003", "dim-1", "dim0"],
)
@pytest.mark.parametrize("act", ["leaky_relu", "silu"])
def test_odd_sizes(backend, device, shape, dim, act, gen):
    kw = dict(act=act, negative_slope=0.2, gain=1.0, clamp=0.9, dim=dim)
    x, b = _inputs(shape, dim, torch.float32, device, gen)
    # gradgradcheck on a million elements is not feasible: the float32 comparison covers them.
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0, 1], order=2, generator=gen,
                     gradcheck=x.numel() <= 64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_bias(backend, device, dtype, gen):
    kw = dict(act="tanh", negative_slope=0.2, gain=2.0, clamp=None, dim=1)
    x, _ = _inputs((3, 4, 5), 1, dtype, device, gen, bias=False)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, None], differentiable=[0], order=2, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_float32_bias_with_half_input(backend, device, dtype, gen):
    """Mixed precision: parameters in float32, activations in half; the bias gradient stays float32."""
    kw = dict(act="leaky_relu", negative_slope=0.2, gain=1.0, clamp=None, dim=1)
    x, _ = _inputs((4, 6, 3, 3), 1, dtype, device, gen, bias=False)
    b = torch.randn(6, generator=gen).to(device).requires_grad_()
    y = ganfast.ops.bias_act(x, b, backend=backend, **kw)
    assert y.dtype == dtype
    y.float().square().sum().backward()
    assert b.grad.dtype == torch.float32
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b.detach()], differentiable=[0, 1], order=1,
                     generator=gen, gradcheck=False)


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced", "expanded"])
def test_memory_layouts(backend, device, layout, gen):
    """Dense layouts are kept as they are; other views are handled (copied once), never misread."""
    base = torch.randn(3, 6, 5, 4, generator=gen).to(device)
    if layout == "channels_last":
        x = base.to(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = base.transpose(2, 3)
    elif layout == "sliced":
        x = base[:, ::2, 1:, :3]
    else:
        x = base[:1].expand(3, 6, 5, 4)
    b = torch.randn(x.shape[1], generator=gen).to(device)
    kw = dict(act="sigmoid", negative_slope=0.2, gain=1.3, clamp=None, dim=1)
    y = ganfast.ops.bias_act(x, b, backend=backend, **kw)
    assert y.stride() == torch.empty_like(x).stride()
    if layout in ("channels_last", "transposed"):
        assert y.stride() == x.stride()
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0, 1], order=2, generator=gen,
                     gradcheck=False)


@pytest.mark.parametrize("act", ACTS)
def test_nan_and_inf_propagate_like_reference(backend, device, act):
    x = torch.tensor([[float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-30, -3.0, 40.0, -40.0, 0.25]],
                     device=device).T.contiguous()
    b = torch.zeros(1, device=device) + 0.0
    for clamp in (None, 2.0):
        kw = dict(act=act, negative_slope=0.2, gain=1.0, clamp=clamp, dim=1)
        testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b], differentiable=[0], order=1, gradcheck=False)


@pytest.mark.parametrize("act", ACTS)
def test_reference_closed_forms_match_autograd(act, gen):
    """ref.bias_act_grad / bias_act_grad2, which the kernels implement, are autograd of ref.bias_act."""
    x = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64) * 2
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)
    args = (act, 0.3, 1.5, 1.1, 1)
    y = ref.bias_act(x, b, *args)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (dx,) = torch.autograd.grad(y, x, g, create_graph=True)
    torch.testing.assert_close(ref.bias_act_grad(g, x.detach(), b, *args), dx, rtol=1e-12, atol=1e-12)
    v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    if dx.requires_grad:
        (ddx,) = torch.autograd.grad(dx, x, v)
    else:
        ddx = torch.zeros_like(x)
    if ref.has_grad2(act):
        torch.testing.assert_close(ref.bias_act_grad2(v, g, x.detach(), b, *args), ddx, rtol=1e-12, atol=1e-12)
    else:
        assert torch.count_nonzero(ddx) == 0


def test_third_derivative(backend, device, gen):
    """Orders beyond two go through the reference's curvature term and autograd."""
    x, b = _inputs((2, 3, 4), 1, torch.float64, device, gen)
    x.requires_grad_(True)

    def f(t):
        return ganfast.ops.bias_act(t, b, act="silu", gain=1.2, backend=backend)

    def third(fn):
        y = fn(x).sum()
        (g1,) = torch.autograd.grad(y, x, create_graph=True)
        (g2,) = torch.autograd.grad(g1.sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sum(), x)
        return g3

    torch.testing.assert_close(third(f), third(lambda t: ref.bias_act(t, b, "silu", 0.2, 1.2, None, 1)))


def test_r1_penalty_through_bias_act(backend, device, gen):
    """An R1 penalty (gradient of the gradient norm) through a tiny discriminator matches the reference."""
    torch.manual_seed(3)
    w1 = torch.randn(8, 6, dtype=torch.float64, device=device, requires_grad=True)
    b1 = torch.randn(8, dtype=torch.float64, device=device, requires_grad=True)
    w2 = torch.randn(1, 8, dtype=torch.float64, device=device, requires_grad=True)
    real = torch.randn(5, 6, dtype=torch.float64, device=device, generator=None)

    def penalty(act_fn):
        x = real.clone().requires_grad_(True)
        h = act_fn(x @ w1.T, b1)
        score = (h @ w2.T).sum()
        (gx,) = torch.autograd.grad(score, x, create_graph=True)
        r1 = gx.square().sum()
        grads = torch.autograd.grad(r1, [w1, b1, w2], allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, [w1, b1, w2])]

    for act in ("leaky_relu", "tanh"):
        fast = penalty(lambda t, b: ganfast.ops.bias_act(t, b, act=act, gain=1.4, backend=backend))
        want = penalty(lambda t, b: ref.bias_act(t, b, act, 0.2, 1.4, None, 1))
        for a, w in zip(fast, want):
            torch.testing.assert_close(a, w, rtol=1e-10, atol=1e-12)


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    x, b = _inputs((2, 5, 3, 3), 1, dtype, device, gen)
    g = torch.randn(x.shape, generator=gen).to(dtype).to(device)
    bias_act_op, grad_op = CUSTOM_OPS
    for act, clamp in (("leaky_relu", None), ("tanh", 1.5)):
        xa, ba = x.clone().requires_grad_(), b.clone().requires_grad_()
        torch.library.opcheck(bias_act_op, (xa, ba, act, 0.2, 1.3, clamp, 1, backend))
        torch.library.opcheck(bias_act_op, (x.clone().requires_grad_(), None, act, 0.2, 1.3, clamp, 1, backend))
        torch.library.opcheck(grad_op, (g.clone().requires_grad_(), x.clone().requires_grad_(),
                                        b.clone().requires_grad_(), act, 0.2, 1.3, clamp, 1, backend))


def test_torch_compile_fullgraph(backend, device, gen):
    torch._dynamo.reset()
    x, b = _inputs((2, 4, 3, 3), 1, torch.float32, device, gen)
    x.requires_grad_(True)
    b.requires_grad_(True)

    def f(x, b):
        return ganfast.ops.bias_act(x, b, act="silu", gain=1.1, clamp=3.0, backend=backend).square().sum()

    compiled = torch.compile(f, fullgraph=True)
    got = compiled(x, b)
    got_grads = torch.autograd.grad(got, (x, b))
    want = f(x, b)
    want_grads = torch.autograd.grad(want, (x, b))
    torch.testing.assert_close(got, want)
    for a, w in zip(got_grads, want_grads):
        torch.testing.assert_close(a, w)


# -- argument checks --------------------------------------------------------------------


def _x():
    return torch.randn(2, 3, 4)


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(x=torch.randint(0, 5, (2, 3))), TypeError, "x must be float16"),
        (dict(x=torch.randn(2, 0, 4)), ValueError, "x must not be empty"),
        (dict(bias=torch.randn(4)), ValueError, "bias must have shape (3,)"),
        (dict(bias=torch.randn(3, 1)), ValueError, "bias must have shape (3,)"),
        (dict(bias=torch.randn(3, device="meta")), ValueError, "bias must be on the same device"),
        (dict(bias=torch.randn(3).to(torch.bfloat16)), TypeError, "bias must have x's dtype"),
        (dict(bias=[1.0, 2.0, 3.0]), TypeError, "bias must be a torch.Tensor"),
        (dict(act="gelu2"), ValueError, "act must be one of"),
        (dict(dim=3), IndexError, "dim must be an int in [-3, 2]"),
        (dict(clamp=-1.0), ValueError, "clamp must be a finite non-negative"),
        (dict(gain=float("nan")), ValueError, "gain must be a finite"),
        (dict(negative_slope="0.2"), TypeError, "negative_slope must be a float"),
        (dict(backend="cudnn"), ValueError, "backend must be one of"),
        (dict(x="not a tensor"), TypeError, "x must be a torch.Tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    args = dict(x=_x(), bias=torch.randn(3))
    args.update(kwargs)
    x = args.pop("x")
    with pytest.raises(exc) as info:
        ganfast.ops.bias_act(x, **args)
    assert words in str(info.value)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised where no GPU is present")
def test_cuda_backend_on_cpu_tensor_is_unavailable():
    with pytest.raises(ganfast.BackendUnavailable) as info:
        ganfast.ops.bias_act(_x(), torch.randn(3), backend="cuda")
    msg = str(info.value)
    assert "'cuda'" in msg and "bias_act" in msg and "backend='auto'" in msg


def test_cuda_extension_implements_the_same_activation_table():
    from ganfast import _cuda

    if not _cuda.status():
        pytest.skip(f"ganfast._C is not built here: {_cuda.status().reason}")
    assert list(_cuda.extension().activations()) == list(SCALAR_SLOPE_NAMES)


# -- the module -------------------------------------------------------------------------


def test_module(backend, device, gen):
    m = ganfast.nn.BiasAct(6, act="lrelu", negative_slope=0.1, gain=2 ** 0.5, backend=backend).to(device)
    with torch.no_grad():
        m.bias.copy_(torch.randn(6, generator=gen))
    assert set(m.state_dict()) == {"bias"}
    x = torch.randn(3, 6, 4, 4, generator=gen).to(device)
    testing.check_op(lambda x, b: m(x), functools.partial(ref.bias_act, act="leaky_relu", negative_slope=0.1,
                                                          gain=2 ** 0.5, clamp=None, dim=1),
                     [x, m.bias.detach()], differentiable=[0], order=2, gradcheck=False)
    m(x).sum().backward()
    torch.testing.assert_close(m.bias.grad, ref.bias_act_grad(torch.ones_like(x), x, m.bias.detach(), "leaky_relu",
                                                              0.1, 2 ** 0.5, None, 1).sum((0, 2, 3)))
    assert "lrelu" not in repr(m) and "leaky_relu" in repr(m)


def test_module_without_bias_and_validation():
    m = ganfast.nn.BiasAct(act="tanh", bias=False)
    assert m.bias is None and len(list(m.parameters())) == 0
    x = torch.randn(2, 3)
    torch.testing.assert_close(m(x), torch.tanh(x))
    with pytest.raises(ValueError, match="num_channels"):
        ganfast.nn.BiasAct(act="tanh", bias=True)
    with pytest.raises(ValueError, match="act must be one of"):
        ganfast.nn.BiasAct(4, act="nope")
    with pytest.raises(ValueError, match="backend must be one of"):
        ganfast.nn.BiasAct(4, backend="fast")
