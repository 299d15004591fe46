"""conv_bn_act / ConvBNLeakyReLU2d / convert against the torch.nn composition, in float64."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganfast
from ganfast import testing
from ganfast.ops.batch_norm_act import CUSTOM_OPS
from ganfast.ref import conv_bn_act as ref

from block_checks import DEVICE, block_inputs, check_against_reference, check_inference, check_steps
from ganfast.ops.conv_affine_act import CUSTOM_OPS as AFFINE_OPS

# `backend` comes from the registry (conftest.py): every backend of this op.
OP = "conv_bn_act"

# (in, out, kernel, stride, padding, N, H, W)
CONFIGS = [
    pytest.param(3, 17, 4, 2, 1, 3, 5, 7, id="k4s2-3to17-5x7"),
    pytest.param(17, 3, 3, 1, 1, 2, 6, 5, id="k3s1-17to3"),
    pytest.param(4, 5, 1, 1, 0, 2, 3, 3, id="k1"),
    pytest.param(2, 3, 7, 3, 3, 2, 8, 9, id="k7s3"),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(backend, device, training, dtype, gen):
    """The functional op against ganfast.ref.conv_bn_act: output, gradients and second derivatives."""
    inputs = block_inputs(2, 3, 3, 2, 5, 4, dtype, device, gen)
    check_against_reference(ganfast.ops.conv_bn_act, ref.conv_bn_act, inputs, backend, device, training, gen,
                            stride=2, padding=1, negative_slope=0.2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_matches_reference(backend, device, dtype, gen):
    """Eval mode without gradients (the one-kernel path on triton) against the reference."""
    inputs = block_inputs(3, 5, 3, 2, 6, 5, dtype, device, gen)
    testing.check_op(lambda *a: ganfast.ops.conv_bn_act(*a, False, backend=backend, padding=1, negative_slope=0.1),
                     lambda *a: ref.conv_bn_act(*a, False, padding=1, negative_slope=0.1), inputs, differentiable=[],
                     order=0)


def _pair(cin, cout, k, s, p, slope=0.2, bias=False, **bn_kw):
    """A fused layer and the nn.Sequential it replaces, with the same random weights."""
    seq = nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=bias), nn.BatchNorm2d(cout, **bn_kw),
                        nn.LeakyReLU(slope) if slope else nn.ReLU())
    with torch.no_grad():
        for prm in seq.parameters():
            prm.copy_(torch.randn_like(prm) * 0.5 + (1.0 if prm.dim() == 1 else 0.0))
    fused = ganfast.nn.ConvBNLeakyReLU2d(cin, cout, k, s, p, bias=bias, negative_slope=slope, **bn_kw)
    fused.conv.load_state_dict(seq[0].state_dict())
    fused.bn.load_state_dict(seq[1].state_dict())
    return fused, seq


@pytest.mark.parametrize("cin,cout,k,s,p,n,h,w", CONFIGS)
def test_train_steps_and_eval_match_sequential(backend, cin, cout, k, s, p, n, h, w, gen):
    fused, seq = _pair(cin, cout, k, s, p, bias=(k == 3))
    fused.backend = backend
    check_steps(fused, seq, lambda: torch.randn(n, cin, h, w, generator=gen, dtype=torch.float64) * 2 + 0.5,
                 torch.float32)


@pytest.mark.parametrize(
    "bn_kw,slope",
    [
        (dict(momentum=None), 0.2),
        (dict(affine=False), 0.2),
        (dict(track_running_stats=False), 0.1),
        (dict(eps=1e-3, momentum=0.3), 0.0),
    ],
    ids=["momentum-None", "affine-False", "no-running-stats", "relu-eps-momentum"],
)
def test_batch_norm_options(backend, bn_kw, slope, gen):
    fused, seq = _pair(3, 5, 3, 1, 1, slope=slope, **bn_kw)
    fused.backend = backend
    check_steps(fused, seq, lambda: torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64), torch.float32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision(backend, dtype, gen):
    # Slope 1.0: in half precision a pre-activation within rounding of 0 lands on either side of
    # LeakyReLU's kink, and its gradient then differs by (1 - slope) * g from the float64 model's,
    # in eager PyTorch as here.  The kink itself is tested in float32/float64.
    fused, seq = _pair(3, 6, 4, 2, 1, slope=1.0)
    fused = fused.to(dtype)
    fused.backend = backend
    # The reference runs the same (half-rounded) weights in float64.
    seq.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in seq.state_dict().items()})
    check_steps(fused, seq, lambda: torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64), dtype, steps=2)


def test_channels_last(backend, gen):
    fused, seq = _pair(3, 17, 4, 2, 1)
    fused = fused.to(memory_format=torch.channels_last)
    fused.backend = backend
    x = torch.randn(3, 3, 8, 6, generator=gen).to(DEVICE).to(memory_format=torch.channels_last)
    out = copy.deepcopy(fused)(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    check_steps(fused, seq, lambda: torch.randn(3, 3, 8, 6, generator=gen, dtype=torch.float64)
                 .to(memory_format=torch.channels_last), torch.float32, steps=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inference_path(backend, dtype, layout, gen):
    """Eval without gradients: one kernel (triton) with the BatchNorm affine and the activation fused."""
    fused, seq = _pair(3, 17, 4, 2, 1, bias=True)
    with torch.no_grad():
        seq[1].running_mean.normal_(0, 3, generator=gen)
        seq[1].running_var.uniform_(0.5, 2, generator=gen)
    fused.bn.load_state_dict(seq[1].state_dict())
    fused = fused.to(dtype)
    seq.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in seq.state_dict().items()})
    fused.backend = backend
    x = torch.randn(3, 3, 5, 7, generator=gen, dtype=torch.float64).contiguous(memory_format=layout)
    check_inference(fused, seq, x, dtype)


def test_inference_op_registration(backend, gen):
    (op,) = AFFINE_OPS
    x = torch.randn(2, 3, 5, 6, generator=gen).to(DEVICE)
    w = torch.randn(4, 3, 3, 3, generator=gen).to(DEVICE)
    vec = [torch.randn(4, generator=gen).to(DEVICE) for _ in range(3)]
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.library.opcheck(op, (x.contiguous(memory_format=layout), w, *vec, [2, 1], [1, 0], [0, 0], False,
                                   0.2, backend))
    torch._dynamo.reset()
    fused, _ = _pair(3, 5, 4, 2, 1)
    fused.backend = backend
    fused = fused.to(DEVICE).eval()
    compiled = torch.compile(fused, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), fused(x))


def test_batch_of_one_in_eval(backend, gen):
    fused, seq = _pair(3, 4, 3, 1, 0)
    fused.backend = backend
    fused.eval()
    seq.eval()
    x = torch.randn(1, 3, 3, 3, generator=gen)  # a 1x1 output: training would be rejected
    torch.testing.assert_close(fused(x.to(DEVICE)).cpu(), seq(x))
    fused.train()
    seq.train()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        fused(x)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        seq(x)


@pytest.mark.registered_op
def test_statistics_without_cancellation(backend, gen):
    """|mean| / std = 1e3: batch statistics match a float64 two-pass reference to 1e-6 relative."""
    op = CUSTOM_OPS[0]
    y64 = 1000.0 + torch.randn(4, 3, 9, 11, generator=gen, dtype=torch.float64)
    for layout in (torch.contiguous_format, torch.channels_last):
        y = y64.float().to(DEVICE).contiguous(memory_format=layout)
        w = torch.rand(3, generator=gen).to(DEVICE) + 0.5
        b = torch.randn(3, generator=gen).to(DEVICE)
        out, mean, var = op(y, w, b, 1e-5, 0.2, backend)
        exact = y.double().cpu()
        want_mean = exact.mean((0, 2, 3))
        want_var = ((exact - want_mean.view(1, -1, 1, 1)) ** 2).mean((0, 2, 3))
        assert mean.dtype == var.dtype == torch.float32
        torch.testing.assert_close(mean.double().cpu(), want_mean, rtol=1e-6, atol=0)
        torch.testing.assert_close(var.double().cpu(), want_var, rtol=1e-6, atol=0)
        # The normalised output: a float32 mean of values near 1e3 is itself off by up to half an
        # ulp (3e-5), so no float32 BatchNorm (eager's included) gets 1e-5 here; the fused one is
        # centred before scaling and stays as accurate as eager's.
        def bn_act(t, wt, bt):
            return F.leaky_relu(F.batch_norm(t, None, None, wt, bt, True, 0.0, 1e-5), 0.2)

        want = bn_act(exact, w.double().cpu(), b.double().cpu())
        err = (out.cpu().double() - want).abs().max()
        err_eager = (bn_act(y.cpu(), w.cpu(), b.cpu()).double() - want).abs().max()
        assert err <= 2 * err_eager + 1e-6, (float(err), float(err_eager))


class _Disc(nn.Module):
    """A DCGAN-style discriminator (nc -> ndf -> 2 ndf -> 4 ndf -> 1) at 16x16."""

    def __init__(self, nc=3, ndf=4):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 3, 1, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),
        )

    def forward(self, x):
        return self.main(x).flatten(1)


def test_convert_dcgan_discriminator(backend, gen):
    torch.manual_seed(5)
    ref = _Disc().double()
    model = ganfast.nn.convert(copy.deepcopy(ref), backend=backend)
    fused = [m for m in model.modules() if isinstance(m, ganfast.nn.ConvBNLeakyReLU2d)]
    assert len(fused) == 2 and fused[1].negative_slope == 0.0
    assert isinstance(model.main[3], nn.Identity) and isinstance(model.main[4], nn.Identity)
    # State dict: the same tensors under the fused layer's keys; other keys unchanged.
    mapping = {"main.2.weight": "main.2.conv.weight", "main.5.weight": "main.5.conv.weight"}
    for slot_old, slot_new in (("main.3", "main.2.bn"), ("main.6", "main.5.bn")):
        for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"{slot_old}.{leaf}"] = f"{slot_new}.{leaf}"
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        x = torch.randn(4, 3, 16, 16, generator=gen, dtype=torch.float64)
        out, want = model(x), ref(x)
        torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)
        for o, opt_ in ((out, opt), (want, opt_ref)):
            opt_.zero_grad()
            o.square().mean().backward()
        for k, b in ref.named_parameters():
            a = dict(model.named_parameters())[mapping.get(k, k)]
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=f"grad {k}")
        opt.step()
        opt_ref.step()
    sd, sd_ref = model.state_dict(), ref.state_dict()
    assert set(sd) == {mapping.get(k, k) for k in sd_ref}
    for k, v in sd_ref.items():
        torch.testing.assert_close(sd[mapping.get(k, k)], v, rtol=1e-10, atol=1e-12)
    model.eval()
    ref.eval()
    x = torch.randn(3, 3, 16, 16, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(model(x), ref(x), rtol=1e-10, atol=1e-12)
    # A checkpoint of the unconverted model loads into the converted one.
    fresh = ganfast.nn.convert(_Disc().double())
    fresh.load_state_dict(sd_ref)
    fresh.eval()
    torch.testing.assert_close(fresh(x), ref(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradient_penalties_match_unfused(backend, mode, gen):
    """WGAN-GP and R1 through a converted discriminator give the unfused model's parameter gradients."""
    torch.manual_seed(7)
    ref = _Disc().double()
    model = ganfast.nn.convert(copy.deepcopy(ref), backend=backend)
    ref.train(mode == "train")
    model.train(mode == "train")
    real = torch.randn(4, 3, 16, 16, generator=gen, dtype=torch.float64)
    fake = torch.randn(4, 3, 16, 16, generator=gen, dtype=torch.float64)
    eps = torch.rand(4, 1, 1, 1, generator=gen, dtype=torch.float64)

    def penalties(d):
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(d(mix).sum(), mix, create_graph=True)
        gp = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
        r = real.clone().requires_grad_(True)
        (gr,) = torch.autograd.grad(d(r).sum(), r, create_graph=True)
        r1 = gr.square().sum() / 2
        return torch.autograd.grad(gp + r1, list(d.parameters()))

    for a, b in zip(penalties(model), penalties(ref)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.registered_op
def test_opcheck(backend, gen):
    op, backward_op = CUSTOM_OPS
    y = torch.randn(3, 4, 5, 6, generator=gen).to(DEVICE)
    w = torch.rand(4, generator=gen).to(DEVICE) + 0.5
    b = torch.randn(4, generator=gen).to(DEVICE)
    for layout in (torch.contiguous_format, torch.channels_last):
        yl = y.contiguous(memory_format=layout)
        torch.library.opcheck(op, (yl.clone().requires_grad_(), w.clone().requires_grad_(),
                                   b.clone().requires_grad_(), 1e-5, 0.2, backend))
        torch.library.opcheck(op, (yl.clone(), None, None, 1e-5, 0.0, backend))
        _, mean, var = op(yl, w, b, 1e-5, 0.2, backend)
        g = torch.randn(yl.shape, generator=gen).to(DEVICE).contiguous(memory_format=layout)
        torch.library.opcheck(backward_op, (g, yl, w, b, mean, var, 1e-5, 0.2, backend))


def test_torch_compile_fullgraph(backend, gen):
    torch._dynamo.reset()
    fused, _ = _pair(3, 5, 4, 2, 1)
    fused.backend = backend
    fused = fused.to(DEVICE)
    eager = copy.deepcopy(fused)
    compiled = torch.compile(fused, fullgraph=True)
    for mode in ("train", "train", "eval"):
        compiled.train(mode == "train")
        eager.train(mode == "train")
        x = torch.randn(3, 3, 8, 8, generator=gen).to(DEVICE).requires_grad_()
        xe = x.detach().clone().requires_grad_()
        out, want = compiled(x), eager(xe)
        torch.testing.assert_close(out, want)
        out.square().sum().backward()
        want.square().sum().backward()
        torch.testing.assert_close(x.grad, xe.grad)
        torch.testing.assert_close(fused.conv.weight.grad, eager.conv.weight.grad)
        torch.testing.assert_close(fused.bn.running_var, eager.bn.running_var)


def test_autocast_is_as_accurate_as_eager_autocast(gen):
    """Under bf16 autocast both the fused layer and eager round the convolution to bf16; measured
    against the float64 model, the fused layer's error is no worse than eager's."""
    fused, seq = _pair(3, 6, 4, 2, 1)
    ref = copy.deepcopy(seq).double()
    x = torch.randn(4, 3, 8, 8, generator=gen)
    for train in (True, False):
        for m in (fused, seq, ref):
            m.train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, eager = fused(x), seq(x)
        want = ref(x.double())
        assert out.dtype == eager.dtype == torch.bfloat16
        err, err_eager = (out.double() - want).abs().max(), (eager.double() - want).abs().max()
        assert err <= 2 * err_eager + 1e-3 * want.abs().max(), (train, float(err), float(err_eager))


def test_unsupported_configuration_falls_back_with_one_warning(gen):
    conv = nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False)
    bn = nn.BatchNorm2d(6)
    seq = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn), nn.LeakyReLU(0.2))
    # backend="torch": the fused ops' path, which does not cover groups; on the CPU's auto path
    # (aten) the torch.nn children run every configuration and nothing falls back.
    fused = ganfast.nn.ConvBNLeakyReLU2d.from_modules(conv, bn, nn.LeakyReLU(0.2), backend="torch")
    x = torch.randn(2, 4, 7, 7, generator=gen)
    with pytest.warns(UserWarning, match="groups=2"):
        out = fused(x)
    torch.testing.assert_close(out, seq(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(fused(x), seq(x))
    torch.testing.assert_close(fused.bn.running_mean, seq[1].running_mean)
    auto = ganfast.nn.ConvBNLeakyReLU2d.from_modules(copy.deepcopy(conv), copy.deepcopy(bn), nn.LeakyReLU(0.2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(auto(x), seq(x))


def test_convert_leaves_unfusible_runs_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, groups=1), nn.BatchNorm1d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.Tanh(),
                          nn.Conv2d(4, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    ganfast.nn.convert(model)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "BatchNorm1d", "ReLU", "Conv2d", "BatchNorm2d", "Tanh",
                     "ConvBNLeakyReLU2d", "Identity", "Identity"]
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        ganfast.nn.convert("model")
    with pytest.raises(ValueError, match="backend must be one of"):
        ganfast.nn.convert(model, backend="fast")


def _args(**over):
    a = dict(x=torch.randn(2, 3, 6, 6), weight=torch.randn(4, 3, 3, 3), bn_weight=torch.rand(4),
             bn_bias=torch.randn(4), running_mean=torch.zeros(4), running_var=torch.ones(4))
    a.update(over)
    return a


@pytest.mark.parametrize(
    "over,exc,words",
    [
        (dict(x=torch.randint(0, 3, (2, 3, 6, 6))), TypeError, "x must be float16"),
        (dict(x=torch.randn(2, 3, 6)), ValueError, "x must be 4-D"),
        (dict(x=torch.randn(0, 3, 6, 6)), ValueError, "x must not be empty"),
        (dict(weight=torch.randn(4, 2, 3, 3)), ValueError, "weight must have 3 input channels"),
        (dict(weight=torch.randn(4, 3, 8, 8)), ValueError, "kernel size must be 1 to 7"),
        (dict(bn_weight=torch.rand(5)), ValueError, "bn_weight must have shape (4,)"),
        (dict(running_var=None), ValueError, "must be given together"),
        (dict(running_mean=torch.zeros(4, device="meta")), ValueError, "running_mean must be on the same device"),
        (dict(training=False, running_mean=None, running_var=None), ValueError, "required when training=False"),
        (dict(eps=0.0), ValueError, "eps must be a positive number"),
        (dict(momentum=1.5), ValueError, "momentum must be a number in [0, 1]"),
        (dict(stride=0), ValueError, "stride must be >= 1"),
        (dict(padding=(1, 2, 3)), TypeError, "padding must be an int or a pair"),
        (dict(x=torch.randn(2, 3, 2, 2)), ValueError, "smaller than the kernel"),
        (dict(backend="fastest"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs(over, exc, words):
    a = _args(**over)
    with pytest.raises(exc) as info:
        ganfast.ops.conv_bn_act(a.pop("x"), a.pop("weight"), **a)
    assert words in str(info.value)


def test_registered_for_dispatch():
    st = ganfast.available_backends("conv_bn_act", device="cpu")
    assert st["torch"] and st["triton"] and not st["cuda"]
    assert "has no cuda implementation" in st["cuda"].reason
