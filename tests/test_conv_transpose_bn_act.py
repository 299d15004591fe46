"""conv_transpose2d / conv_transpose_bn_act / ConvTransposeBNReLU2d / convert, in float64."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganfast
from ganfast import testing
from ganfast.ops.conv_transpose2d import CUSTOM_OPS
from ganfast.ref import conv_transpose_bn_act as ref

from block_checks import DEVICE, block_inputs, check_against_reference, check_inference, check_steps

# `backend` comes from the registry (conftest.py): every backend of this op, or of the op
# a test's `op` marker names.
OP = "conv_transpose_bn_act"


@pytest.mark.op("conv_transpose2d")
def test_conv_transpose2d_every_geometry(backend, gen):
    """Every stride (1-4), kernel (1-7), output_padding < stride and a spread of paddings, tiny tensors."""
    for stride in range(1, 5):
        for k in range(1, 8):
            for output_padding in range(stride):
                for padding in sorted({0, (k - 1) // 2, k - 1}):
                    x = torch.randn(1, 2, 3, 2, generator=gen, dtype=torch.float64)
                    w = torch.randn(2, 3, k, k, generator=gen, dtype=torch.float64)
                    b = torch.randn(3, generator=gen, dtype=torch.float64)
                    size = [(n - 1) * stride - 2 * padding + k + output_padding for n in x.shape[2:]]
                    if min(size) < 1:
                        continue
                    args = (stride, padding, output_padding)
                    got = ganfast.ops.conv_transpose2d(x.to(DEVICE), w.to(DEVICE), b.to(DEVICE), *args,
                                                       backend=backend)
                    testing.assert_close(got.cpu(), F.conv_transpose2d(x, w, b, *args), torch.float64, 0,
                                         f"s={stride} k={k} p={padding} op={output_padding}")


@pytest.mark.op("conv_transpose2d")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_conv_transpose2d_gradients(backend, dtype, layout, gen):
    x = torch.randn(3, 5, 4, 3, generator=gen).to(dtype).to(DEVICE).contiguous(memory_format=layout)
    w = (torch.randn(5, 4, 4, 4, generator=gen) * 0.3).to(dtype).to(DEVICE)
    b = torch.randn(4, generator=gen).to(dtype).to(DEVICE)
    out = ganfast.ops.conv_transpose2d(x, w, b, 2, 1, 1, backend=backend)
    assert out.is_contiguous(memory_format=layout)
    testing.check_op(
        lambda x, w, b: ganfast.ops.conv_transpose2d(x, w, b, 2, 1, 1, backend=backend),
        lambda x, w, b: F.conv_transpose2d(x.cpu(), w.cpu(), b.cpu(), 2, 1, 1),
        [x, w, b], differentiable=[0, 1, 2], order=2 if dtype == torch.float32 else 1, generator=gen,
        gradcheck=False, forward_slack=_rounded_conv_slack(backend, dtype),
    )


def _rounded_conv_slack(backend, dtype):
    """The torch / aten paths' admitted extra error in bfloat16: ATen may store the convolution in bfloat16
    before adding the bias (oneDNN on CPUs without native bf16 does; found on an AMD EPYC), one rounding of
    ``u |conv(x, w)| <= u conv(|x|, |w|)``, u = 2^-8, beyond the table's output rounding.  None otherwise."""
    if backend not in ("torch", "aten") or dtype != torch.bfloat16:
        return None

    def slack(x, w, b):
        return 2.0 ** -8 * F.conv_transpose2d(x.abs().cpu(), w.abs().cpu(), None, 2, 1, 1)

    return slack


def test_conv_transpose2d_gradcheck_float64(gen):
    x = torch.randn(2, 2, 3, 2, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    testing.check_op(
        lambda x, w, b: ganfast.ops.conv_transpose2d(x, w, b, 2, 1, 1, backend="torch"),
        lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1),
        [x, w, b], differentiable=[0, 1, 2], order=2, generator=gen,
    )


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(backend, device, training, dtype, gen):
    """The functional op against ganfast.ref.conv_transpose_bn_act: output, gradients, second derivatives."""
    inputs = block_inputs(2, 3, 3, 2, 3, 2, dtype, device, gen, transposed=True)
    check_against_reference(ganfast.ops.conv_transpose_bn_act, ref.conv_transpose_bn_act, inputs, backend, device,
                            training, gen, stride=2, padding=1, output_padding=1, negative_slope=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_matches_reference(backend, device, dtype, gen):
    """Eval mode without gradients (one sub-pixel kernel on triton) against the reference."""
    kw = dict(training=False, stride=2, padding=1, negative_slope=0.2)
    inputs = block_inputs(3, 4, 4, 2, 3, 4, dtype, device, gen, transposed=True)
    testing.check_op(lambda *a: ganfast.ops.conv_transpose_bn_act(*a, backend=backend, **kw),
                     lambda *a: ref.conv_transpose_bn_act(*a, **kw), inputs, differentiable=[], order=0)


# (in, out, kernel, stride, padding, output_padding, N, H, W)
CONFIGS = [
    pytest.param(5, 17, 4, 2, 1, 0, 3, 3, 5, id="k4s2p1-dcgan"),
    pytest.param(8, 3, 4, 1, 0, 0, 4, 1, 1, id="k4s1p0-from-latent"),
    pytest.param(3, 4, 3, 3, 1, 2, 2, 2, 3, id="k3s3-op2"),
    pytest.param(4, 3, 5, 4, 2, 1, 2, 2, 2, id="k5s4"),
]


def _pair(cin, cout, k, s, p, op, slope=0.0, bias=False, **bn_kw):
    seq = nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, op, bias=bias), nn.BatchNorm2d(cout, **bn_kw),
                        nn.LeakyReLU(slope) if slope else nn.ReLU())
    with torch.no_grad():
        for prm in seq.parameters():
            prm.copy_(torch.randn_like(prm) * 0.5 + (1.0 if prm.dim() == 1 else 0.0))
    fused = ganfast.nn.ConvTransposeBNReLU2d.from_modules(copy.deepcopy(seq[0]), copy.deepcopy(seq[1]), seq[2])
    return fused, seq


@pytest.mark.parametrize("cin,cout,k,s,p,op,n,h,w", CONFIGS)
def test_train_steps_and_eval_match_sequential(backend, cin, cout, k, s, p, op, n, h, w, gen):
    fused, seq = _pair(cin, cout, k, s, p, op, bias=(k == 3))
    fused.backend = backend
    check_steps(fused, seq, lambda: torch.randn(n, cin, h, w, generator=gen, dtype=torch.float64) * 2 + 0.5,
                torch.float32)


@pytest.mark.parametrize("bn_kw,slope", [(dict(momentum=None), 0.2), (dict(affine=False, eps=1e-3), 0.0),
                                         (dict(track_running_stats=False), 0.1)],
                         ids=["momentum-None-lrelu", "affine-False", "no-running-stats"])
def test_batch_norm_options(backend, bn_kw, slope, gen):
    fused, seq = _pair(3, 5, 4, 2, 1, 0, slope=slope, **bn_kw)
    fused.backend = backend
    check_steps(fused, seq, lambda: torch.randn(2, 3, 3, 4, generator=gen, dtype=torch.float64), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inference_path(backend, dtype, layout, gen):
    """Eval without gradients: one sub-pixel kernel (triton) with the BatchNorm affine and ReLU fused."""
    fused, seq = _pair(5, 6, 4, 2, 1, 1, bias=True)
    with torch.no_grad():
        seq[1].running_mean.normal_(0, 3, generator=gen)
        seq[1].running_var.uniform_(0.5, 2, generator=gen)
    fused.bn.load_state_dict(seq[1].state_dict())
    fused = fused.to(dtype)
    seq.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in seq.state_dict().items()})
    fused.backend = backend
    x = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64).contiguous(memory_format=layout)
    slack = None
    if backend in ("torch", "aten") and dtype == torch.bfloat16:
        # the composition stores the convolution in bfloat16 before the BatchNorm affine (as eager torch.nn
        # does): one rounding, u |conv(x)|, times the affine's scale |gamma| / sqrt(var + eps)
        ref = copy.deepcopy(seq).double()
        with torch.no_grad():
            conv = ref[0](x.to(dtype).double()).abs()
            bn = ref[1]
            scale = (bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps))[None, :, None, None]
        slack = 2.0 ** -8 * conv * scale
    check_inference(fused, seq, x, dtype, slack=slack)


def test_constructor_matches_nn_layers():
    layer = ganfast.nn.ConvTransposeBNReLU2d(8, 4, 4, stride=2, padding=1, output_padding=1, eps=1e-3,
                                             momentum=0.2)
    assert isinstance(layer.conv, nn.ConvTranspose2d) and layer.conv.output_padding == (1, 1)
    assert layer.conv.bias is None and layer.bn.eps == 1e-3 and layer.bn.momentum == 0.2
    assert layer.negative_slope == 0.0
    assert set(layer.state_dict()) == {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                       "bn.running_var", "bn.num_batches_tracked"}


class _Gen(nn.Module):
    """A DCGAN generator (nz -> 4 ngf -> 2 ngf -> ngf -> nc, 4x4 -> 32x32), with its Tanh output."""

    def __init__(self, nz=8, ngf=4, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


def test_convert_dcgan_generator(backend, gen):
    torch.manual_seed(11)
    ref = _Gen().double()
    model = ganfast.nn.convert(copy.deepcopy(ref), backend=backend)
    assert sum(isinstance(m, ganfast.nn.ConvTransposeBNReLU2d) for m in model.modules()) == 3
    mapping = {}
    for i in (0, 3, 6):
        mapping[f"main.{i}.weight"] = f"main.{i}.conv.weight"
        for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"main.{i + 1}.{leaf}"] = f"main.{i}.bn.{leaf}"
    params = dict(model.named_parameters())
    for step in range(2):
        z = torch.randn(4, 8, 1, 1, generator=gen, dtype=torch.float64)
        img, want = model(z), ref(z)
        assert img.shape == (4, 3, 32, 32)
        torch.testing.assert_close(img, want, rtol=1e-10, atol=1e-12)
        model.zero_grad()
        ref.zero_grad()
        img.square().sum().backward()
        want.square().sum().backward()
        for k, p in ref.named_parameters():
            torch.testing.assert_close(params[mapping.get(k, k)].grad, p.grad, rtol=1e-10, atol=1e-12, msg=k)
    sd = model.state_dict()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(sd[mapping.get(k, k)], v, rtol=1e-10, atol=1e-12, msg=k)
    model.eval()
    ref.eval()
    z = torch.randn(3, 8, 1, 1, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(model(z), ref(z), rtol=1e-10, atol=1e-12)
    fresh = ganfast.nn.convert(_Gen().double())
    fresh.load_state_dict(ref.state_dict())
    fresh.eval()
    torch.testing.assert_close(fresh(z), ref(z), rtol=1e-10, atol=1e-12)


@pytest.mark.registered_op
def test_opcheck_and_compile(backend, gen):
    (op,) = CUSTOM_OPS
    x = torch.randn(2, 3, 3, 4, generator=gen).to(DEVICE)
    w = torch.randn(3, 4, 4, 4, generator=gen).to(DEVICE)
    b = torch.randn(4, generator=gen).to(DEVICE)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        torch.library.opcheck(op, (xl.clone().requires_grad_(), w.clone().requires_grad_(),
                                   b.clone().requires_grad_(), [2, 2], [1, 1], [1, 0], backend))
    torch._dynamo.reset()
    fused, _ = _pair(3, 4, 4, 2, 1, 0)
    fused.backend = backend
    eager = copy.deepcopy(fused)
    compiled = torch.compile(fused, fullgraph=True)
    for mode in ("train", "eval"):
        compiled.train(mode == "train")
        eager.train(mode == "train")
        xi = x.clone().requires_grad_()
        xe = x.clone().requires_grad_()
        out, want = compiled(xi), eager(xe)
        torch.testing.assert_close(out, want)
        out.square().sum().backward()
        want.square().sum().backward()
        torch.testing.assert_close(xi.grad, xe.grad)


def test_autocast():
    fused, seq = _pair(3, 6, 4, 2, 1, 0)
    ref = copy.deepcopy(seq).double()
    x = torch.randn(4, 3, 4, 4)
    for train in (True, False):
        for m in (fused, seq, ref):
            m.train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, eager = fused(x), seq(x)
        assert out.dtype == eager.dtype == torch.bfloat16
        want = ref(x.double())
        err, err_eager = (out.double() - want).abs().max(), (eager.double() - want).abs().max()
        assert err <= 2 * err_eager + 1e-3 * want.abs().max(), (train, float(err), float(err_eager))


@pytest.mark.parametrize(
    "over,exc,words",
    [
        (dict(weight=torch.randn(2, 4, 4, 4)), ValueError, "weight must have shape (C_in=3"),
        (dict(stride=5), ValueError, "stride must be 1 to 4"),
        (dict(output_padding=2), ValueError, "output_padding must be smaller than stride"),
        (dict(weight=torch.randn(3, 4, 8, 8)), ValueError, "kernel size must be 1 to 7"),
        (dict(bias=torch.randn(3)), ValueError, "bias must have shape (4,)"),
        (dict(x=torch.randn(2, 3, 4)), ValueError, "x must be 4-D"),
        (dict(weight=torch.randn(3, 4, 4, 4, dtype=torch.float64)), TypeError, "weight and bias must have x's dtype"),
        (dict(padding=5), ValueError, "leaves no output"),
    ],
)
def test_bad_inputs(over, exc, words):
    a = dict(x=torch.randn(2, 3, 4, 4), weight=torch.randn(3, 4, 4, 4), bias=None, stride=2, padding=1,
             output_padding=0)
    a.update(over)
    with pytest.raises(exc) as info:
        ganfast.ops.conv_transpose2d(**a)
    assert words in str(info.value)


def test_fallback_for_unsupported_stride(gen):
    conv = nn.ConvTranspose2d(3, 4, 4, stride=5, bias=False)
    bn = nn.BatchNorm2d(4)
    seq = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn), nn.ReLU())
    fused = ganfast.nn.ConvTransposeBNReLU2d.from_modules(conv, bn, nn.ReLU(), backend="torch")
    x = torch.randn(2, 3, 2, 2, generator=gen)
    with pytest.warns(UserWarning, match="stride"):
        torch.testing.assert_close(fused(x), seq(x))
