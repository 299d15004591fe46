"""``auto`` on CPU tensors: the ``aten`` backend where the table says so, with the reference's numbers.

Every op's own test module checks each backend (``aten`` included, through the
registry fixture) against the float64 reference to the second derivative.
Here: what a user who converts a model sees on a CPU, in float64 on fresh
random inputs: the converted PyTorch-examples DCGAN gives the unconverted
model's outputs, running statistics, gradients and gradient-penalty (double
backward) gradients, and ``auto`` agrees with the ``torch`` reference backend
for every op whose CPU choice is ``aten``.
"""

import copy

import pytest
import torch
from torch import nn

import ganfast
from ganfast import _backend
from ganfast.bench import dcgan_step
from ganfast.bench.timing import TimerConfig, time_cpu_interleaved

CPU = torch.device("cpu")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def _pair(size, gen):
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    G, D = dcgan_step.examples_dcgan(1, size, nz=8, ngf=4, ndf=4)
    G, D = G.double(), D.double()
    return (G, D), (ganfast.nn.convert(copy.deepcopy(G)), ganfast.nn.convert(copy.deepcopy(D)))


def test_examples_dcgan_shapes():
    for size, blocks in ((16, 1), (32, 2), (64, 3)):
        G, D = dcgan_step.examples_dcgan(3, size, nz=8, ngf=4, ndf=4)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in G) == blocks + 1
        assert sum(isinstance(m, nn.BatchNorm2d) for m in D) == blocks
        x = G(torch.randn(2, 8, 1, 1))
        assert x.shape == (2, 3, size, size)
        assert D(x).shape == (2,)
    with pytest.raises(ValueError, match="power of two"):
        dcgan_step.examples_dcgan(3, 48)


def test_converted_examples_dcgan_matches_torch_nn(gen):
    """Forward, running statistics, gradients and an R1 penalty's gradients: converted == unconverted."""
    (G, D), (Gf, Df) = _pair(16, gen)
    n_fused = sum(isinstance(m, (ganfast.nn.ConvBNLeakyReLU2d, ganfast.nn.ConvTransposeBNReLU2d))
                  for m in list(Gf.modules()) + list(Df.modules()))
    assert n_fused == 2 + 1
    assert _backend.resolve("conv_bn_act", None, CPU) == "aten"
    for _ in range(2):  # two steps: the running statistics must follow too
        z = torch.randn(6, 8, 1, 1, generator=gen, dtype=torch.float64)
        real = torch.rand(6, 1, 16, 16, generator=gen, dtype=torch.float64) * 2 - 1
        outs = []
        for g_net, d_net in ((G, D), (Gf, Df)):
            fake = g_net(z)
            x = real.clone().requires_grad_(True)
            score = d_net(x)
            # R1 (Mescheder et al. 2018, eq. 9): the penalty's gradient needs a double backward.
            (grad_x,) = torch.autograd.grad(score.sum(), x, create_graph=True)
            loss = d_net(fake).mean() - score.mean() + 5.0 * grad_x.square().sum((1, 2, 3)).mean()
            params = list(g_net.parameters()) + list(d_net.parameters())
            outs.append((fake.detach(), score.detach(), torch.autograd.grad(loss, params)))
        (fake_a, score_a, grads_a), (fake_b, score_b, grads_b) = outs
        torch.testing.assert_close(fake_b, fake_a, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(score_b, score_a, rtol=1e-10, atol=1e-12)
        for ga, gb in zip(grads_a, grads_b):
            torch.testing.assert_close(gb, ga, rtol=1e-9, atol=1e-11)
    # The converted model's state is the unconverted one's (loaded under the old keys, values equal).
    Gf2 = ganfast.nn.convert(copy.deepcopy(G))
    Gf2.load_state_dict(G.state_dict())
    assert Gf.state_dict().keys() == Gf2.state_dict().keys()
    for key, value in Gf.state_dict().items():
        assert torch.equal(value, Gf2.state_dict()[key]), key
    G.eval(), Gf.eval()
    z = torch.randn(3, 8, 1, 1, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(Gf(z), G(z), rtol=1e-10, atol=1e-12)


def test_wgan_gp_through_converted_discriminator(gen):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3) through a converted D on the CPU's auto path."""
    (_, D), (_, Df) = _pair(16, gen)
    real = torch.rand(4, 1, 16, 16, generator=gen, dtype=torch.float64)
    fake = torch.rand(4, 1, 16, 16, generator=gen, dtype=torch.float64)
    eps = torch.rand(4, 1, 1, 1, generator=gen, dtype=torch.float64)
    grads = []
    for net in (D, Df):
        x = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
        gp = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
        grads.append(torch.autograd.grad(gp, list(net.parameters())))
    for ga, gb in zip(*grads):
        torch.testing.assert_close(gb, ga, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("op", [row.name for row in _backend.OPS if row.cpu_order[0] == "aten"])
def test_cpu_table_rows_are_implemented(op):
    assert "aten" in _backend.implemented(op)
    assert _backend.resolve(op, "auto", CPU) == "aten"
    assert _backend.resolve(op, "auto", torch.device("cuda")) != "aten"  # never on CUDA: auto_order rules there


def test_aten_matches_torch_backend_for_each_fused_op(gen):
    """The aten backend (auto's CPU choice for most ops) against the reference backend, float64,
    outputs, gradients and second derivatives, op by op."""
    x = torch.randn(4, 6, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 6, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(6, 8, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    wt4 = torch.randn(6, 8, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    gamma = (torch.rand(8, generator=gen, dtype=torch.float64) + 0.5).requires_grad_(True)
    beta = torch.randn(8, generator=gen, dtype=torch.float64, requires_grad=True)
    b6 = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    T = torch.randn(6 * 25, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    styles = torch.randn(4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    fir = torch.randn(4, generator=gen, dtype=torch.float64)
    ops = ganfast.ops
    calls = {
        "bias_act": (lambda be: ops.bias_act(x, b6, act="tanh", gain=1.3, backend=be), (x, b6)),
        "conv_bn_act": (lambda be: ops.conv_bn_act(x, w, None, gamma, beta, padding=1, backend=be), (x, w, gamma)),
        "conv_transpose_bn_act": (lambda be: ops.conv_transpose_bn_act(x, wt4, None, gamma, beta, stride=2,
                                                                        padding=1, backend=be), (x, wt4, gamma)),
        "conv_transpose2d": (lambda be: ops.conv_transpose2d(x, wt, stride=2, padding=1, backend=be), (x, wt)),
        "minibatch_stddev": (lambda be: ops.minibatch_stddev(x, 2, backend=be), (x,)),
        "instance_norm_act": (lambda be: ops.instance_norm_act(x, b6, b6.flip(0), act="leaky_relu", backend=be),
                              (x, b6)),
        "minibatch_discrimination": (lambda be: ops.minibatch_discrimination(x.flatten(1), T, backend=be), (x, T)),
        "self_attention2d": (lambda be: ops.self_attention2d(q, k, v, scale=0.7, backend=be), (q, k, v)),
        "modulated_conv2d": (lambda be: ops.modulated_conv2d(x, w, styles, up=2, padding=1, backend=be), (x, w, styles)),
        # linear in x: squared first, so that the second derivative is not zero
        "upfirdn2d": (lambda be: ops.upfirdn2d(x.square(), fir, 2, 1, (2, 1, 2, 1), backend=be), (x,)),
    }
    for name, (fn, inputs) in calls.items():
        assert _backend.resolve(name, "auto", CPU) == _backend.spec(name).cpu_order[0], name
        outs = []
        for be in ("aten", "torch"):
            y = fn(be)
            g = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=y.dtype)
            first = torch.autograd.grad(y, inputs, g, create_graph=True)
            second = torch.autograd.grad(sum((t * t).sum() for t in first), inputs, allow_unused=True)
            outs.append((y.detach(), [t.detach() for t in first], second))
        (ya, fa, sa), (yt, ft, st) = outs
        torch.testing.assert_close(ya, yt, rtol=1e-10, atol=1e-12, msg=lambda m: f"{name}: {m}")
        for a, t in zip(fa, ft):
            torch.testing.assert_close(a, t, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name} grad: {m}")
        for a, t in zip(sa, st):
            if a is None or t is None:
                assert a is None and t is None or (a if t is None else t).abs().max() == 0, name
                continue
            torch.testing.assert_close(a, t, rtol=1e-8, atol=1e-10, msg=lambda m: f"{name} 2nd: {m}")


def test_time_cpu_interleaved_rotates_and_survives_a_failure():
    order = []

    def make(i):
        def f():
            order.append(i)
        return f

    def broken():
        order.append("x")
        raise RuntimeError("boom")

    cfg = TimerConfig(warmup=1, rep_ms=0.0, min_reps=3, max_reps=3, flush_l2=False)
    out = time_cpu_interleaved([make(0), broken, make(2)], cfg)
    assert isinstance(out[1], RuntimeError)
    assert len(out[0]) == len(out[2]) == 3
    timed = [i for i in order[order.index("x") + 2:]]  # after the warm-up calls of 0, x, 2
    assert timed == [0, 2, 2, 0, 0, 2]


def test_dcgan_step_runs_interleaved():
    res = dcgan_step.run("examples", size=16, batch=4, channels=1, device=CPU, rounds=2, warmup=1,
                         providers=("torch.nn", "ganfast"))
    assert set(res["rows"]) == {"torch.nn", "ganfast"}
    assert all(r["rounds"] == 2 and r["median_ms"] > 0 for r in res["rows"].values())
    assert res["speedup"]["torch.nn"] == 1.0
    assert "interleaved" in dcgan_step.format_result(res)
    res = dcgan_step.run("ganfast", size=16, batch=4, channels=1, device=CPU, rounds=1, warmup=0,
                         providers=("torch.nn", "ganfast"))
    assert set(res["rows"]) == {"torch.nn", "ganfast"}
    with pytest.raises(ValueError, match="model must be"):
        dcgan_step.build_steps("nope", 16, 4, 1, CPU, "none")
