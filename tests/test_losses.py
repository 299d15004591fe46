"""ganfast.losses: every loss against its formula in float64, every regulariser
against a closed form or a hand-rolled double backward, and the penalties
through the fused discriminator layers against the torch.nn model."""

import copy
import io
import math

import pytest
import torch
from torch import nn

import ganfast
import ganfast.losses as L
from ganfast.testing import assert_close

F64 = torch.float64
KINDS = ["minimax", "non-saturating", "wasserstein", "least-squares", "hinge"]


# --- independent float64 formulas --------------------------------------------
# Written from the papers with log(sigmoid) on moderate logits, not with the
# softplus identities the module uses.

def ref_d(kind, r, f, a=1.0, b=0.0):
    s = torch.sigmoid
    if kind in ("minimax", "non-saturating"):
        def bce(x, t):
            return -(t * torch.log(s(x)) + (1 - t) * torch.log(1 - s(x))).mean()
        return bce(r, a) + bce(f, b)
    if kind == "wasserstein":
        return f.mean() - r.mean()
    if kind == "least-squares":
        return 0.5 * ((r - a) ** 2).mean() + 0.5 * ((f - b) ** 2).mean()
    if kind == "hinge":
        return torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean()
    raise AssertionError(kind)


def ref_g(kind, f):
    s = torch.sigmoid
    if kind == "minimax":
        return torch.log(1 - s(f)).mean()
    if kind == "non-saturating":
        return -torch.log(s(f)).mean()
    if kind in ("wasserstein", "hinge"):
        return -f.mean()
    if kind == "least-squares":
        return 0.5 * ((f - 1) ** 2).mean()
    raise AssertionError(kind)


def logits(gen, n, dtype=F64):
    return (2 * torch.randn(n, generator=gen, dtype=F64)).to(dtype)


# --- adversarial losses --------------------------------------------------------

def test_names_and_describe():
    assert L.names() == KINDS
    described = L.describe()
    names = [n for n, _ in described]
    assert names[:5] == KINDS
    for reg in ("gradient-penalty", "r1", "r2", "instance-noise", "feature-matching", "historical-averaging"):
        assert reg in names
    assert len(set(names)) == len(names)
    for name, text in described:
        assert isinstance(text, str) and "\n" not in text and any(c.isdigit() for c in text), name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(7,), (7, 1), (7, 1, 3, 5)])  # last: a PatchGAN map per sample
def test_losses_match_formula_float64(kind, shape, gen):
    n = math.prod(shape)
    r, f = logits(gen, n).reshape(shape), logits(gen, n).reshape(shape)
    d = L.discriminator_loss(kind, r, f)
    g = L.generator_loss(kind, f)
    assert d.shape == () and g.shape == () and d.dtype == F64 and g.dtype == F64
    assert_close(d, ref_d(kind, r.flatten(), f.flatten()), F64, 0, f"{kind} D")
    assert_close(g, ref_g(kind, f.flatten()), F64, 0, f"{kind} G")
    # real_out is accepted (and ignored) by the generator loss
    assert_close(L.generator_loss(kind, f, real_out=r), g, F64, 0, f"{kind} G with real_out")


@pytest.mark.parametrize("kind", KINDS)
def test_losses_float32_match_float64(kind, gen):
    r, f = logits(gen, 33), logits(gen, 29)  # batch sizes may differ
    d = L.discriminator_loss(kind, r.float(), f.float())
    g = L.generator_loss(kind, f.float())
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert_close(d, ref_d(kind, r, f), torch.float32, 0, f"{kind} D")
    assert_close(g, ref_g(kind, f), torch.float32, 0, f"{kind} G")


def test_closed_forms_at_hand_picked_values():
    z = torch.zeros(4, dtype=F64)
    ln2 = math.log(2.0)
    # D(x) = 1/2 everywhere: each cross-entropy is log 2.
    assert L.discriminator_loss("minimax", z, z).item() == pytest.approx(2 * ln2, rel=1e-15)
    assert L.generator_loss("minimax", z).item() == pytest.approx(-ln2, rel=1e-15)
    assert L.generator_loss("non-saturating", z).item() == pytest.approx(ln2, rel=1e-15)
    r = torch.tensor([2.0, 0.5, -1.0], dtype=F64)
    f = torch.tensor([-3.0, 0.0, 1.5], dtype=F64)
    assert L.discriminator_loss("wasserstein", r, f).item() == pytest.approx(-0.5 - 0.5)  # mean f - mean r
    assert L.generator_loss("wasserstein", f).item() == pytest.approx(0.5)
    # hinge: relu(1 - r) = (0, .5, 2), relu(1 + f) = (0, 1, 2.5)
    assert L.discriminator_loss("hinge", r, f).item() == pytest.approx(2.5 / 3 + 3.5 / 3)
    # least squares: (r - 1)^2 = (1, .25, 4), f^2 = (9, 0, 2.25), (f - 1)^2 = (16, 1, .25)
    assert L.discriminator_loss("least-squares", r, f).item() == pytest.approx(0.5 * 5.25 / 3 + 0.5 * 11.25 / 3)
    assert L.generator_loss("least-squares", f).item() == pytest.approx(0.5 * 17.25 / 3)


@pytest.mark.parametrize("kind", KINDS)
def test_losses_gradcheck(kind, gen):
    r = logits(gen, 5).requires_grad_(True)
    f = logits(gen, 5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: L.discriminator_loss(kind, a, b), (r, f))
    assert torch.autograd.gradcheck(lambda b: L.generator_loss(kind, b), (f,))
    if kind in ("minimax", "non-saturating", "least-squares"):
        assert torch.autograd.gradcheck(
            lambda a, b: L.discriminator_loss(kind, a, b, real_label=0.9, fake_label=0.1), (r, f))


@pytest.mark.parametrize("kind", ["minimax", "non-saturating", "least-squares"])
def test_label_smoothing(kind, gen):
    r, f = logits(gen, 9), logits(gen, 9)
    got = L.discriminator_loss(kind, r, f, real_label=0.9)
    assert_close(got, ref_d(kind, r, f, a=0.9), F64, 0, f"{kind} real_label=0.9")
    got = L.discriminator_loss(kind, r, f, real_label=0.9, fake_label=0.05)
    assert_close(got, ref_d(kind, r, f, a=0.9, b=0.05), F64, 0, f"{kind} both labels")
    assert not torch.equal(got, L.discriminator_loss(kind, r, f))


@pytest.mark.parametrize("kind", ["wasserstein", "hinge"])
def test_labels_refused_without_meaning(kind):
    x = torch.randn(4)
    with pytest.raises(ValueError, match="real_label"):
        L.discriminator_loss(kind, x, x, real_label=0.9)
    with pytest.raises(ValueError, match="fake_label"):
        L.discriminator_loss(kind, x, x, fake_label=0.1)
    L.discriminator_loss(kind, x, x, real_label=1.0, fake_label=0.0)  # the defaults are fine


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_inputs_return_float32(kind, gen):
    r, f = logits(gen, 16, torch.bfloat16).requires_grad_(True), logits(gen, 16, torch.bfloat16)
    d = L.discriminator_loss(kind, r, f)
    g = L.generator_loss(kind, f)
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    # same values as the float64 formula on the bf16-rounded inputs, to float32 accuracy
    assert_close(d, ref_d(kind, r.detach().double(), f.double()), torch.float32, 0, f"{kind} D bf16")
    assert_close(g, ref_g(kind, f.double()), torch.float32, 0, f"{kind} G bf16")
    d.backward()
    assert r.grad.dtype == torch.bfloat16


def test_large_logits_stay_finite():
    big = torch.tensor([-200.0, 200.0])
    for kind in ("minimax", "non-saturating"):
        d = L.discriminator_loss(kind, big, big, real_label=0.9)
        g = L.generator_loss(kind, big)
        assert torch.isfinite(d) and torch.isfinite(g)
    # softplus(200) = 200: D loss = mean(softplus(-r)) + mean(softplus(f)) = (200 + 0)/2 + (0 + 200)/2
    assert L.discriminator_loss("minimax", big, big).item() == pytest.approx(200.0)
    assert L.generator_loss("non-saturating", big).item() == pytest.approx(100.0)
    x = big.clone().requires_grad_(True)
    L.generator_loss("non-saturating", x).backward()
    assert torch.isfinite(x.grad).all()


def test_loss_argument_errors():
    x = torch.randn(4)
    with pytest.raises(ValueError, match="'minimax'.*'hinge'"):
        L.discriminator_loss("wgan", x, x)
    with pytest.raises(ValueError, match="kind must be one of"):
        L.generator_loss(None, x)
    with pytest.raises(TypeError, match="real_out must be a torch.Tensor"):
        L.discriminator_loss("hinge", [1.0, 2.0], x)
    with pytest.raises(TypeError, match="fake_out must be a floating-point"):
        L.discriminator_loss("hinge", x, torch.ones(4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"real_out is an empty batch"):
        L.discriminator_loss("hinge", torch.empty(0), x)
    with pytest.raises(ValueError, match=r"fake_out must have shape \(B, \.\.\.\).*0-d"):
        L.generator_loss("hinge", torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"real_out must have shape \(B, \.\.\.\)"):
        L.discriminator_loss("hinge", torch.tensor(1.0), x)
    with pytest.raises(ValueError, match="real_label.*\\[0, 1\\]"):
        L.discriminator_loss("minimax", x, x, real_label=1.5)
    with pytest.raises(TypeError, match="fake_label must be a float"):
        L.discriminator_loss("minimax", x, x, fake_label="0")
    with pytest.raises(ValueError, match="real_label must be finite"):
        L.discriminator_loss("least-squares", x, x, real_label=float("nan"))


# --- gradient penalties ----------------------------------------------------------

def mlp_params(gen, d_in=6, hidden=5):
    shapes = [(hidden, d_in), (hidden,), (1, hidden), (1,)]
    return [(0.7 * torch.randn(s, generator=gen, dtype=F64)).requires_grad_(True) for s in shapes]


def mlp(params, x):
    w1, b1, w2, b2 = params
    # tanh: smooth, so finite differences of the double backward are accurate
    return torch.tanh(x.flatten(1) @ w1.t() + b1) @ w2.t() + b2


def param_grads(penalty, params):
    # The output bias shifts D but not its input gradient: None, which assert_close reads as zeros.
    return torch.autograd.grad(penalty, params, allow_unused=True)


def seeded(seed=7):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def per_sample_grads(critic, x):
    """Each sample's input gradient from its own backward pass (no batch-sum trick)."""
    rows = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1].detach().requires_grad_(True)
        (gi,) = torch.autograd.grad(critic(xi).sum(), xi, create_graph=True)
        rows.append(gi.reshape(-1))
    return torch.stack(rows)


@pytest.mark.parametrize("shape", [(5, 6), (3, 2, 3, 2)])
@pytest.mark.parametrize("center", [1.0, 0.0])
def test_gradient_penalty_linear_critic_closed_form(shape, center, gen):
    real = torch.randn(shape, generator=gen, dtype=F64)
    fake = torch.randn(shape, generator=gen, dtype=F64)
    w = torch.randn(shape[1:], generator=gen, dtype=F64)
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731  grad_x <w, x> = w for every sample
    got = L.gradient_penalty(critic, real, fake, center=center, generator=seeded())
    want = (w.norm() - center) ** 2
    assert got.dtype == F64 and got.shape == ()
    assert_close(got, want, F64, 0, "WGAN-GP, linear critic")
    got = L.gradient_penalty(lambda x: critic(x)[:, None], real.float(), fake.float())
    assert got.dtype == torch.float32
    assert_close(got, (w.norm() - 1) ** 2, torch.float32, 0, "WGAN-GP, linear critic, float32, (B, 1)")


def test_penalties_of_a_patch_critic_are_those_of_its_per_sample_sum(gen):
    """A critic with a map of outputs per sample (PatchGAN) is penalised on each sample's summed score."""
    x = torch.randn(4, 3, 6, 6, generator=gen, dtype=F64)
    y = torch.randn(4, 3, 6, 6, generator=gen, dtype=F64)
    w = torch.randn(2, 3, 3, 3, generator=gen, dtype=F64)
    patch = lambda t: torch.nn.functional.conv2d(t, w, stride=2).square()  # noqa: E731  (B, 2, 2, 2)
    summed = lambda t: patch(t).flatten(1).sum(1)  # noqa: E731
    assert patch(x).shape == (4, 2, 2, 2)
    assert_close(L.r1_penalty(patch, x), L.r1_penalty(summed, x), F64, 0, "R1, patch critic")
    assert_close(L.gradient_penalty(patch, x, y, generator=seeded()),
                 L.gradient_penalty(summed, x, y, generator=seeded()), F64, 0, "WGAN-GP, patch critic")


def test_r1_r2_linear_critic_closed_form(gen):
    x = torch.randn(4, 3, 2, generator=gen, dtype=F64)
    w = torch.randn(3, 2, generator=gen, dtype=F64)
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731
    assert_close(L.r1_penalty(critic, x), w.square().sum(), F64, 0, "R1, linear critic")
    assert_close(L.r2_penalty(critic, x), w.square().sum(), F64, 0, "R2, linear critic")


def test_gradient_penalty_matches_hand_rolled_double_backward(gen):
    params = mlp_params(gen)
    real = torch.randn(4, 6, generator=gen, dtype=F64)
    fake = torch.randn(4, 6, generator=gen, dtype=F64)
    critic = lambda x: mlp(params, x)  # noqa: E731
    got = L.gradient_penalty(critic, real, fake, generator=seeded())
    gp_grads = param_grads(got, params)

    eps = torch.rand(4, generator=seeded(), dtype=torch.float32).to(F64)[:, None]
    x_hat = eps * real + (1 - eps) * fake
    g = per_sample_grads(critic, x_hat)
    want = ((g.square().sum(1).sqrt() - 1) ** 2).mean()
    want_grads = param_grads(want, params)
    assert_close(got, want, F64, 0, "WGAN-GP on an MLP")
    for k, (a, b) in enumerate(zip(gp_grads, want_grads)):
        assert_close(a, b, F64, 2, f"WGAN-GP parameter gradient {k}")


@pytest.mark.parametrize("which", ["r1", "r2"])
def test_r1_r2_match_hand_rolled_double_backward(which, gen):
    params = mlp_params(gen)
    x = torch.randn(5, 6, generator=gen, dtype=F64)
    critic = lambda x: mlp(params, x)  # noqa: E731
    fn = L.r1_penalty if which == "r1" else L.r2_penalty
    got = fn(critic, x)
    want = per_sample_grads(critic, x).square().sum(1).mean()
    assert_close(got, want, F64, 0, which)
    for k, (a, b) in enumerate(zip(param_grads(got, params), param_grads(want, params))):
        assert_close(a, b, F64, 2, f"{which} parameter gradient {k}")


def test_penalties_gradcheck_wrt_critic_parameters(gen):
    params = mlp_params(gen, d_in=3, hidden=3)
    real = torch.randn(3, 3, generator=gen, dtype=F64)
    fake = torch.randn(3, 3, generator=gen, dtype=F64)

    def gp(*ps):
        return L.gradient_penalty(lambda x: mlp(ps, x), real, fake, generator=seeded())

    def r1(*ps):
        return L.r1_penalty(lambda x: mlp(ps, x), real)

    assert torch.autograd.gradcheck(gp, tuple(params))
    assert torch.autograd.gradcheck(r1, tuple(params))


def test_penalties_detach_their_inputs(gen):
    params = mlp_params(gen)
    real = torch.randn(3, 6, generator=gen, dtype=F64, requires_grad=True)
    fake = torch.randn(3, 6, generator=gen, dtype=F64, requires_grad=True)
    critic = lambda x: mlp(params, x)  # noqa: E731
    (L.gradient_penalty(critic, real, fake) + L.r1_penalty(critic, real) + L.r2_penalty(critic, fake)).backward()
    assert real.grad is None and fake.grad is None
    # the output bias shifts D but not its input gradient: no gradient from a penalty
    assert all(p.grad is not None for p in params[:3]) and params[3].grad is None


def test_gradient_penalty_generator_reproducible(gen):
    params = mlp_params(gen)
    real = torch.randn(4, 6, generator=gen, dtype=F64)
    fake = torch.randn(4, 6, generator=gen, dtype=F64)
    critic = lambda x: mlp(params, x)  # noqa: E731
    a = L.gradient_penalty(critic, real, fake, generator=seeded(3))
    b = L.gradient_penalty(critic, real, fake, generator=seeded(3))
    c = L.gradient_penalty(critic, real, fake, generator=seeded(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_grad_scaler_path_equals_unscaled(gen):
    try:
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    except (TypeError, RuntimeError, AssertionError) as err:  # pragma: no cover - older torch
        pytest.skip(f"this torch has no CPU GradScaler: {err}")
    if not scaler.is_enabled():  # pragma: no cover
        pytest.skip("the CPU GradScaler is disabled in this torch")
    params = [p.detach().float().requires_grad_(True) for p in mlp_params(gen)]
    real = torch.randn(4, 6, generator=gen)
    fake = torch.randn(4, 6, generator=gen)
    critic = lambda x: mlp(params, x)  # noqa: E731
    cases = [
        (lambda s: L.gradient_penalty(critic, real, fake, generator=seeded(), scaler=s), "WGAN-GP"),
        (lambda s: L.r1_penalty(critic, real, scaler=s), "R1"),
        (lambda s: L.r2_penalty(critic, fake, scaler=s), "R2"),
    ]
    for fn, what in cases:
        plain, scaled = fn(None), fn(scaler)
        assert scaled.dtype == torch.float32
        # the scale is a power of two: scaling and unscaling are exact
        assert_close(scaled, plain, torch.float32, 0, f"{what} with GradScaler")
        for k, (a, b) in enumerate(zip(param_grads(scaled, params), param_grads(plain, params))):
            assert_close(a, b, torch.float32, 2, f"{what} with GradScaler, parameter gradient {k}")
    assert scaler.get_scale() == 2.0 ** 10  # the penalty does not step or update the scaler
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    assert torch.equal(L.r1_penalty(critic, real, scaler=disabled), L.r1_penalty(critic, real))


@pytest.mark.parametrize("batch", [1, 2, 7, 64, 512, 4096])
def test_fp16_penalties_are_finite_at_the_default_scale(batch):
    """GradScaler's default initial scale 65536 is above float16's largest value (65504): seeding each critic
    output with the full scale made every fp16 penalty inf/NaN (found on this small MLP critic). The seed is
    capped; the penalties match float64 for every batch size, in a float16 critic and under fp16 autocast."""
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.get_scale() == 65536.0
    gen = torch.Generator().manual_seed(batch)
    torch.manual_seed(batch)
    net = nn.Sequential(nn.Linear(48, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    real = torch.randn(batch, 48, generator=gen)
    fake = torch.randn(batch, 48, generator=gen)
    real, fake = real.half().float(), fake.half().float()  # representable in float16
    net.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    net64 = copy.deepcopy(net).double()
    want = (L.gradient_penalty(net64, real.double(), fake.double(), generator=seeded()),
            L.r1_penalty(net64, real.double()), L.r2_penalty(net64, fake.double()))
    half = copy.deepcopy(net).half()
    got_half = (L.gradient_penalty(half, real.half(), fake.half(), generator=seeded(), scaler=scaler),
                L.r1_penalty(half, real.half(), scaler=scaler), L.r2_penalty(half, fake.half(), scaler=scaler))
    with torch.autocast("cpu", dtype=torch.float16):
        assert net(real).dtype == torch.float16
        got_autocast = (L.gradient_penalty(net, real, fake, generator=seeded(), scaler=scaler),
                        L.r1_penalty(net, real, scaler=scaler), L.r2_penalty(net, fake, scaler=scaler))
    for name, w, a, b in zip(("WGAN-GP", "R1", "R2"), want, got_half, got_autocast):
        for how, got in (("float16 critic", a), ("fp16 autocast", b)):
            assert got.dtype == torch.float32 and torch.isfinite(got), f"{name}, {how}, batch {batch}: {got}"
            # float16 rounds the activations, the gradients and eps (2^-11 each); (||g|| - 1)^2 amplifies
            # the relative error of ||g|| by 2 ||g|| / (||g|| - 1), about 3 here
            assert abs(float(got) - float(w)) <= 3e-2 * float(w) + 1e-4, f"{name}, {how}, batch {batch}"
    # the double backward gives D's parameters finite gradients (the trainer's scaled loss may still overflow
    # them at first: the scaler then skips that step and halves its scale, as for any loss)
    sum(got_autocast).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert net[0].weight.grad.abs().sum() > 0 and net[2].weight.grad.abs().sum() > 0
    assert scaler.get_scale() == 65536.0


def test_penalties_under_bf16_autocast(gen):
    net = nn.Sequential(nn.Linear(6, 5), nn.LeakyReLU(0.2), nn.Linear(5, 1))
    real = torch.randn(4, 6, generator=gen)
    fake = torch.randn(4, 6, generator=gen)
    want_gp = L.gradient_penalty(net, real, fake, generator=seeded())
    want_r1 = L.r1_penalty(net, real)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(real).dtype == torch.bfloat16
        gp = L.gradient_penalty(net, real, fake, generator=seeded())
        r1 = L.r1_penalty(net, real)
    assert gp.dtype == torch.float32 and r1.dtype == torch.float32
    assert_close(gp, want_gp, torch.bfloat16, 1, "WGAN-GP under bf16 autocast")
    assert_close(r1, want_r1, torch.bfloat16, 1, "R1 under bf16 autocast")
    (gp + r1).backward()
    assert all(p.grad.dtype == torch.float32 for p in net.parameters() if p.grad is not None)


def test_penalty_argument_errors():
    x = torch.randn(3, 4)
    critic = lambda x: x.sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="same shape"):
        L.gradient_penalty(critic, x, torch.randn(3, 5))
    with pytest.raises(ValueError, match="same dtype"):
        L.gradient_penalty(critic, x, x.double())
    # a bf16 fake (G's output under autocast) meets float32 reals: interpolated in float32
    w = torch.randn(4)
    lin = lambda v: (v * w).sum(1) ** 2  # noqa: E731
    fake16 = torch.randn(3, 4).bfloat16()
    g = torch.Generator().manual_seed(0)
    mixed = L.gradient_penalty(lin, x, fake16, generator=g)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(mixed, L.gradient_penalty(lin, x, fake16.float(), generator=g), rtol=0, atol=0)
    assert mixed.dtype == torch.float32
    with pytest.raises(ValueError, match="real is an empty batch"):
        L.gradient_penalty(critic, torch.empty(0, 4), torch.empty(0, 4))
    with pytest.raises(TypeError, match="fake must be a torch.Tensor"):
        L.gradient_penalty(critic, x, None)
    with pytest.raises(TypeError, match="real must be a floating-point"):
        L.r1_penalty(critic, torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"critic output must have shape \(3, \.\.\.\).*\(2, 4\)"):
        L.gradient_penalty(lambda x: x[:2], x, x)
    with pytest.raises(ValueError, match=r"r2_penalty: critic output"):
        L.r2_penalty(lambda x: x.sum(), x)
    with pytest.raises(TypeError, match="critic must be callable"):
        L.r1_penalty(None, x)
    with pytest.raises(RuntimeError, match="no_grad"):
        L.r1_penalty(lambda x: x.detach().sum(1), x)


# --- instance noise ----------------------------------------------------------------

def test_instance_noise_schedules():
    lin = L.InstanceNoise(0.2, anneal_steps=100, schedule="linear")
    assert [lin.sigma_at(s) for s in (0, 25, 50, 100, 101, 10 ** 6)] == pytest.approx([0.2, 0.15, 0.1, 0, 0, 0])
    cos = L.InstanceNoise(0.2, anneal_steps=100, schedule="cosine")
    assert cos.sigma_at(0) == pytest.approx(0.2)
    assert cos.sigma_at(50) == pytest.approx(0.1)
    assert cos.sigma_at(25) == pytest.approx(0.1 * (1 + math.sqrt(0.5)))
    assert cos.sigma_at(100) == 0.0 and cos.sigma_at(500) == 0.0
    const = L.InstanceNoise(0.2, anneal_steps=100, schedule="constant")
    assert const.sigma_at(0) == const.sigma_at(99) == 0.2 and const.sigma_at(100) == 0.0
    # monotone, never negative
    values = [lin.sigma_at(s) for s in range(120)] + [cos.sigma_at(s) for s in range(120)]
    assert min(values) >= 0.0


def test_instance_noise_values(gen):
    noise = L.InstanceNoise(0.5, anneal_steps=10, schedule="linear")
    x = torch.randn(64, 32, 8, generator=gen)
    y = noise(x, 0, generator=seeded())
    n = y - x
    assert abs(n.mean().item()) < 0.02
    assert n.std().item() == pytest.approx(0.5, rel=0.02)
    assert torch.equal(noise(x, 0, generator=seeded()), y)  # reproducible
    assert noise(x, 5, generator=seeded()).sub(x).std().item() == pytest.approx(0.25, rel=0.02)
    assert noise(x, 10) is x and noise(x, 11) is x
    assert L.InstanceNoise(0.0)(x, 0) is x
    b = noise(x.bfloat16(), 1)
    assert b.dtype == torch.bfloat16
    leaf = x.clone().requires_grad_(True)
    noise(leaf, 0).sum().backward()
    assert torch.equal(leaf.grad, torch.ones_like(x))  # the noise is a constant


def test_instance_noise_errors():
    with pytest.raises(ValueError, match="sigma"):
        L.InstanceNoise(-0.1)
    with pytest.raises(ValueError, match="sigma"):
        L.InstanceNoise(float("inf"))
    with pytest.raises(ValueError, match="anneal_steps"):
        L.InstanceNoise(0.1, anneal_steps=0)
    with pytest.raises(TypeError, match="anneal_steps"):
        L.InstanceNoise(0.1, anneal_steps=1.5)
    with pytest.raises(ValueError, match="'linear', 'cosine', 'constant'"):
        L.InstanceNoise(0.1, schedule="exp")
    noise = L.InstanceNoise()
    with pytest.raises(ValueError, match="step"):
        noise.sigma_at(-1)
    with pytest.raises(TypeError, match="step"):
        noise.sigma_at(1.5)
    with pytest.raises(TypeError, match="x must be"):
        noise(torch.ones(3, dtype=torch.int64), 0)


# --- feature matching and historical averaging -------------------------------------

def test_feature_matching(gen):
    real = torch.randn(6, 3, 2, generator=gen, dtype=F64, requires_grad=True)
    fake = torch.randn(4, 3, 2, generator=gen, dtype=F64, requires_grad=True)
    got = L.feature_matching_loss(real, fake)
    diff = real.detach().reshape(6, -1).mean(0) - fake.detach().reshape(4, -1).mean(0)
    assert_close(got, (diff ** 2).sum(), F64, 0, "feature matching")
    got.backward()
    assert real.grad is None  # the real statistics are a target
    # d/d fake_i of ||m_r - mean(fake)||^2 = -2 (m_r - m_f) / B_fake
    assert_close(fake.grad.reshape(4, -1), (-2 * diff / 4).expand(4, -1), F64, 1, "feature matching gradient")
    assert torch.autograd.gradcheck(lambda f: L.feature_matching_loss(real, f), (fake,))
    x = torch.randn(5, 7, generator=gen)
    assert L.feature_matching_loss(x, x.clone()).item() == 0.0
    assert L.feature_matching_loss(x.bfloat16(), x.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="same shape per sample"):
        L.feature_matching_loss(x, torch.randn(5, 6))


def test_historical_averaging(gen):
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    net[2].bias.requires_grad_(False)  # frozen parameters are left out
    ha = L.HistoricalAveraging(net)
    assert ha.penalty().item() == 0.0  # the history starts with the current parameters
    history = [[p.detach().clone() for p in net.parameters() if p.requires_grad]]
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        net(torch.randn(8, 3, generator=gen, dtype=F64)).square().mean().backward()
        opt.step()
        ha.update()
        history.append([p.detach().clone() for p in net.parameters() if p.requires_grad])
    opt.zero_grad()
    net(torch.randn(8, 3, generator=gen, dtype=F64)).square().mean().backward()
    opt.step()  # one step past the last update: a non-zero penalty
    trainable = [p for p in net.parameters() if p.requires_grad]
    means = [torch.stack(hs).mean(0) for hs in zip(*history)]
    want = sum(((p - m) ** 2).sum() for p, m in zip(trainable, means))
    got = ha.penalty()
    assert got.item() > 0
    assert_close(got, want, F64, 0, "historical averaging penalty")
    grads = torch.autograd.grad(got, trainable)
    for k, (g, p, m) in enumerate(zip(grads, trainable, means)):
        assert_close(g, 2 * (p.detach() - m), F64, 1, f"historical averaging gradient {k}")

    state = ha.state_dict()
    assert state["count"] == 5 and set(state) == {"count", "mean.0.weight", "mean.0.bias", "mean.2.weight"}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    fresh = L.HistoricalAveraging(net)
    fresh.load_state_dict(loaded)
    assert fresh.count == 5
    assert torch.equal(fresh.penalty(), ha.penalty())
    ha.update()
    fresh.update()
    assert torch.equal(fresh.penalty(), ha.penalty())
    with pytest.raises(KeyError, match="missing"):
        fresh.load_state_dict({"count": 1})
    bad = dict(loaded)
    bad["mean.0.bias"] = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="mean.0.bias"):
        fresh.load_state_dict(bad)


def test_historical_averaging_float32_buffers_for_half_parameters():
    net = nn.Linear(3, 2).to(torch.bfloat16)
    ha = L.HistoricalAveraging(net)
    assert all(v.dtype == torch.float32 for k, v in ha.state_dict().items() if k != "count")
    assert ha.penalty().dtype == torch.float32
    with pytest.raises(ValueError, match="no parameters"):
        L.HistoricalAveraging(nn.ReLU())


# --- through the fused layers: the integration test --------------------------

def dcgan_discriminator():
    return nn.Sequential(
        nn.Conv2d(1, 8, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 4, 2, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(16 * 2 * 2, 1),
    ).to(F64)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_gradient_penalty_and_r1_through_fused_layers_equal_torch_nn(backend, gen):
    """Gradient penalty and R1 through fused layers equal the torch.nn model's."""
    reference = dcgan_discriminator().train()
    with torch.no_grad():  # non-trivial BatchNorm affine, so its gradients are tested too
        reference[3].weight.uniform_(0.5, 1.5, generator=gen)
        reference[3].bias.uniform_(-0.5, 0.5, generator=gen)
    fused = ganfast.nn.convert(copy.deepcopy(reference))
    assert isinstance(fused[2], ganfast.nn.ConvBNLeakyReLU2d)
    assert isinstance(fused[3], nn.Identity) and isinstance(fused[4], nn.Identity)
    real = torch.randn(3, 1, 8, 8, generator=gen, dtype=F64)
    fake = torch.randn(3, 1, 8, 8, generator=gen, dtype=F64)

    def penalties(model):
        model.zero_grad(set_to_none=True)
        gp = L.gradient_penalty(model, real, fake, generator=seeded(11))
        gp.backward()
        gp_grads = {n: p.grad for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        r1 = L.r1_penalty(model, real)
        r1.backward()
        r1_grads = {n: p.grad for n, p in model.named_parameters()}
        return gp, gp_grads, r1, r1_grads

    want = penalties(reference)
    with ganfast.use_backend(backend):
        got = penalties(fused)

    # the fused layer holds the same parameters under conv./bn. names
    rename = {"2.conv.weight": "2.weight", "2.bn.weight": "3.weight", "2.bn.bias": "3.bias"}
    for what, g, w in (("WGAN-GP", got[0], want[0]), ("R1", got[2], want[2])):
        assert g.dtype == F64 and w.item() > 0
        assert_close(g, w, F64, 0, f"{what} through fused layers ({backend})")
    for what, g, w in (("WGAN-GP", got[1], want[1]), ("R1", got[3], want[3])):
        assert len(g) == len(w) == 7
        for name, grad in g.items():
            ref_name = rename.get(name, name)
            assert_close(grad, w[ref_name], F64, 2, f"{what} gradient of {name} ({backend})")
    # both models ran the same batches in train mode: the same running statistics
    assert_close(fused[2].bn.running_mean, reference[3].running_mean, F64, 0, "running_mean")
    assert_close(fused[2].bn.running_var, reference[3].running_var, F64, 0, "running_var")
