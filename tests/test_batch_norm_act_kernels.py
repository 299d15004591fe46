"""kernels/batch_norm_act.py: every host function against float64 torch on the same input values."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from ganfast import testing
from ganfast.kernels import batch_norm_act as bn

from conftest import triton_devices

DEVICE = triton_devices()[0]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
DTYPE_IDS = [str(d).replace("torch.", "") for d in DTYPES]
LAYOUTS = ["nchw", "channels_last"]
# Every combination of N in {1, 3}, C in {1, 3, 17}, H x W in {1x1, 5x7, 4x4}.
SHAPES = [(n, c, h, w) for n, c, (h, w) in itertools.product((1, 3), (1, 3, 17), ((1, 1), (5, 7), (4, 4)))]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]
DIMS = (0, 2, 3)  # everything but the channels


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _layout(t, layout):
    return t.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else t.contiguous()


def _randn(shape, gen, dtype, layout, mean=0.5, std=2.0):
    t = (torch.randn(shape, generator=gen, dtype=torch.float64) * std + mean).to(dtype)
    return _layout(t, layout).to(DEVICE)


def _vec(c, gen, dtype):
    """A per-channel argument in the accumulation dtype for ``dtype`` inputs."""
    return torch.randn(c, generator=gen, dtype=torch.float64).to(_acc(dtype)).to(DEVICE)


def _ch(v):
    """(C,) -> (1, C, 1, 1) in float64, to broadcast against y."""
    return v.to(torch.float64)[None, :, None, None]


def _gz_ref(g, pre, slope):
    return torch.where(pre > 0, g, g * slope)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_channel_stats(shape, layout, dtype, gen):
    y = _randn(shape, gen, dtype, layout)
    mean, var = bn.channel_stats(y)
    assert mean.dtype == var.dtype == _acc(dtype)
    y64 = y.double()
    testing.assert_close(mean, y64.mean(DIMS), dtype, 0, "mean")
    testing.assert_close(var, y64.var(DIMS, unbiased=False), dtype, 0, "var")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_channel_stats_large_mean(layout, dtype, gen):
    """|mean| / std = 1e3 over several tiles: E[x^2] - E[x]^2 in float32 would keep no digit of the variance.

    The reference is two-pass float64 on the same (rounded) input values, so
    the 1e-6 bound holds for bfloat16 too: the input's rounding is not an error.
    """
    y = _randn((16, 3, 32, 32), gen, dtype, layout, mean=1e3, std=1.0)
    mean, var = bn.channel_stats(y)
    y64 = y.double()
    want_mean = y64.mean(DIMS)
    want_var = ((y64 - want_mean[None, :, None, None]) ** 2).mean(DIMS)
    assert float(want_var.min()) > 0.05  # the rounded input still has spread
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    assert float(((mean.double() - want_mean) / want_mean).abs().max()) < rtol
    assert float(((var.double() - want_var) / want_var).abs().max()) < rtol


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reductions_many_tiles(layout, gen, monkeypatch):
    """Tiny tiles with ragged edges, several tiles per program (the last one short), and a
    merge that loops over more partial rows than it takes per step."""
    monkeypatch.setattr(bn, "_TILE", 16)
    monkeypatch.setattr(bn, "_ROW", 4)
    monkeypatch.setattr(bn, "_PROGRAMS", 8)
    monkeypatch.setattr(bn, "_MAX_TILES_PER_PROGRAM", 3)
    monkeypatch.setattr(bn, "_MERGE_P", 2)
    shape = (5, 3, 4, 5)
    y = _randn(shape, gen, torch.float32, layout, mean=-30.0)
    cfg = bn._config(y.numel(), bn._geometry(y))
    assert cfg.tiles_per_program > 1 and cfg.num_tiles % cfg.tiles_per_program != 0
    assert cfg.num_parts > cfg.merge_p
    mean, var = bn.channel_stats(y)
    y64 = y.double()
    testing.assert_close(mean, y64.mean(DIMS), torch.float32, 0, "mean")
    testing.assert_close(var, y64.var(DIMS, unbiased=False), torch.float32, 0, "var")
    g = _randn(shape, gen, torch.float32, layout)
    scale, shift, m = (_vec(3, gen, torch.float32) for _ in range(3))
    sum_gz, sum_gz_xc = bn.scale_shift_act_backward_reduce(g, y, scale, shift, m, 0.2)
    gz = _gz_ref(g.double(), (y64 - _ch(m)) * _ch(scale) + _ch(shift), 0.2)
    testing.assert_close(sum_gz, gz.sum(DIMS), torch.float32, 1, "sum_gz")
    testing.assert_close(sum_gz_xc, (gz * (y64 - _ch(m))).sum(DIMS), torch.float32, 1, "sum_gz_xc")


SLOPES = (0.2, 0.0)  # LeakyReLU, and ReLU


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_scale_shift_act_and_eval_backward(shape, layout, dtype, gen):
    """The forward, and its backward with scale and shift held constant (eval mode),
    against the float64 expression and its autograd."""
    y, g = _randn(shape, gen, dtype, layout), _randn(shape, gen, dtype, layout)
    scale, shift = _vec(shape[1], gen, dtype), _vec(shape[1], gen, dtype)
    for slope in SLOPES:
        out = bn.scale_shift_act(y, scale, shift, slope)
        dy = bn.scale_shift_act_backward(g, y, scale, shift, slope)
        assert out.dtype == dy.dtype == dtype and out.stride() == dy.stride() == y.stride()
        y64 = y.double().requires_grad_()
        want = F.leaky_relu(y64 * _ch(scale) + _ch(shift), slope)
        (want_dy,) = torch.autograd.grad(want, y64, g.double())
        testing.assert_close(out, want, dtype, 0, f"forward, slope {slope}")
        testing.assert_close(dy, want_dy, dtype, 1, f"dy, slope {slope}")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backward_reduce(shape, layout, dtype, gen):
    y, g = _randn(shape, gen, dtype, layout), _randn(shape, gen, dtype, layout)
    scale, shift, mean = (_vec(shape[1], gen, dtype) for _ in range(3))
    sum_gz, sum_gz_xc = bn.scale_shift_act_backward_reduce(g, y, scale, shift, mean, 0.2)
    assert sum_gz.dtype == sum_gz_xc.dtype == _acc(dtype)
    y64 = y.double()
    gz = _gz_ref(g.double(), (y64 - _ch(mean)) * _ch(scale) + _ch(shift), 0.2)
    testing.assert_close(sum_gz, gz.sum(DIMS), dtype, 1, "sum_gz")
    testing.assert_close(sum_gz_xc, (gz * (y64 - _ch(mean))).sum(DIMS), dtype, 1, "sum_gz_xc")


# Each N, C and H x W value once or more (the parts are checked on every shape above); F.batch_norm
# refuses one value per channel in training, so N*H*W = 1 is left out.
TRAIN_SHAPES = [(3, 17, 5, 7), (1, 3, 4, 4), (3, 1, 1, 1), (1, 17, 5, 7), (3, 3, 4, 4)]


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=["x".join(map(str, s)) for s in TRAIN_SHAPES])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_training_forward_backward(shape, layout, dtype, affine, gen):
    """The BN training step as the fused op composes it, against autograd of
    F.batch_norm(training=True) + F.leaky_relu in float64: out, dy, dgamma, dbeta."""
    eps, slope, c = 1e-5, 0.2, shape[1]
    y, g = _randn(shape, gen, dtype, layout), _randn(shape, gen, dtype, layout)
    gamma, beta = (_vec(c, gen, dtype), _vec(c, gen, dtype)) if affine else (None, None)

    mean, var = bn.channel_stats(y)
    invstd = torch.rsqrt(var + eps)
    gamma_invstd = gamma * invstd if affine else invstd
    scale = gamma_invstd
    shift = beta if affine else torch.zeros_like(mean)
    out = bn.scale_shift_act(y, scale, shift, slope, center=mean)
    sum_gz, sum_gz_xc = bn.scale_shift_act_backward_reduce(g, y, scale, shift, mean, slope)
    count = shape[0] * shape[2] * shape[3]
    dy = bn.bn_act_backward_apply(g, y, scale, shift, mean, invstd, gamma_invstd, sum_gz, sum_gz_xc, count, slope)
    assert dy.dtype == dtype and dy.stride() == y.stride()

    y64 = y.double().requires_grad_()
    w64 = gamma.double().requires_grad_() if affine else None
    b64 = beta.double().requires_grad_() if affine else None
    want = F.leaky_relu(F.batch_norm(y64, None, None, w64, b64, training=True, eps=eps), slope)
    testing.assert_close(out, want, dtype, 0, "forward")
    grads = torch.autograd.grad(want, [t for t in (y64, w64, b64) if t is not None], g.double())
    testing.assert_close(dy, grads[0], dtype, 1, "dy")
    if affine:
        testing.assert_close(sum_gz_xc * invstd, grads[1], dtype, 1, "dgamma")
        testing.assert_close(sum_gz, grads[2], dtype, 1, "dbeta")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, on inf - inf
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_nan_and_inf_propagate(layout, dtype, gen):
    shape = (3, 5, 4, 4)
    y = _randn(shape, gen, dtype, layout)
    y[0, 1, 2, 3] = float("nan")
    y[2, 4, 0, 0] = float("inf")
    y[1, 0, 3, 1] = float("-inf")
    g = _randn(shape, gen, dtype, layout)
    scale, shift = _vec(5, gen, dtype), _vec(5, gen, dtype)
    pre = y.double() * _ch(scale) + _ch(shift)
    out = bn.scale_shift_act(y, scale, shift, 0.2)
    testing.assert_close(out, F.leaky_relu(pre, 0.2), dtype, 0, "forward")
    assert torch.isnan(out[0, 1, 2, 3])
    pre.requires_grad_()
    (want,) = torch.autograd.grad(F.leaky_relu(pre, 0.2), pre, g.double())
    testing.assert_close(bn.scale_shift_act_backward(g, y, scale, shift, 0.2), want * _ch(scale), dtype, 1, "dy")
    mean, var = bn.channel_stats(y)
    assert torch.isnan(mean[1]) and torch.isnan(var[1]) and torch.isfinite(mean[2:4]).all()


def test_any_dense_layout_and_strided_input(gen):
    """A permuted dense layout keeps its strides; a strided view is read through a dense copy."""
    base = torch.randn(7, 3, 5, 2, generator=gen, dtype=torch.float64).to(torch.float32).to(DEVICE)
    y = base.permute(3, 1, 0, 2)  # (2, 3, 7, 5), dense, channels outermost but one
    scale, shift = _vec(3, gen, torch.float32), _vec(3, gen, torch.float32)
    out = bn.scale_shift_act(y, scale, shift, 0.1)
    assert out.stride() == y.stride()
    testing.assert_close(out, F.leaky_relu(y.double() * _ch(scale) + _ch(shift), 0.1), torch.float32, 0, "permuted")
    mean, var = bn.channel_stats(y)
    testing.assert_close(var, y.double().var(DIMS, unbiased=False), torch.float32, 0, "permuted var")
    z = torch.randn(3, 3, 10, 5, generator=gen).to(DEVICE)[:, :, ::2]  # not dense
    mean, var = bn.channel_stats(z)
    testing.assert_close(mean, z.double().mean(DIMS), torch.float32, 0, "strided mean")
    testing.assert_close(var, z.double().var(DIMS, unbiased=False), torch.float32, 0, "strided var")
    w = torch.randn(4, 3, 9, generator=gen).to(DEVICE)  # (N, C, L), as BatchNorm1d sees it
    mean, var = bn.channel_stats(w)
    testing.assert_close(var, w.double().var((0, 2), unbiased=False), torch.float32, 0, "(N, C, L) var")


def test_deterministic(gen):
    y = _randn((3, 17, 5, 7), gen, torch.float32, "channels_last")
    g = _randn((3, 17, 5, 7), gen, torch.float32, "channels_last")
    a, b = bn.channel_stats(y), bn.channel_stats(y)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    s = (_vec(17, gen, torch.float32) for _ in range(3))
    scale, shift, mean = s
    a = bn.scale_shift_act_backward_reduce(g, y, scale, shift, mean, 0.2)
    b = bn.scale_shift_act_backward_reduce(g, y, scale, shift, mean, 0.2)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_argument_errors(gen):
    y = _randn((2, 3, 4, 4), gen, torch.float32, "nchw")
    v = _vec(3, gen, torch.float32)
    with pytest.raises(ValueError, match="shift: expected shape \\(3,\\)"):
        bn.scale_shift_act(y, v, _vec(4, gen, torch.float32), 0.2)
    with pytest.raises(ValueError, match="scale: on meta"):
        bn.scale_shift_act(y, torch.empty(3, device="meta"), v, 0.2)
    with pytest.raises(ValueError, match="grad: expected y's shape"):
        bn.scale_shift_act_backward(y[:1], y, v, v, 0.2)
    with pytest.raises(ValueError, match="y: expected \\(N, C, \\*\\)"):
        bn.channel_stats(y.flatten())
    with pytest.raises(ValueError, match="count"):
        bn.bn_act_backward_apply(y, y, v, v, v, v, v, v, v, 0, 0.2)
