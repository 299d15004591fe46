"""kernels/conv2d.py: every host function against float64 torch on the same (rounded) input values.

The Triton CPU interpreter runs one program at ~10 ms, so the tensors are
tiny and the geometry sweeps loop inside a test instead of being
parametrized one launch per test.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from ganfast import testing
from ganfast.kernels import conv2d as cv

from conftest import triton_devices

DEVICE = triton_devices()[0]
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
DTYPE_IDS = [str(d).removeprefix("torch.") for d in DTYPES]
LAYOUTS = ["nchw", "channels_last"]
DIMS = (0, 2, 3)  # everything but the channels


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _layout(t, layout):
    return t.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else t.contiguous()


def _randn(shape, gen, dtype, layout="nchw", scale=1.0):
    t = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
    return _layout(t, layout).to(DEVICE)


def _d(t):
    """float64 copy on the CPU (the reference's device), or None."""
    return None if t is None else t.detach().to("cpu", torch.float64)


def _ch(v):
    """(C,) -> (1, C, 1, 1) in float64, to broadcast against y."""
    return _d(v)[None, :, None, None]


def _leaky(v, slope):
    return torch.where(v > 0, v, v * slope)


def _check_layout(y, x):
    """y is laid out like x: channels_last for channels_last x, else contiguous NCHW."""
    if cv.memory_format(x) == torch.channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last), f"y strides {y.stride()}: expected channels_last"
    else:
        assert y.is_contiguous(), f"y strides {y.stride()}: expected contiguous NCHW"


# (batch, C_in, (H, W), C_out, (kh, kw), stride, padding, bias): the odd sizes of DESIGN.md.
CONV_CASES = [
    (1, 3, (5, 7), 17, (3, 3), (1, 1), (1, 1), True),
    (3, 17, (5, 7), 3, (1, 1), (2, 3), (0, 0), False),
    (1, 17, (5, 7), 17, (4, 4), (3, 2), (2, 1), True),
    (3, 3, (5, 7), 17, (7, 7), (2, 3), (1, 0), False),
    (3, 3, (5, 7), 3, (3, 1), (1, 2), (0, 3), True),
]

# (batch, C_in, (H, W), C_out, (kh, kw), stride, padding, output_padding, bias)
TRANSPOSED_CASES = [
    (1, 3, (5, 7), 17, (4, 4), (2, 2), (1, 1), (0, 0), True),  # DCGAN's generator block
    (3, 17, (2, 3), 3, (3, 7), (3, 1), (1, 3), (2, 0), False),
    (3, 3, (5, 7), 3, (1, 3), (4, 2), (0, 1), (1, 1), True),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d(dtype, layout, gen):
    for batch, c_in, hw, c_out, k, stride, padding, has_bias in CONV_CASES:
        what = f"conv2d N={batch} C={c_in}->{c_out} {hw} k={k} s={stride} p={padding} bias={has_bias}"
        x = _randn((batch, c_in) + hw, gen, dtype, layout)
        w = _randn((c_out, c_in) + k, gen, dtype, layout)
        b = _randn((c_out,), gen, dtype) if has_bias else None
        y = cv.conv2d(x, w, b, stride, padding)
        assert y.dtype == dtype, what
        _check_layout(y, x)
        testing.assert_close(y, F.conv2d(_d(x), _d(w), _d(b), stride, padding), dtype, 0, what)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv_transpose2d(dtype, layout, gen):
    for batch, c_in, hw, c_out, k, stride, padding, out_pad, has_bias in TRANSPOSED_CASES:
        what = f"conv_transpose2d N={batch} C={c_in}->{c_out} {hw} k={k} s={stride} p={padding} op={out_pad}"
        x = _randn((batch, c_in) + hw, gen, dtype, layout)
        w = _randn((c_in, c_out) + k, gen, dtype, layout)
        b = _randn((c_out,), gen, dtype) if has_bias else None
        y = cv.conv_transpose2d(x, w, b, stride, padding, out_pad)
        assert y.dtype == dtype, what
        _check_layout(y, x)
        want = F.conv_transpose2d(_d(x), _d(w), _d(b), stride, padding, out_pad)
        testing.assert_close(y, want, dtype, 0, what)


def _axis_cases(size, strides, kernels, paddings, transposed):
    """Every (stride, output_padding, padding, kernel) of one spatial axis that gives a non-empty output."""
    cases = []
    for s, k, p in itertools.product(strides, kernels, paddings):
        for op in range(s) if transposed else (0,):
            out = (size - 1) * s - 2 * p + k + op if transposed else (size + 2 * p - k) // s + 1
            if out >= 1:
                cases.append((s, op, p, k))
    return cases


def _sweep(transposed, h_cases, w_cases, x_shape, c_out, gen):
    """One launch per (h case, w case) pair, w cases cycled against h cases
    in reverse order (large strides meet small ones: fewer phases per launch)."""
    w_cases = list(reversed(w_cases))
    for i in range(max(len(h_cases), len(w_cases))):
        (sh, oph, ph, kh), (sw, opw, pw, kw) = h_cases[i % len(h_cases)], w_cases[i % len(w_cases)]
        c_in = x_shape[1]
        x = _randn(x_shape, gen, torch.float64)
        w = _randn((c_in, c_out, kh, kw) if transposed else (c_out, c_in, kh, kw), gen, torch.float64)
        b = _randn((c_out,), gen, torch.float64)
        if transposed:
            what = f"conv_transpose2d {x_shape} k={(kh, kw)} s={(sh, sw)} p={(ph, pw)} op={(oph, opw)}"
            y = cv.conv_transpose2d(x, w, b, (sh, sw), (ph, pw), (oph, opw))
            want = F.conv_transpose2d(_d(x), _d(w), _d(b), (sh, sw), (ph, pw), (oph, opw))
        else:
            what = f"conv2d {x_shape} k={(kh, kw)} s={(sh, sw)} p={(ph, pw)}"
            y = cv.conv2d(x, w, b, (sh, sw), (ph, pw))
            want = F.conv2d(_d(x), _d(w), _d(b), (sh, sw), (ph, pw))
        testing.assert_close(y, want, torch.float64, 0, what)


def test_conv_transpose2d_every_geometry(gen):
    """Every stride 1..4 with every output_padding < stride and every padding
    0..2, on each axis, with kernels 1 and 4 on the height axis and 3 and 7
    on the width axis.  The height axis runs on H = 3; the width axis on
    W = 1, where short outputs leave some phases without a single output
    pixel.  Kernels shorter than the stride leave phases without a tap
    (bias only)."""
    h_cases = _axis_cases(3, range(1, 5), (1, 4), (0, 1, 2), transposed=True)
    w_cases = _axis_cases(1, range(1, 5), (3, 7), (0, 1, 2), transposed=True)
    assert {(s, op, p) for s, op, p, _ in h_cases} == {(s, op, p) for s in range(1, 5) for op in range(s)
                                                       for p in range(3)}
    _sweep(True, h_cases, w_cases, (1, 2, 3, 1), 3, gen)


def test_conv2d_every_geometry(gen):
    """Strides 1..3, kernels 1, 3, 4, 7 and paddings 0..3 on each axis (5 x 7 input)."""
    h_cases = _axis_cases(5, range(1, 4), (1, 3, 4, 7), (0, 1, 2, 3), transposed=False)
    w_cases = _axis_cases(7, range(1, 4), (1, 3, 4, 7), (0, 1, 2, 3), transposed=False)
    _sweep(False, h_cases, w_cases, (1, 2, 5, 7), 3, gen)


def _small_tiles(monkeypatch):
    """Force 16 x 16 x 16 tiles: several m-tiles, n-tiles and K steps on tiny tensors."""
    monkeypatch.setattr(cv, "_config", lambda m, n, k, dtype: cv._Config(16, 16, 16, 4, 2))


def test_many_tiles(gen, monkeypatch):
    _small_tiles(monkeypatch)
    x = _randn((3, 17, 3, 5), gen, torch.float32, "channels_last")
    w = _randn((19, 17, 3, 3), gen, torch.float32)
    b = _randn((19,), gen, torch.float32)
    y = cv.conv2d(x, w, b, 1, 1)  # M = 45: 3 m-tiles; C_out = 19: 2 n-tiles; K = 153: 10 steps
    testing.assert_close(y, F.conv2d(_d(x), _d(w), _d(b), 1, 1), torch.float32, 0, "conv2d, 16x16x16 tiles")
    wt = _randn((17, 19, 4, 4), gen, torch.float32)
    y = cv.conv_transpose2d(x, wt, b, 2, 1, 1)  # 4 phases of 3 m-tiles, K = 68 per phase: 5 steps
    want = F.conv_transpose2d(_d(x), _d(wt), _d(b), 2, 1, 1)
    testing.assert_close(y, want, torch.float32, 0, "conv_transpose2d, 16x16x16 tiles")


def test_64bit_offsets(gen, monkeypatch):
    """The INDEX64 path (tensors past 2^30 elements) on small tensors, by lowering the threshold."""
    monkeypatch.setattr(cv, "_INDEX32_LIMIT", 0)
    x = _randn((3, 3, 5, 7), gen, torch.float32, "channels_last")
    w = _randn((5, 3, 3, 3), gen, torch.float32)
    b = _randn((5,), gen, torch.float32)
    y, mean, var = cv.conv2d_stats(x, w, b, 2, 1)
    _check_stats((y, mean, var), F.conv2d(_d(x), _d(w), _d(b), 2, 1), torch.float32, "conv2d_stats, 64-bit")
    wt = _randn((3, 5, 3, 3), gen, torch.float32)
    y = cv.conv_transpose2d(x, wt, b, 3, 1, 2, negative_slope=0.2)
    want = _leaky(F.conv_transpose2d(_d(x), _d(wt), _d(b), 3, 1, 2), 0.2)
    testing.assert_close(y, want, torch.float32, 0, "conv_transpose2d, 64-bit")


def test_strided_input_and_weight(gen):
    """Non-dense views are read through their strides, without copies."""
    big = _randn((3, 6, 10, 7), gen, torch.float32)
    x = big[:, ::2, ::2]  # (3, 3, 5, 7), strides (420, 140, 14, 1)
    w = _randn((5, 3, 3, 6), gen, torch.float32)[..., ::2]  # (5, 3, 3, 3), not contiguous
    y = cv.conv2d(x, w, None, 1, 1)
    assert y.is_contiguous()
    testing.assert_close(y, F.conv2d(_d(x), _d(w), None, 1, 1), torch.float32, 0, "conv2d of views")
    wt = _randn((3, 4, 4, 8), gen, torch.float32)[..., ::2]
    y = cv.conv_transpose2d(x, wt, None, 2, 1)
    want = F.conv_transpose2d(_d(x), _d(wt), None, 2, 1)
    testing.assert_close(y, want, torch.float32, 0, "conv_transpose2d of views")


@pytest.mark.parametrize(
    "x_dtype,out_dtype",
    [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16), (torch.float16, torch.float64)],
)
def test_out_dtype(x_dtype, out_dtype, gen):
    x = _randn((1, 3, 5, 7), gen, x_dtype)
    w = _randn((17, 3, 3, 3), gen, x_dtype)
    y = cv.conv2d(x, w, None, 1, 1, out_dtype=out_dtype)
    assert y.dtype == out_dtype
    # Half-precision inputs give exact products, so a wide output is as good as float32 accumulation.
    judged = out_dtype if out_dtype.itemsize <= x_dtype.itemsize else torch.float32
    testing.assert_close(y, F.conv2d(_d(x), _d(w), None, 1, 1), judged, 0, f"{x_dtype} -> {out_dtype}")


def _epilogue_ref(v, scale, shift, slope):
    if scale is not None:
        v = v * _ch(scale)
    if shift is not None:
        v = v + _ch(shift)
    return v if slope is None else _leaky(v, slope)


# (per-channel vector dtype, scale, shift, slope)
EPILOGUES = [(vec, has_scale, has_shift, slope)
             for vec, has_scale, has_shift, slope in itertools.product(
                 (torch.float32, torch.float64), (False, True), (False, True), (None, 0.2, 0.0))
             if vec == torch.float32 or (has_scale and has_shift)]  # float64 vectors once, with everything on
# The transposed kernel shares the epilogue code: a few combinations cover its wiring.
EPILOGUES_TRANSPOSED = [(torch.float32, True, True, 0.2), (torch.float64, False, True, 0.0),
                        (torch.float32, True, False, None)]


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_epilogue(dtype, transposed, gen):
    """(conv + bias) * scale + shift, then leaky ReLU against the float64
    expression: every combination of the optional parts, float32 and float64
    per-channel vectors, slopes 0.2 and 0 (ReLU)."""
    x = _randn((3, 3, 5, 7), gen, dtype, "channels_last")
    w = _randn((3, 17, 4, 4) if transposed else (17, 3, 3, 3), gen, dtype)
    b = _randn((17,), gen, dtype)
    want_conv = (F.conv_transpose2d(_d(x), _d(w), _d(b), 2, 1) if transposed
                 else F.conv2d(_d(x), _d(w), _d(b), 1, 1))
    for vec_dtype, has_scale, has_shift, slope in EPILOGUES_TRANSPOSED if transposed else EPILOGUES:
        scale = (torch.rand(17, generator=gen, dtype=torch.float64) + 0.5).to(vec_dtype).to(DEVICE) \
            if has_scale else None
        shift = _randn((17,), gen, vec_dtype) if has_shift else None
        kw = dict(scale=scale, shift=shift, negative_slope=slope)
        y = cv.conv_transpose2d(x, w, b, 2, 1, **kw) if transposed else cv.conv2d(x, w, b, 1, 1, **kw)
        what = f"epilogue scale={has_scale} shift={has_shift} ({vec_dtype}) slope={slope}"
        testing.assert_close(y, _epilogue_ref(want_conv, scale, shift, slope), dtype, 0, what)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_per_sample_scales(dtype, transposed, gen):
    """modulated_conv2d's form: conv(x * in_scale[n, ci], w) * out_scale[n, co] + addend + bias against float64,
    the addend full-size or broadcast (noise (N, 1, H, W)), NCHW and channels_last, each part alone and all."""
    acc = _acc(dtype)
    w = _randn((3, 5, 4, 4) if transposed else (5, 3, 3, 3), gen, dtype)
    b = _randn((5,), gen, dtype)
    conv = (lambda x_, w_, b_: F.conv_transpose2d(x_, w_, b_, 2, 1)) if transposed else \
        (lambda x_, w_, b_: F.conv2d(x_, w_, b_, 1, 1))
    for layout in LAYOUTS:
        x = _randn((2, 3, 5, 7), gen, dtype, layout)
        out_hw = (10, 14) if transposed else (5, 7)
        s_in = (torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.5).to(acc).to(DEVICE)
        s_out = (torch.rand(2, 5, generator=gen, dtype=torch.float64) + 0.5).to(acc).to(DEVICE)
        for add_shape in ((2, 5) + out_hw, (2, 1) + out_hw):
            add = _randn(add_shape, gen, torch.float32)
            for kw in (dict(in_scale=s_in), dict(out_scale=s_out), dict(addend=add),
                       dict(in_scale=s_in, out_scale=s_out, addend=add)):
                # The reference rounds x * in_scale to x's dtype as the kernel does before its dot.
                xs = _d(x) if "in_scale" not in kw else (_d(x) * _d(s_in)[:, :, None, None]).to(dtype).double()
                want = conv(xs, _d(w), None)
                if "out_scale" in kw:
                    want = want * _d(s_out)[:, :, None, None]
                if "addend" in kw:
                    want = want + _d(add)
                want = want + _ch(b)
                y = (cv.conv_transpose2d(x, w, b, 2, 1, **kw) if transposed else cv.conv2d(x, w, b, 1, 1, **kw))
                _check_layout(y, x)
                testing.assert_close(y, want, dtype, 0, f"{layout} {sorted(kw)} addend {add_shape}")


def test_epilogue_nan_propagates(gen):
    x = _randn((1, 3, 5, 7), gen, torch.float32)
    x[0, 1, 2, 3] = float("nan")
    w = _randn((17, 3, 3, 3), gen, torch.float32)
    scale = torch.full((17,), 0.5, device=DEVICE)
    for slope in (0.2, 0.0):
        y = cv.conv2d(x, w, None, 1, 1, scale=scale, negative_slope=slope)
        want = _epilogue_ref(F.conv2d(_d(x), _d(w), None, 1, 1), scale, None, slope)
        assert int(torch.isnan(want).sum()) == 17 * 9
        testing.assert_close(y, want, torch.float32, 0, f"NaN through leaky slope={slope}")


def _two_pass(y64):
    mean = y64.mean(DIMS)
    return mean, ((y64 - mean[None, :, None, None]) ** 2).mean(DIMS)


def _check_stats(got, y_ref, dtype, what, rtol=None):
    y, mean, var = got
    acc = _acc(dtype)
    assert mean.dtype == var.dtype == acc and mean.shape == var.shape == (y_ref.shape[1],), what
    testing.assert_close(y, y_ref, dtype, 0, f"{what}: y")
    want_mean, want_var = _two_pass(y_ref)
    testing.assert_close(mean, want_mean, acc, 0, f"{what}: mean")
    testing.assert_close(var, want_var, acc, 0, f"{what}: var")
    if rtol is not None:
        for name, g, w in (("mean", mean, want_mean), ("var", var, want_var)):
            err = float(((_d(g) - w).abs() / w.abs()).max())
            assert err <= rtol, f"{what}: {name} relative error {err:.3g} > {rtol}"


def _stats_case(transposed, x, w, b):
    if transposed:
        return cv.conv_transpose2d_stats(x, w, b, 2, 1, 1), F.conv_transpose2d(_d(x), _d(w), _d(b), 2, 1, 1)
    return cv.conv2d_stats(x, w, b, 1, 1), F.conv2d(_d(x), _d(w), _d(b), 1, 1)


# Every dtype with the tiles _config picks (one or a few per phase); the
# float32 and float64 accumulators also with 16 x 16 x 16 tiles, where the
# host's merge combines dozens of partials, some of them from the padding
# tiles of short transposed phases.
STATS_CASES = [pytest.param(dtype, tiles, id=f"{str(dtype).removeprefix('torch.')}-{tiles}")
               for dtype, tiles in [(torch.float32, "natural"), (torch.bfloat16, "natural"),
                                    (torch.float16, "natural"), (torch.float64, "natural"),
                                    (torch.float32, "16x16x16"), (torch.float64, "16x16x16")]]


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("dtype,tiles", STATS_CASES)
def test_stats(dtype, transposed, tiles, gen, monkeypatch):
    """Mean and biased variance from the accumulator tiles against float64
    two-pass statistics, with and without bias."""
    if tiles != "natural":
        _small_tiles(monkeypatch)
    x = _randn((3, 17, 3, 5) if transposed else (3, 17, 5, 7), gen, dtype, "channels_last")
    w = _randn((17, 5, 4, 4) if transposed else (5, 17, 3, 3), gen, dtype)
    for b in (None, _randn((5,), gen, dtype)):
        got, y_ref = _stats_case(transposed, x, w, b)
        _check_stats(got, y_ref, dtype, f"stats bias={b is not None}")


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("dtype,tiles", STATS_CASES)
def test_stats_large_mean(dtype, transposed, tiles, gen, monkeypatch):
    """|mean| / std = 1e3, the case where E[y^2] - E[y]^2 or float32 tile
    means would lose the variance: statistics within 1e-6 of float64
    two-pass ones (the brief's goal; 1e-10 for float64 through the table).

    Two ways to the large mean:
    - bias = 1000 on random data;
    - no bias, inputs 128 + {-1, 0, 1} and positive weights (negative for
      some channels), so the convolution itself sums to |mean| ~ 1e4.  The
      values are small integers and halves, so every product and sum is
      exact in float32 and bfloat16 inputs: the accumulator holds the exact
      convolution, and any error left is the statistics' own.
    """
    if tiles != "natural":
        _small_tiles(monkeypatch)
    # Random data, bias 1000.
    x = _randn((3, 17, 3, 5) if transposed else (3, 17, 5, 7), gen, dtype)
    w = _randn((17, 5, 4, 4) if transposed else (5, 17, 3, 3), gen, dtype, scale=0.08)
    b = torch.full((5,), 1000.0, dtype=dtype, device=DEVICE)
    got, y_ref = _stats_case(transposed, x, w, b)
    mean, var = _two_pass(y_ref)
    assert float((mean.abs() / var.sqrt()).min()) > 1e3
    _check_stats(got, y_ref, dtype, "bias 1000", rtol=1e-6)

    # Exact data, large weight sums.  Stride 1 with padding = kernel - 1
    # (transposed) or 0 (direct) gives every output pixel all taps.
    x = (128 + torch.randint(-1, 2, (3, 17, 5, 7), generator=gen)).to(dtype).to(DEVICE)
    sign = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0])
    mag = torch.randint(1, 4, (5, 17, 3, 3), generator=gen) / 2
    w = (mag * sign[:, None, None, None]).to(dtype).to(DEVICE)
    if transposed:
        w = w.transpose(0, 1).contiguous()
        got, y_ref = cv.conv_transpose2d_stats(x, w, None, 1, 2), F.conv_transpose2d(_d(x), _d(w), None, 1, 2)
    else:
        got, y_ref = cv.conv2d_stats(x, w, None, 1, 0), F.conv2d(_d(x), _d(w), None, 1, 0)
    mean, var = _two_pass(y_ref)
    assert float((mean.abs() / var.sqrt()).min()) > 1e3
    _check_stats(got, y_ref, dtype, "weight sums ~1e4", rtol=1e-6)


def test_stats_of_empty_batch():
    x = torch.empty((0, 3, 5, 7), device=DEVICE)
    w = torch.ones((4, 3, 3, 3), device=DEVICE)
    y, mean, var = cv.conv2d_stats(x, w)
    assert y.shape == (0, 4, 3, 5)
    assert mean.shape == var.shape == (4,) and bool(torch.isnan(mean).all()) and bool(torch.isnan(var).all())


def _bad_inputs():
    """(description, call, exception, message pattern): each names the argument at fault."""
    x = torch.randn(1, 3, 5, 7, device=DEVICE)
    w = torch.randn(4, 3, 3, 3, device=DEVICE)
    wt = torch.randn(3, 4, 3, 3, device=DEVICE)
    meta = torch.device("meta")
    return [
        ("x not a tensor", lambda: cv.conv2d(x.tolist(), w), TypeError, "x: expected a tensor"),
        ("x 3-D", lambda: cv.conv2d(x[0], w), ValueError, "x: expected a 4-D"),
        ("x integer", lambda: cv.conv2d(x.long(), w.long()), TypeError, "x: expected float16"),
        ("x on meta", lambda: cv.conv2d(x.to(meta), w.to(meta)), ValueError, "x: on meta"),
        ("weight dtype", lambda: cv.conv2d(x, w.double()), TypeError, "weight: dtype"),
        ("weight device", lambda: cv.conv2d(x, w.to(meta)), ValueError, "weight: on meta"),
        ("weight 3-D", lambda: cv.conv2d(x, w[0]), ValueError, "weight: expected a 4-D"),
        ("weight C_in", lambda: cv.conv2d(x, w[:, :2]), ValueError, "weight: .*C_in = 2.*3 channels"),
        ("transposed weight C_in", lambda: cv.conv_transpose2d(x, w), ValueError, "weight: .*C_in = 4"),
        ("kernel 8", lambda: cv.conv2d(x, torch.randn(4, 3, 8, 1, device=DEVICE), padding=4), ValueError,
         "weight: kernel size"),
        ("kernel 0", lambda: cv.conv2d(x, torch.randn(4, 3, 0, 3, device=DEVICE)), ValueError,
         "weight: kernel size"),
        ("stride 0", lambda: cv.conv2d(x, w, stride=(0, 1)), ValueError, "stride:"),
        ("transposed stride 5", lambda: cv.conv_transpose2d(x, wt, stride=5), ValueError, "stride: .*1..4"),
        ("stride type", lambda: cv.conv2d(x, w, stride="2"), TypeError, "stride: expected an int"),
        ("stride triple", lambda: cv.conv2d(x, w, stride=(1, 1, 1)), TypeError, "stride: expected an int"),
        ("padding", lambda: cv.conv2d(x, w, padding=-1), ValueError, "padding:"),
        ("output_padding", lambda: cv.conv_transpose2d(x, wt, stride=2, output_padding=2), ValueError,
         "output_padding:"),
        ("empty output", lambda: cv.conv2d(x, torch.randn(4, 3, 7, 7, device=DEVICE)), ValueError,
         "x: input size"),
        ("bias shape", lambda: cv.conv2d(x, w, torch.randn(3, device=DEVICE)), ValueError, "bias: expected shape"),
        ("bias type", lambda: cv.conv2d(x, w, [0.0] * 4), TypeError, "bias: expected a tensor"),
        ("bias device", lambda: cv.conv2d(x, w, torch.randn(4, device=meta)), ValueError, "bias: on meta"),
        ("scale dtype", lambda: cv.conv2d(x, w, scale=torch.ones(4, dtype=torch.float16, device=DEVICE)),
         TypeError, "scale: expected dtype"),
        ("shift shape", lambda: cv.conv2d(x, w, shift=torch.ones(4, 1, device=DEVICE)), ValueError,
         "shift: expected shape"),
        ("slope", lambda: cv.conv2d(x, w, negative_slope="0.2"), TypeError, "negative_slope:"),
        ("out_dtype", lambda: cv.conv2d(x, w, out_dtype=torch.int32), TypeError, "out_dtype:"),
        ("stats weight", lambda: cv.conv_transpose2d_stats(x, w[:, :2]), ValueError, "weight:"),
        ("in_scale shape", lambda: cv.conv2d(x, w, in_scale=torch.ones(1, 4, device=DEVICE)), ValueError,
         r"in_scale: expected shape \(1, 3\)"),
        ("out_scale dtype", lambda: cv.conv2d(x, w, out_scale=torch.ones(1, 4, dtype=torch.float64, device=DEVICE)),
         TypeError, "out_scale: expected dtype torch.float32"),
        ("addend shape", lambda: cv.conv2d(x, w, addend=torch.ones(2, 1, 3, 5, device=DEVICE)), ValueError,
         "addend: shape"),
        ("addend dtype", lambda: cv.conv2d(x, w, addend=torch.ones(1, 1, 3, 5, dtype=torch.long, device=DEVICE)),
         TypeError, "addend: expected a float tensor"),
        ("per-sample with epilogue", lambda: cv.conv2d(x, w, in_scale=torch.ones(1, 3, device=DEVICE),
                                                       negative_slope=0.2), ValueError, "not combined with"),
    ]


def test_bad_inputs():
    for description, call, exc, pattern in _bad_inputs():
        with pytest.raises(exc, match=pattern):
            call()
