"""modulated_conv2d: every backend against the float64 reference, and the reference against eqs. 1-3 written out."""

import re

import pytest
import torch
import torch.nn.functional as F

import ganfast
from ganfast import testing
from ganfast.ops.modulated_conv2d import CUSTOM_OPS
from ganfast.ref import modulated_conv2d as ref
from ganfast.ref import upfirdn2d as ufd_ref

# `backend, device` come from the registry (conftest.py): every backend of this op.
OP = "modulated_conv2d"

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (up, down, kernel, demodulate, noise): StyleGAN2's synthesis conv (3x3, noise), its upsampling conv, a
# discriminator-style strided conv, toRGB (1x1, no demodulation), a 1x1 upsampling conv.
CASES = [(1, 1, 3, True, True), (2, 1, 3, True, True), (1, 2, 3, True, False), (1, 1, 1, False, False),
         (2, 1, 1, True, False)]


def _filter(device, dtype=torch.float32):
    return ganfast.ops.setup_filter(device=device, dtype=dtype)


def _inputs(case, dtype, device, gen, n=3, cin=5, cout=4, size=(6, 7)):
    up, down, k, demod, noise = CASES[case]
    x = torch.randn(n, cin, *size, generator=gen, dtype=torch.float64).to(dtype).to(device)
    w = torch.randn(cout, cin, k, k, generator=gen, dtype=torch.float64).to(dtype).to(device)
    s = (torch.randn(n, cin, generator=gen, dtype=torch.float64) * 0.5 + 1).to(dtype).to(device)
    out = ref.modulated_conv2d(x.double(), w.double(), s.double(), None, _filter(device, torch.float64), demod, up,
                               down, k // 2)
    nz = torch.randn(n, 1, *out.shape[2:], generator=gen, dtype=torch.float64).to(dtype).to(device) if noise else None
    return x, w, s, nz


def _fast(backend, case, device):
    up, down, k, demod, _ = CASES[case]
    f = _filter(device)
    return lambda x, w, s, nz: ganfast.ops.modulated_conv2d(x, w, s, demod, up, down, k // 2, f, nz, backend=backend)


def _ref(case, device):
    up, down, k, demod, _ = CASES[case]
    f = _filter(device, torch.float64)
    return lambda x, w, s, nz: ref.modulated_conv2d(x, w, s, nz, f, demod, up, down, k // 2)


def _slack(backend, case, dtype, device):
    """The fused Triton kernel's admitted extra error in half precision: it forms x * s (and, with down > 1, the
    filtered x) in the storage dtype for the tensor cores' dot, as stylegan2-ada-pytorch's
    ``x * styles.to(x.dtype)`` does, where the reference multiplies in float32.  Two roundings of every operand:
    2 u |x| |s| * |w| (* d), u the dtype's unit roundoff; None for the other backends and dtypes."""
    if backend != "triton" or dtype not in (torch.float16, torch.bfloat16):
        return None
    up, down, k, demod, _ = CASES[case]
    f = _filter(device, torch.float64).abs()
    u = 2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -11

    def slack(x, w, s, nz):
        y = ref.modulated_conv2d(x.abs(), w.abs(), s.abs(), None, f, False, up, down, k // 2)
        if demod:
            y = y * ref.demodulation(w, s)[:, :, None, None]
        return 2 * u * y

    return slack


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, device, case, dtype, gen):
    """Forward, gradients (x, weight, styles, noise) and the double backward."""
    inputs = _inputs(case, dtype, device, gen)
    testing.check_op(_fast(backend, case, device), _ref(case, device), list(inputs),
                     forward_slack=_slack(backend, case, dtype, device),
                     differentiable=[0, 1, 2, 3] if inputs[3] is not None else [0, 1, 2], order=2, generator=gen,
                     gradcheck=False)


def test_gradcheck_float64(backend, device, gen):
    """Numerical against analytical derivatives.  The Triton backend on the CPU runs its forward under the
    interpreter (about 0.8 s a call with up = 2, and gradcheck makes hundreds): there it is checked to first
    order on the stride-1 case; its backward is the scaled form of the other backends, second order included,
    and test_matches_reference compares its first and second derivatives with the reference on every case."""
    case, order = (0, 1) if backend == "triton" and torch.device(device).type == "cpu" else (1, 2)
    inputs = _inputs(case, torch.float64, device, gen, n=2, cin=2, cout=2, size=(3, 3))
    testing.check_op(_fast(backend, case, device), _ref(case, device), list(inputs), differentiable=[0, 1, 2, 3],
                     order=order, generator=gen)


def test_reference_is_equations_1_to_3_sample_by_sample(gen):
    """The grouped convolution of the reference against eqs. 1-3 written per sample, with upfirdn2d's upsampling
    spelled out as zero insertion, the filter and conv2d (float64)."""
    n, cin, cout = 3, 4, 5
    x = torch.randn(n, cin, 5, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(cout, cin, 3, 3, generator=gen, dtype=torch.float64)
    s = torch.randn(n, cin, generator=gen, dtype=torch.float64)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 8
    for up in (1, 2):
        y = ref.modulated_conv2d(x, w, s, None, f, True, up, 1, 1)
        for i in range(n):
            wp = w * s[i].view(1, cin, 1, 1)                                       # eq. 1
            sigma = torch.sqrt(wp.square().sum(dim=(1, 2, 3)) + 1e-8)             # eqs. 2-3
            wpp = wp / sigma.view(cout, 1, 1, 1)
            xi = x[i:i + 1]
            if up == 2:  # zero insertion, padding (1 + 2, 1 + 1) per side, the 4x4 filter times 4, then conv
                z = torch.zeros(1, cin, 10, 12, dtype=torch.float64)
                z[:, :, ::2, ::2] = xi
                z = F.pad(z, [3, 2, 3, 2])
                k = (torch.outer(f, f) * 4).flip([0, 1]).expand(cin, 1, 4, 4)
                want = F.conv2d(F.conv2d(z, k, groups=cin), wpp)
            else:
                want = F.conv2d(xi, wpp, padding=1)
            torch.testing.assert_close(y[i:i + 1], want, rtol=1e-12, atol=1e-12)
        assert y.shape == (n, cout, 5 * up, 6 * up)


def test_demodulation_restores_unit_standard_deviation(backend, device, gen):
    """Eq. 3's purpose: with unit-variance i.i.d. inputs the demodulated output has unit standard deviation
    whatever the styles' scale (the paper's "statistics ... restored")."""
    x = torch.randn(4, 64, 16, 16, generator=gen).to(device)
    w = torch.randn(32, 64, 3, 3, generator=gen).to(device)
    s = (torch.rand(4, 64, generator=gen) * 10 + 0.1).to(device)
    y = ganfast.ops.modulated_conv2d(x, w, s, padding=1, backend=backend)[:, :, 1:-1, 1:-1]  # away from the padding
    assert abs(float(y.std()) - 1.0) < 0.05
    plain = ganfast.ops.modulated_conv2d(x, w, s, demodulate=False, padding=1, backend=backend)[:, :, 1:-1, 1:-1]
    assert float(plain.std()) > 10  # without it, the styles' scale goes straight through


def test_path_length_penalty_through_the_op(backend, device, gen):
    """Path-length regularisation (Karras et al. 2020, sec. 3.2): the gradient of <y, noise> w.r.t. the styles,
    its norm differentiated again w.r.t. the weight: equal to the reference's in float64."""
    x, w, s, _ = _inputs(1, torch.float64, device, gen)
    probe = torch.randn(3, 4, 12, 14, generator=gen, dtype=torch.float64).to(device)
    f = _filter(device, torch.float64)

    def penalty(op):
        ww = w.clone().requires_grad_()
        ss = s.clone().requires_grad_()
        (gs,) = torch.autograd.grad((op(x, ww, ss) * probe).sum(), ss, create_graph=True)
        return torch.autograd.grad(gs.square().sum(dim=1).sqrt().mean(), ww)[0]

    fast = penalty(lambda x, w, s: ganfast.ops.modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f,
                                                                backend=backend))
    want = penalty(lambda x, w, s: ref.modulated_conv2d(x, w, s, None, f, True, 2, 1, 1))
    assert want.abs().max() > 0
    torch.testing.assert_close(fast, want, rtol=1e-9, atol=1e-11)


def test_default_filter_is_stylegan2s(backend, device, gen):
    x, w, s, _ = _inputs(2, torch.float64, device, gen)
    a = ganfast.ops.modulated_conv2d(x, w, s, down=2, padding=1, backend=backend)
    b = ganfast.ops.modulated_conv2d(x, w, s, down=2, padding=1, backend=backend,
                                     resample_filter=torch.tensor([1.0, 3.0, 3.0, 1.0], device=device) / 8)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # down 2 is stylegan2-ada-pytorch's blur then stride-2 conv: upfirdn2d with padding 1 + (4 - 2 + 1) // 2 = 2
    # before and 1 + (4 - 2) // 2 = 2 after, then an unpadded stride-2 conv (no demodulation: styles scale x)
    plain = ganfast.ops.modulated_conv2d(x, w, s, demodulate=False, down=2, padding=1, backend=backend)
    blurred = ufd_ref.upfirdn2d(x * s[:, :, None, None], _filter(device, torch.float64), (1, 1), (1, 1), (2, 2, 2, 2))
    torch.testing.assert_close(plain, F.conv2d(blurred, w, stride=2), rtol=1e-12, atol=1e-12)
    assert plain.shape == (3, 4, 3, 3)  # 6 x 7 -> (6 + 4 - 3 - 3) // 2 + 1 = 3 and (7 + 4 - 3 - 3) // 2 + 1 = 3


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, device, dtype, gen):
    (op,) = CUSTOM_OPS
    x, w, s, nz = _inputs(1, dtype, device, gen)
    f = _filter(device)
    torch.library.opcheck(op, (x.requires_grad_(), w.requires_grad_(), s.requires_grad_(), nz, f, True, 2, 1, 1,
                               backend))
    x, w, s, _ = _inputs(3, dtype, device, gen)
    torch.library.opcheck(op, (x.contiguous(memory_format=torch.channels_last), w, s.requires_grad_(), None, None,
                               False, 1, 1, 0, backend))


def test_torch_compile_fullgraph(gen):
    for backend, device, available in testing.backend_cases(OP):
        if not available:
            continue
        torch._dynamo.reset()
        x, w, s, nz = _inputs(1, torch.float32, device, gen)
        s.requires_grad_(True)
        w.requires_grad_(True)
        f = _filter(device)

        def fn(x, w, s):
            return ganfast.ops.modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f, noise=nz,
                                                backend=backend).square().sum()

        results = []
        for g in (torch.compile(fn, fullgraph=True), fn):
            out = g(x, w, s)
            results.append((out, *torch.autograd.grad(out, (w, s))))
        torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(x="x"), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.randn(2, 3, 4)), ValueError, "x must have shape (N, C, H, W)"),
        (dict(weight=torch.randn(4, 2, 3, 3)), ValueError, "weight must have x's 3 input channels"),
        (dict(weight=torch.randn(4, 3, 3)), ValueError, "weight must have shape (out_channels, in_channels, kh, kw)"),
        (dict(styles=torch.randn(2, 4)), ValueError, "styles must have shape (2, 3)"),
        (dict(styles=torch.randn(3)), ValueError, "styles must have shape (2, 3)"),
        (dict(styles=torch.randn(2, 3, device="meta")), ValueError, "styles must be on the same device"),
        (dict(demodulate=1), TypeError, "demodulate must be True or False"),
        (dict(up=0), ValueError, "up must be an int >= 1"),
        (dict(up=2, down=2), ValueError, "up and down cannot both be > 1"),
        (dict(padding=-1), ValueError, "padding must be an int >= 0"),
        (dict(padding=1.0), TypeError, "padding must be an int >= 0"),
        (dict(weight=torch.randn(4, 3, 7, 7)), ValueError, "the output would be empty"),
        (dict(noise=torch.randn(2, 2, 4, 4)), ValueError, "noise must broadcast to the output's shape (2, 4, 4, 4)"),
        (dict(up=2, resample_filter="f"), TypeError, "resample_filter must be a torch.Tensor"),
        (dict(backend="cudnn"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    args = {"x": torch.randn(2, 3, 4, 4), "weight": torch.randn(4, 3, 3, 3), "styles": torch.randn(2, 3),
            "padding": 1, **kwargs}
    with pytest.raises(exc, match=re.escape(words)):
        ganfast.ops.modulated_conv2d(**args)


# -- the benchmark baseline -------------------------------------------------------------


def test_bench_baseline_computes_the_reference_function():
    """The eager form `ganfast bench` times (stylegan2-ada-pytorch's fused_modconv=False, as a user writes it) must
    compute what ganfast.ref defines."""
    from ganfast.bench.modulated_conv2d import cases

    for case in [c for c in cases() if c.quick]:
        x, w, s = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False).args
        p = case.params
        want = ref.modulated_conv2d(x, w, s, None, _filter("cpu", torch.float64), True, p["up"], 1, p["padding"])
        torch.testing.assert_close(case.eager()(x, w, s), want, rtol=1e-10, atol=1e-12)
        assert want.shape[2:] == case.out_hw
