"""bias_act with act="prelu": learnable slopes (He et al. 2015, eq. 1), every backend against the reference.

Inputs are fresh random draws with z = x + b exactly 0 at some places (x = -b
there) and of both signs elsewhere; gradcheck runs on inputs kept away from
the kink, where finite differences are meaningful.  Shapes are tiny: the
Triton kernels run under the CPU interpreter here.
"""

import pytest
import torch
import torch.nn.functional as F

import ganfast
from ganfast import testing
from ganfast.ops.bias_act import PRELU_OPS
from ganfast.ref import bias_act as ref

OP = "bias_act"


def _inputs(shape, dim, dtype, device, gen, slopes="channel", zeros=True):
    """x, bias, alpha: alpha per channel or shared, some z = x + b exactly 0 (x = -b, exact in any dtype)."""
    c = shape[dim]
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).to(dtype)
    b = torch.randn(c, generator=gen, dtype=torch.float64).to(dtype)
    a = (torch.rand(c if slopes == "channel" else 1, generator=gen, dtype=torch.float64) * 0.8 - 0.3).to(dtype)
    if zeros:
        idx = [0] * len(shape)
        for k in range(c):
            idx[dim] = k
            x[tuple(idx)] = -b[k]
    return x.to(device), b.to(device), a.to(device)


def _fast(backend, **kw):
    return lambda x, b, a: ganfast.ops.bias_act(x, b, act="prelu", alpha=a, backend=backend, **kw)


def _ref(**kw):
    return lambda x, b, a: ref.bias_act(x, b, "prelu", 0.2, kw["gain"], kw["clamp"], kw["dim"], alpha=a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_reference(backend, device, dtype, gen):
    """Forward, gradients w.r.t. x, bias and alpha, and the double backward, with clamp active."""
    kw = dict(gain=1.4, clamp=1.1, dim=1)
    x, b, a = _inputs((2, 5, 3, 3), 1, dtype, device, gen)
    assert (x + b[:, None, None] == 0).any() and (x + b[:, None, None] > 0).any()
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b, a], differentiable=[0, 1, 2], order=2,
                     generator=gen, gradcheck=False)


@pytest.mark.parametrize("slopes", ["channel", "shared"])
def test_matches_torch_prelu(backend, device, slopes, gen):
    """float64: the output and every gradient equal torch.nn.functional.prelu's composition."""
    x, b, a = _inputs((3, 4, 5), 1, torch.float64, device, gen, slopes)
    x_, b_, a_ = (t.clone().requires_grad_() for t in (x, b, a))
    y = ganfast.ops.bias_act(x_, b_, act="prelu", alpha=a_, gain=1.3, clamp=1.5, backend=backend)
    xw, bw, aw = (t.clone().requires_grad_() for t in (x, b, a))
    want = (F.prelu(xw + bw[:, None], aw) * 1.3).clamp(-1.5, 1.5)
    torch.testing.assert_close(y, want, rtol=1e-14, atol=0)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device)
    got = torch.autograd.grad(y, (x_, b_, a_), g)
    for k, (u, w) in enumerate(zip(got, torch.autograd.grad(want, (xw, bw, aw), g))):
        assert u.shape == w.shape and u.dtype == w.dtype, k
        torch.testing.assert_close(u, w, rtol=1e-12, atol=1e-14)


def test_gradcheck_float64(backend, device, gen):
    """gradcheck and gradgradcheck in float64 with gain and clamp, slopes per channel along dim 0."""
    kw = dict(gain=1.7, clamp=1.2, dim=0)
    x, b, a = _inputs((2, 2), 0, torch.float64, device, gen, zeros=False)
    # Keep z off the kink by far more than gradcheck's step (random y0 meets the clamp's bounds with probability 0).
    z = x + b[:, None]
    x = torch.where(z.abs() < 0.05, x + 0.1, x)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b, a], differentiable=[0, 1, 2], order=2,
                     generator=gen)


def test_without_bias_shared_slope_half(backend, device, gen):
    kw = dict(gain=2.0, clamp=None, dim=1)
    x, _, a = _inputs((3, 4, 5), 1, torch.float16, device, gen, "shared", zeros=False)
    testing.check_op(lambda x, a: _fast(backend, **kw)(x, None, a), lambda x, a: _ref(**kw)(x, None, a), [x, a],
                     differentiable=[0, 1], order=2, generator=gen, gradcheck=False)


def test_channels_last_and_float32_slopes_with_half_input(backend, device, gen):
    """Mixed precision (float32 parameters, bf16 activations) in channels_last: the slope gradient stays float32."""
    x, b, a = _inputs((2, 6, 3, 3), 1, torch.bfloat16, device, gen)
    x = x.to(memory_format=torch.channels_last)
    b, a = b.float(), a.float()
    a_ = a.clone().requires_grad_()
    y = ganfast.ops.bias_act(x, b, act="prelu", alpha=a_, backend=backend)
    assert y.dtype == torch.bfloat16 and y.stride() == x.stride()
    y.float().square().sum().backward()
    assert a_.grad.dtype == torch.float32
    kw = dict(gain=1.0, clamp=None, dim=1)
    testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b, a], differentiable=[0, 1, 2], order=1,
                     generator=gen, gradcheck=False)


def test_nan_and_inf_propagate_like_reference(backend, device):
    x = torch.tensor([[float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-30, -3.0, 40.0, -40.0, 0.25]],
                     device=device).T.contiguous()
    b = torch.zeros(1, device=device)
    a = torch.tensor([0.3], device=device)
    for clamp in (None, 2.0):
        kw = dict(gain=1.0, clamp=clamp, dim=1)
        testing.check_op(_fast(backend, **kw), _ref(**kw), [x, b, a], differentiable=[0, 2], order=1,
                         gradcheck=False)


def test_r1_penalty_through_prelu(backend, device, gen):
    """R1 through a tiny PReLU discriminator: the penalty's gradients w.r.t. weights, bias and slopes."""
    def p(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    w1, b1, a1, w2 = p(8, 6), p(8), p(8), p(1, 8)
    real = torch.randn(5, 6, generator=gen, dtype=torch.float64).to(device)

    def penalty(act_fn):
        x = real.clone().requires_grad_(True)
        score = (act_fn(x @ w1.T, b1, a1) @ w2.T).sum()
        (gx,) = torch.autograd.grad(score, x, create_graph=True)
        params = [w1, b1, a1, w2]
        grads = torch.autograd.grad(gx.square().sum(), params, allow_unused=True)
        # b1's is zero (prelu' is piecewise constant): autograd may leave it out.
        return [torch.zeros_like(q) if d is None else d for d, q in zip(grads, params)]

    fast = penalty(lambda t, b, a: ganfast.ops.bias_act(t, b, act="prelu", alpha=a, gain=1.4, backend=backend))
    want = penalty(lambda t, b, a: F.prelu(t + b, a) * 1.4)
    for u, w in zip(fast, want):
        torch.testing.assert_close(u, w, rtol=1e-10, atol=1e-12)


def test_reference_closed_forms_match_autograd(gen):
    """ref.prelu_alpha_grad / prelu_grad2, which the op's backward uses, are autograd of ref.bias_act."""
    x, b, a = _inputs((3, 4, 5), 1, torch.float64, "cpu", gen)
    x, b, a = x.requires_grad_(), b.requires_grad_(), a.requires_grad_()
    args = (1.5, 1.1, 1)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).requires_grad_()
    y = ref.bias_act(x, b, "prelu", 0.2, *args, alpha=a)
    dx, da = torch.autograd.grad(y, (x, a), g, create_graph=True)
    torch.testing.assert_close(ref.prelu_alpha_grad(g, x, b, a, *args).sum((0, 2)), da, rtol=1e-12, atol=1e-14)
    vz, va = torch.randn(x.shape, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen,
                                                                                  dtype=torch.float64)
    dg, ddx, dda = torch.autograd.grad((dx * vz).sum() + (da * va).sum(), (g, x, a))
    t_grad, t_z, t_a = ref.prelu_grad2(vz, va, g, x, b, a, *args)
    lin = ref.bias_act_grad(vz, x, b, "prelu", 0.2, *args, alpha=a)
    for got, want in ((t_grad + lin, dg), (t_z, ddx), (t_a.sum((0, 2)), dda)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_third_derivative(backend, device, gen):
    """Orders beyond two: the op's double backward is itself differentiable (reference terms + the op)."""
    x, b, a = _inputs((2, 3, 2), 1, torch.float64, device, gen)
    x, a = x.requires_grad_(), a.requires_grad_()

    def third(fn):
        y = fn(x, a)
        g1x, g1a = torch.autograd.grad((y * y).sum(), (x, a), create_graph=True)
        g2 = torch.autograd.grad((g1x * g1x).sum() + g1a.square().sum(), (x, a), create_graph=True)
        return torch.autograd.grad(g2[0].square().sum() + g2[1].square().sum(), (x, a))

    got = third(lambda t, s: ganfast.ops.bias_act(t, b, act="prelu", alpha=s, gain=1.2, backend=backend))
    for u, w in zip(got, third(lambda t, s: F.prelu(t + b[:, None], s) * 1.2)):
        torch.testing.assert_close(u, w, rtol=1e-10, atol=1e-12)


@pytest.mark.registered_op
def test_opcheck(backend, device, gen):
    x, b, a = _inputs((2, 5, 3), 1, torch.float32, device, gen)
    g = torch.randn(x.shape, generator=gen).to(device)
    fwd, grad_op = PRELU_OPS

    def req(t):
        return t.clone().requires_grad_()

    torch.library.opcheck(fwd, (req(x), req(b), req(a), 1.3, 1.5, 1, backend))
    torch.library.opcheck(grad_op, (req(g), req(x), None, req(a[:1]), 1.3, None, 1, backend))


@pytest.mark.registered_op
def test_torch_compile_fullgraph(backend, device, gen):
    torch._dynamo.reset()
    x, b, a = (t.requires_grad_() for t in _inputs((2, 4, 3), 1, torch.float32, device, gen))

    def f(x, b, a):
        return ganfast.ops.bias_act(x, b, act="prelu", alpha=a, gain=1.1, clamp=3.0, backend=backend).square().sum()

    got = torch.compile(f, fullgraph=True)(x, b, a)
    want = f(x, b, a)
    torch.testing.assert_close(got, want)
    for u, w in zip(torch.autograd.grad(got, (x, b, a)), torch.autograd.grad(want, (x, b, a))):
        torch.testing.assert_close(u, w)


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(), TypeError, "alpha must be a torch.Tensor of slopes"),
        (dict(alpha=[0.25]), TypeError, "alpha must be a torch.Tensor"),
        (dict(alpha=torch.full((2,), 0.25)), ValueError, "alpha must have shape (1,) or (3,)"),
        (dict(alpha=torch.full((1, 3), 0.25)), ValueError, "alpha must have shape (1,) or (3,)"),
        (dict(alpha=torch.full((3,), 0.25, device="meta")), ValueError, "alpha must be on the same device"),
        (dict(alpha=torch.full((3,), 0.25, dtype=torch.bfloat16)), TypeError, "alpha must have x's dtype"),
        (dict(alpha=torch.full((3,), 1, dtype=torch.int64)), TypeError, "alpha must have x's dtype"),
        (dict(act="leaky_relu", alpha=torch.full((3,), 0.25)), ValueError, "alpha is prelu's"),
    ],
)
def test_bad_alpha_raises_clear_errors(kwargs, exc, words):
    args = dict(act="prelu")
    args.update(kwargs)
    with pytest.raises(exc) as info:
        ganfast.ops.bias_act(torch.randn(2, 3, 4), torch.randn(3), **args)
    assert words in str(info.value)


# -- the module -------------------------------------------------------------------------


def test_module_learns_slopes_like_torch_prelu(backend, device, gen):
    m = ganfast.nn.BiasAct(6, act="prelu", num_parameters=6, backend=backend).to(device)
    assert set(m.state_dict()) == {"bias", "weight"}
    torch.testing.assert_close(m.weight.detach(), torch.full((6,), 0.25, device=device))
    prelu = torch.nn.PReLU(6).to(device)
    with torch.no_grad():
        prelu.weight.copy_(torch.randn(6, generator=gen))
        m.bias.copy_(torch.randn(6, generator=gen))
    # torch.nn.PReLU's state_dict loads as it is: the key is "weight" in both.
    m.load_state_dict(prelu.state_dict(), strict=False)
    x = torch.randn(3, 6, 4, 4, generator=gen).to(device)
    y = m(x)
    want = prelu(x + m.bias.detach()[:, None, None])
    torch.testing.assert_close(y, want)
    y.square().sum().backward()
    want.square().sum().backward()
    torch.testing.assert_close(m.weight.grad, prelu.weight.grad, rtol=1e-5, atol=1e-5)
    assert "num_parameters=6" in repr(m)


def test_module_validation():
    m = ganfast.nn.BiasAct(act="prelu", bias=False)
    assert m.weight.shape == (1,) and set(m.state_dict()) == {"weight"}
    x = torch.randn(2, 3)
    torch.testing.assert_close(m(x), F.prelu(x, torch.tensor([0.25])))
    assert ganfast.nn.BiasAct(4, act="prelu", init=0.1).weight.tolist() == pytest.approx([0.1])
    with pytest.raises(ValueError, match="num_parameters must be 1 or num_channels"):
        ganfast.nn.BiasAct(4, act="prelu", num_parameters=3)
    with pytest.raises(ValueError, match="prelu's"):
        ganfast.nn.BiasAct(4, act="lrelu", num_parameters=4)
    assert ganfast.nn.BiasAct(4).weight is None
