"""self_attention2d and SelfAttention2d: every backend that can run here against the float64 reference.

Shapes are tiny: on a CPU the triton backend runs under the interpreter.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganfast
from ganfast import testing
from ganfast.kernels import self_attention2d as kernels
from ganfast.ops.self_attention2d import CUSTOM_OPS
from ganfast.ref import self_attention2d as ref

from conftest import HAS_CUDA

DEVICE = "cuda" if HAS_CUDA else "cpu"
# `backend` comes from the registry (conftest.py): every backend of this op.
OP = "self_attention2d"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _inputs(batch, d_qk, d_v, n, dtype, gen, spread=1.0):
    """q, k ``(batch, d_qk, n)`` and v ``(batch, d_v, n)``; ``spread`` sets how peaked the softmax is."""
    q, k = (torch.randn(batch, d_qk, n, generator=gen, dtype=torch.float64) * spread for _ in range(2))
    v = torch.randn(batch, d_v, n, generator=gen, dtype=torch.float64)
    return [t.to(dtype).to(DEVICE) for t in (q, k, v)]


def _fast(backend, scale=1.0):
    return lambda q, k, v: ganfast.ops.self_attention2d(q, k, v, scale=scale, backend=backend)


def _ref(scale=1.0):
    return lambda q, k, v: ref.self_attention2d(q, k, v, scale)


# -- against the reference --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(backend, dtype, gen):
    """A 5x7 map, d_qk = 3, d_v = 17: output, gradients and double backward (R1's)."""
    q, k, v = _inputs(2, 3, 17, 35, dtype, gen)
    testing.check_op(_fast(backend), _ref(), [q, k, v], differentiable=[0, 1, 2], order=2, generator=gen,
                     gradcheck=False)


def test_gradcheck_float64(backend, gen):
    """gradcheck and gradgradcheck in float64, with a non-unit scale (tiny: each input element costs
    interpreted launches)."""
    q, k, v = _inputs(1, 2, 2, 3, torch.float64, gen)
    testing.check_op(_fast(backend, 0.7), _ref(0.7), [q, k, v], differentiable=[0, 1, 2], order=2, generator=gen)


@pytest.mark.parametrize(
    "batch,d_qk,d_v,n",
    [(1, 24, 17, 3), (3, 1, 5, 1), (1, 40, 9, 70), (2, 8, 130, 20)],
    ids=["3-positions", "1-position", "dqk40-several-tiles", "dv130-several-channel-blocks"],
)
def test_odd_sizes(backend, batch, d_qk, d_v, n, gen):
    """Widths that are not powers of two, single positions, and more than one tile of positions or channels.

    With one position the softmax is identically 1: q and k get gradients
    that are exactly 0 in exact arithmetic and rounding noise in float32, which
    no relative tolerance can judge, so only v's gradient is compared there.
    """
    q, k, v = _inputs(batch, d_qk, d_v, n, torch.float32, gen, spread=d_qk ** -0.25)
    testing.check_op(_fast(backend), _ref(), [q, k, v], differentiable=[0, 1, 2] if n > 1 else [2], order=1,
                     generator=gen, gradcheck=False)


@pytest.mark.parametrize("scale", [0.125, 3.0])
def test_scale(backend, scale, gen):
    q, k, v = _inputs(2, 8, 6, 33, torch.float32, gen)
    testing.check_op(_fast(backend, scale), _ref(scale), [q, k, v], differentiable=[0, 1, 2], order=1,
                     generator=gen, gradcheck=False)


def test_huge_scores(backend, gen):
    """Scores of magnitude ~1000, where exp overflows even float64: the running max keeps it in range.

    float64, because no float32 softmax is accurate to 1e-5 there (a score's
    own rounding, 1000 * 6e-8, already moves p by 6e-5 relative).
    """
    q, k, v = _inputs(2, 8, 6, 33, torch.float64, gen, spread=10.0)
    assert float((q.transpose(1, 2) @ k).abs().max()) * 3 > 800
    testing.check_op(_fast(backend, 3.0), _ref(3.0), [q, k, v], differentiable=[0, 1, 2], order=1,
                     generator=gen, gradcheck=False)


@pytest.mark.parametrize("layout", ["channels_last-4d", "transposed", "expanded"])
def test_layouts_are_read_in_place(backend, layout, gen):
    """4-D channels_last maps, (B, N, d) tensors given as transposed views, and expanded tensors."""
    b, d, c, h, w = 2, 5, 7, 3, 5
    if layout == "channels_last-4d":
        q, k, v = (torch.randn(b, ch, h, w, generator=gen).to(DEVICE).to(memory_format=torch.channels_last)
                   for ch in (d, d, c))
    elif layout == "transposed":
        q, k, v = (torch.randn(b, h * w, ch, generator=gen).to(DEVICE).transpose(1, 2) for ch in (d, d, c))
    else:
        q, k, v = (torch.randn(1, ch, h * w, generator=gen).to(DEVICE).expand(b, ch, h * w) for ch in (d, d, c))
    y = ganfast.ops.self_attention2d(q, k, v, backend=backend)
    assert y.shape == v.shape and y.is_contiguous()

    def reference(q, k, v):  # 4-D maps are their flattened (B, C, H*W) views
        return ref.self_attention2d(q.flatten(2), k.flatten(2), v.flatten(2)).view(v.shape)

    testing.check_op(_fast(backend), reference, [q, k, v], differentiable=[0, 1, 2], order=1, generator=gen,
                     gradcheck=False)


def test_third_derivative(backend, gen):
    """Orders beyond two come from autograd through the reference (create_graph recomputation)."""
    q, k, v = _inputs(1, 2, 3, 4, torch.float64, gen)

    def third(fn):
        x = q.clone().requires_grad_(True)
        y = fn(x, k, v).sin().sum()
        (g1,) = torch.autograd.grad(y, x, create_graph=True)
        (g2,) = torch.autograd.grad(g1.sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sum(), x)
        return g3

    torch.testing.assert_close(third(_fast(backend)), third(_ref()), rtol=1e-10, atol=1e-12)


def test_reference_closed_forms(gen):
    """ref.self_attention2d_grad (what the kernels implement) is autograd of the reference, and the
    reference is SDPA with scale 1 (SAGAN's unscaled scores) on (B, N, d) views."""
    q, k, v = _inputs(2, 3, 5, 11, torch.float64, gen)
    qs, ks, vs = (t.clone().requires_grad_() for t in (q, k, v))
    for scale in (1.0, 0.3):
        y = ref.self_attention2d(qs, ks, vs, scale)
        g = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(DEVICE)
        want = torch.autograd.grad(y, (qs, ks, vs), g)
        for a, w in zip(ref.self_attention2d_grad(g, q, k, v, scale), want):
            torch.testing.assert_close(a, w, rtol=1e-12, atol=1e-12)
        sdpa = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=scale)
        torch.testing.assert_close(y, sdpa.transpose(1, 2), rtol=1e-12, atol=1e-12)
        out, lse = ref.self_attention2d_lse(q, k, v, scale)
        torch.testing.assert_close(out, y.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lse, torch.logsumexp(scale * q.transpose(1, 2) @ k, -1), rtol=1e-12, atol=1e-12)


def test_triton_backward_is_deterministic(gen):
    """No atomics: two backward passes agree bit for bit."""
    q, k, v = (t.requires_grad_() for t in _inputs(2, 4, 20, 70, torch.float32, gen))
    g = torch.randn(2, 20, 70, generator=gen).to(DEVICE)
    runs = [torch.autograd.grad(ganfast.ops.self_attention2d(q, k, v, backend="triton"), (q, k, v), g)
            for _ in range(2)]
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_64bit_offsets_take_the_smaller_tiles(dtype, gen, monkeypatch):
    """Past 2^31 offsets the launch takes _config(index64=True) (smaller tiles, no spills: kernels/aot.py) and
    64-bit indexing; forced here on small tensors, values and gradients still match the reference."""
    n, d_qk, d_v = 70, 40, 33
    small, big = kernels._config(n, d_qk, d_v, dtype, index64=True), kernels._config(n, d_qk, d_v, dtype)
    assert small["BLOCK_M"] <= big["BLOCK_M"] and small["BLOCK_C"] <= big["BLOCK_C"]
    assert small["BLOCK_M"] == max(16, big["BLOCK_M"] // 2)
    monkeypatch.setattr(kernels, "_index64", lambda cfg, *tensors: True)
    q, k, v = _inputs(2, d_qk, d_v, n, dtype, gen)
    testing.check_op(_fast("triton"), _ref(), [q, k, v], differentiable=[0, 1, 2], order=1, generator=gen,
                     gradcheck=False)


def test_block_config():
    """Register tiles cover d_qk (padded to a power of two, masked), never the whole d_v, and are >= 16 for tl.dot."""
    for n, d_qk, d_v, dtype in [(3, 3, 17, torch.float32), (16384, 40, 512, torch.bfloat16),
                                (4096, 24, 256, torch.float16), (35, 64, 5, torch.float64)]:
        cfg = kernels._config(n, d_qk, d_v, dtype)
        assert cfg["BLOCK_D"] >= d_qk and cfg["BLOCK_D"] & (cfg["BLOCK_D"] - 1) == 0
        assert min(cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_D"], cfg["BLOCK_C"]) >= 16
        assert cfg["BLOCK_C"] <= 128 and cfg["BLOCK_M"] <= 64


# -- memory ---------------------------------------------------------------------------


def _allocations(fn):
    """Sizes in bytes of every CPU tensor allocation made while ``fn`` runs (torch's allocator)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]


@pytest.mark.skipif(HAS_CUDA, reason="measures the CPU allocator; on a GPU see the bench's memory column")
def test_memory_is_linear_in_positions(gen):
    """Forward + backward on the triton path allocate O(B N (d_qk + d_v)), never an N x N buffer.

    By construction the host functions allocate only the outputs, the (B, N)
    lse and delta, and the three gradients; this measures it with torch's
    CPU allocator at 8x8 and 16x16 maps (N = 64 and 256): the largest
    allocation grows 4x with N (the reference's grows 16x: its N x N matrix).
    """
    d_qk, d_v = 4, 8
    largest = {}
    for side in (8, 16):
        n = side * side
        q, k, v = _inputs(1, d_qk, d_v, n, torch.float32, gen)
        g = torch.randn(1, d_v, n, generator=gen)
        for backend in ("torch", "triton"):
            def step():
                leaves = [t.clone().requires_grad_() for t in (q, k, v)]
                torch.autograd.grad(ganfast.ops.self_attention2d(*leaves, backend=backend), leaves, g)

            largest[backend, n] = max(_allocations(step))
        # Every tensor of the triton path is at most one float per position and channel of q, k, v and dO.
        assert largest["triton", n] <= 4 * n * (2 * d_qk + 2 * d_v + 1) < 4 * n * n
        assert largest["torch", n] >= 4 * n * n  # the measurement does see the reference's N x N matrix
    assert largest["triton", 256] <= 4 * largest["triton", 64]
    assert largest["torch", 256] >= 16 * largest["torch", 64]


@pytest.mark.gpu
def test_memory_128x128_batch8_on_gpu():
    """The issue's case: a 128x128 map (N = 16384) at batch 8, where one bf16 N x N matrix is 4 GiB.

    Forward + backward on the triton path may use only what it returns (out,
    dq, dk, dv) and the two (B, N) float32 vectors, with allocator slack.
    """
    b, d, c, n = 8, 32, 256, 128 * 128
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k = (torch.randn(b, d, n, device="cuda", generator=gen).mul(d ** -0.25).bfloat16() for _ in range(2))
    v = torch.randn(b, c, n, device="cuda", generator=gen).bfloat16()
    g = torch.randn(b, c, n, device="cuda", generator=gen).bfloat16()
    leaves = [t.requires_grad_() for t in (q, k, v)]
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    torch.autograd.grad(ganfast.ops.self_attention2d(*leaves, backend="triton"), leaves, g)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    returned = 2 * b * n * (2 * d + 2 * c) + 2 * 4 * b * n
    assert peak <= 2 * returned < b * n * n * 2 // 16


# -- registration ---------------------------------------------------------------------


@pytest.mark.registered_op
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(backend, dtype, gen):
    op, backward_op = CUSTOM_OPS
    q, k, v = _inputs(2, 3, 5, 7, dtype, gen)
    torch.library.opcheck(op, (q.clone().requires_grad_(), k.clone().requires_grad_(),
                               v.clone().requires_grad_(), 1.0, backend))
    out, lse = op(q, k, v, 0.5, backend)
    g = torch.randn(out.shape, generator=gen).to(dtype).to(DEVICE)
    torch.library.opcheck(backward_op, (g, q, k, v, out, lse, 0.5, backend))


def test_backward_op_has_no_second_derivative(gen):
    _, backward_op = CUSTOM_OPS
    q, k, v = _inputs(1, 2, 3, 4, torch.float64, gen)
    out, lse = CUSTOM_OPS[0](q, k, v, 1.0, "torch")
    g = torch.randn(out.shape, dtype=torch.float64, generator=gen).requires_grad_()
    dq, _, _ = backward_op(g, q, k, v, out, lse, 1.0, "torch")
    with pytest.raises(NotImplementedError, match="first derivatives only"):
        dq.sum().backward()


def test_torch_compile_fullgraph(gen):
    torch._dynamo.reset()
    q, k, v = (t.requires_grad_() for t in _inputs(2, 3, 5, 12, torch.float32, gen))

    def f(q, k, v):
        return ganfast.ops.self_attention2d(q.view(2, 3, 3, 4), k.view(2, 3, 3, 4), v.view(2, 5, 3, 4),
                                            backend="triton").square().sum()

    got = torch.compile(f, fullgraph=True)(q, k, v)
    got_grads = torch.autograd.grad(got, (q, k, v))
    want = f(q, k, v)
    want_grads = torch.autograd.grad(want, (q, k, v))
    torch.testing.assert_close(got, want)
    for a, w in zip(got_grads, want_grads):
        torch.testing.assert_close(a, w)


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(q="q"), TypeError, "q must be a torch.Tensor"),
        (dict(k=torch.randint(0, 3, (2, 3, 6))), TypeError, "k must be float16"),
        (dict(v=torch.randn(2, 4, 6).double()), TypeError, "v must have q's dtype"),
        (dict(q=torch.randn(3, 6), k=torch.randn(3, 6)), ValueError, "q must be 3-D"),
        (dict(k=torch.randn(2, 4, 6)), ValueError, "k must have q's shape (2, 3, 6)"),
        (dict(v=torch.randn(2, 4, 5)), ValueError, "v must have shape (2, 'd_v', 6)"),
        (dict(v=torch.randn(1, 4, 6)), ValueError, "v must have shape"),
        (dict(v=torch.randn(2, 4, 2, 3)), ValueError, "v must have q's number of dimensions"),
        (dict(v=torch.randn(2, 4, 6, device="meta")), ValueError, "v must be on the same device"),
        (dict(q=torch.randn(2, 3, 0), k=torch.randn(2, 3, 0)), ValueError, "q must not be empty"),
        (dict(v=torch.randn(2, 0, 6)), ValueError, "v must not be empty"),
        (dict(scale=float("inf")), ValueError, "scale must be a finite"),
        (dict(scale="1"), TypeError, "scale must be a float"),
        (dict(backend="flash"), ValueError, "backend must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    args = dict(q=torch.randn(2, 3, 6), k=torch.randn(2, 3, 6), v=torch.randn(2, 4, 6))
    args.update(kwargs)
    with pytest.raises(exc) as info:
        ganfast.ops.self_attention2d(args.pop("q"), args.pop("k"), args.pop("v"), **args)
    assert words in str(info.value)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised where no GPU is present")
def test_cuda_backend_is_unavailable():
    with pytest.raises(ganfast.BackendUnavailable, match="self_attention2d"):
        ganfast.ops.self_attention2d(torch.randn(1, 2, 3), torch.randn(1, 2, 3), torch.randn(1, 2, 3),
                                     backend="cuda")


# -- the module -------------------------------------------------------------------------


class PaperSAGANBlock(nn.Module):
    """Zhang et al. 2019, section 3, written out in plain torch: f (key), g (query), h (value) 1x1
    convolutions, beta_{j,i} = softmax_i(s_ij) with s_ij = f(x_i)^T g(x_j), o_j = sum_i beta_{j,i} h(x_i),
    y = x + gamma * o."""

    def __init__(self, channels, reduction):
        super().__init__()
        self.f = nn.Conv2d(channels, channels // reduction, 1)
        self.g = nn.Conv2d(channels, channels // reduction, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, hh, ww = x.shape
        f, g, h = self.f(x).flatten(2), self.g(x).flatten(2), self.h(x).flatten(2)
        s = torch.einsum("bci,bcj->bij", f, g)  # s[i, j] = f(x_i) . g(x_j)
        beta = torch.softmax(s, dim=1)  # normalised over i, for each output position j
        o = torch.einsum("bij,bci->bcj", beta, h)
        return x + self.gamma * o.view(b, c, hh, ww)


def _paper_twin(m, reduction):
    """The paper's block holding ``m``'s parameters (query = g, key = f, value = h)."""
    paper = PaperSAGANBlock(m.channels, reduction).to(m.gamma.dtype).to(DEVICE)
    paper.g.load_state_dict(m.query.state_dict())
    paper.f.load_state_dict(m.key.state_dict())
    paper.h.load_state_dict(m.value.state_dict())
    paper.gamma.data.copy_(m.gamma.data)
    return paper


def test_module_matches_the_paper(backend, gen):
    """Forward and every parameter's gradient, including an R1 penalty (double backward), in float64."""
    m = ganfast.nn.SelfAttention2d(16, reduction=8, backend=backend).double().to(DEVICE)
    assert set(m.state_dict()) == {"gamma", "query.weight", "query.bias", "key.weight", "key.bias",
                                   "value.weight", "value.bias"}
    assert m.query.weight.shape == (2, 16, 1, 1) and m.value.weight.shape == (16, 16, 1, 1)
    assert m.gamma.shape == (1,) and float(m.gamma.detach()) == 0.0
    x = torch.randn(2, 16, 5, 7, generator=gen, dtype=torch.float64).to(DEVICE)
    torch.testing.assert_close(m(x), x)  # gamma starts at 0: the identity
    with torch.no_grad():
        m.gamma.fill_(0.7)
    paper = _paper_twin(m, 8)

    def r1_step(model, params):
        xr = x.clone().requires_grad_()
        y = model(xr)
        score = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype, device=DEVICE).view_as(y)).sum()
        (gx,) = torch.autograd.grad(score, xr, create_graph=True)
        loss = score + gx.square().sum()
        return [y.detach()] + list(torch.autograd.grad(loss, params))

    ours = r1_step(m, [m.query.weight, m.query.bias, m.key.weight, m.key.bias, m.value.weight, m.value.bias,
                       m.gamma])
    theirs = r1_step(paper, [paper.g.weight, paper.g.bias, paper.f.weight, paper.f.bias, paper.h.weight,
                             paper.h.bias, paper.gamma])
    for a, w in zip(ours, theirs):
        torch.testing.assert_close(a, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_module_dtypes_and_channels_last(backend, dtype, gen):
    """The module in its parameters' dtype on a channels_last map, against the paper's block in float64
    on the same (rounded) parameters and input.  (bfloat16 is covered op by op above: through three
    convolutions and the residual sum its roundings exceed a per-element 1e-2 where x + gamma * o cancels.)"""
    m = ganfast.nn.SelfAttention2d(24, reduction=8, backend=backend).to(dtype).to(DEVICE)
    with torch.no_grad():
        m.gamma.fill_(1.5)
    x = torch.randn(1, 24, 3, 5, generator=gen).to(dtype).to(DEVICE).to(memory_format=torch.channels_last)
    got = m(x)
    assert got.dtype == dtype and got.shape == x.shape
    want = _paper_twin(copy.deepcopy(m).double(), 8)(x.double())
    testing.assert_close(got, want, dtype, 0, "module")


def test_module_rejects_bad_inputs():
    m = ganfast.nn.SelfAttention2d(8, reduction=4)
    assert m.inner_channels == 2 and "reduction=4" in repr(m)
    for x, exc, words in [
        (torch.randn(2, 8, 6), ValueError, "x must be 4-D"),
        (torch.randn(2, 6, 3, 3), ValueError, "x must have 8 channels"),
        (torch.randint(0, 2, (2, 8, 3, 3)), TypeError, "x must be float16"),
        (torch.randn(2, 8, 0, 3), ValueError, "x must not be empty"),
        ("x", TypeError, "x must be a torch.Tensor"),
    ]:
        with pytest.raises(exc, match=words):
            m(x)
    with pytest.raises(ValueError, match="channels must be a positive int"):
        ganfast.nn.SelfAttention2d(0)
    with pytest.raises(ValueError, match="reduction must be a positive int"):
        ganfast.nn.SelfAttention2d(8, reduction=2.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        ganfast.nn.SelfAttention2d(8, backend="flash")
