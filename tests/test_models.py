"""Every GAN method builds with its paper's defaults and trains on tiny data, on every backend."""

import math
import os

import pytest
import torch

import ganfast
from ganfast.data import GANDataset
from ganfast.data import Batch
from ganfast.models import AdversarialOptions, StepContext, build, describe, names

ALL = ["gan", "dcgan", "cgan", "acgan", "infogan", "wgan", "wgan-gp", "lsgan", "sngan", "sagan", "unrolled", "pacgan",
       "progan", "stylegan", "stylegan2", "pix2pix", "cyclegan", "recyclegan", "lapgan",
       "srresnet", "srgan"]
#: the methods built on AdversarialGAN (one G, one D, its options and helpers); progan and the StyleGANs have theirs
ADVERSARIAL = [n for n in ALL if n not in ("progan", "stylegan", "stylegan2", "pix2pix", "cyclegan", "recyclegan",
                                           "lapgan", "srresnet", "srgan")]


#: a StyleGAN2 small enough for a test: 8-d z and w, one mapping layer, 4 channels, every regulariser each step
STYLEGAN2_TINY = {"z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 32, "channel_max": 4, "r1_interval": 2,
                  "pl_interval": 2}


def tiny_images(n=24, classes=3, side=8, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, side, side, generator=g) * 2 - 1
    y = torch.randint(0, classes, (n,), generator=g)
    return GANDataset("tiny-images", x, y, classes=[str(i) for i in range(classes)])


def tiny_points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny-points", torch.randn(n, 2, generator=g))


def batches(ds, batch_size=4, seed=0):
    x, y = ds.tensors
    g = torch.Generator().manual_seed(seed)

    def next_batch():
        i = torch.randint(0, len(x), (batch_size,), generator=g)
        return x[i], (y[i] if y is not None else None)
    return next_batch


def small(name, ds):
    """Options that shrink a method's networks without changing its method."""
    if ds.kind == "image":
        return {"width": 4, "hidden": [16, 16], "latent_dim": 8}
    return {"hidden": [16, 16], "latent_dim": 4}


def test_names_and_descriptions():
    assert names() == ALL
    d = dict(describe())
    assert set(d) == set(ALL) and all(len(v) > 20 for v in d.values())


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("name", ADVERSARIAL)
def test_every_method_trains_on_tiny_images(name, backend):
    """Two steps on every backend; the triton backend's first step gives the torch backend's losses from the
    same weights, batch and draws (it was never compared with torch)."""
    import copy

    ds = tiny_images()
    model = build(name, dataset=ds, **small(name, ds))
    reference = copy.deepcopy(model)
    opts = model.make_optimizers()
    before = {k: v.detach().clone() for k, v in model.G.state_dict().items()}
    with ganfast.use_backend(backend):
        for step in range(2):
            torch.manual_seed(100 + step)
            logs = model.train_step(batches(ds, seed=step), opts, StepContext())
            if step == 0:
                first = logs
    if backend == "triton":
        with ganfast.use_backend("torch"):
            torch.manual_seed(100)
            want = reference.train_step(batches(ds, seed=0), reference.make_optimizers(), StepContext())
        assert set(first) == set(want)
        for k in want:  # float32 kernels against torch's: a few roundings, after one optimiser step of D
            torch.testing.assert_close(first[k].float(), want[k].float(), rtol=2e-3, atol=1e-4, msg=k)
    assert logs and all(math.isfinite(float(v)) for v in logs.values()), logs
    assert "d_loss" in logs and "g_loss" in logs
    changed = [k for k, v in model.G.state_dict().items() if v.dtype.is_floating_point
               and not torch.equal(v, before[k])]
    assert changed, "the generator's parameters did not move"
    with torch.no_grad():
        z = model.sample_latent(5)
        y = model.sample_labels(5)
        x = model.generate(z, y)
        x2 = model.sample(5)
    assert x.shape == (5, *ds.sample_shape) and x2.shape == x.shape
    if model.kind == "image":
        assert x.abs().max() <= 1.0  # tanh output


@pytest.mark.parametrize("name", [n for n in ADVERSARIAL if n not in ("cgan", "acgan", "sagan")])
def test_every_unconditional_method_trains_on_points(name):
    ds = tiny_points()
    model = build(name, dataset=ds, **small(name, ds))
    opts = model.make_optimizers()
    for _ in range(2):
        logs = model.train_step(batches(ds, 8), opts, StepContext())
    assert all(math.isfinite(float(v)) for v in logs.values()), logs
    assert model.generate(model.sample_latent(3)).shape == (3, 2)


def test_paper_defaults():
    img = tiny_images(side=16)
    dc = build("dcgan", dataset=img)
    assert dc.config["lr_g"] == 2e-4 and dc.config["betas"] == [0.5, 0.999]
    assert isinstance(dc.G.blocks[0], ganfast.nn.ConvTransposeBNReLU2d) or any(
        isinstance(m, ganfast.nn.ConvTransposeBNReLU2d) for m in dc.G.modules())
    assert any(isinstance(m, ganfast.nn.ConvBNLeakyReLU2d) for m in dc.D.modules())
    w = build("wgan", dataset=img)
    assert w.config["clip_d"] == 0.01 and w.n_critic == 5 and isinstance(w.make_optimizers()["D"], torch.optim.RMSprop)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in w.D.modules())
    gp = build("wgan-gp", dataset=tiny_points())
    assert gp.config["gradient_penalty"] == 10.0 and gp.config["betas"] == [0.0, 0.9] and gp.config["lr_d"] == 1e-4
    assert gp.config["hidden"] == [512, 512, 512]
    sn = build("sngan", dataset=img)
    assert sn.loss == "hinge" and any("parametrizations" in k for k in sn.D.state_dict())
    sa = build("sagan", dataset=img)
    assert sa.config["lr_g"] == 1e-4 and sa.config["lr_d"] == 4e-4  # TTUR
    assert any(isinstance(m, ganfast.nn.SelfAttention2d) for m in sa.G.modules())
    assert any(isinstance(m, ganfast.nn.SelfAttention2d) for m in sa.D.modules())
    assert any("parametrizations" in k for k in sa.G.state_dict())
    assert build("lsgan", dataset=img).loss == "least-squares"
    un = build("unrolled", dataset=tiny_points(), unroll_steps=3)
    assert un.config["unroll_steps"] == 3
    info = build("infogan", dataset=img)
    assert info.generator_input_dim() == 62 + 10 + 2


def test_wgan_clips_the_critic():
    ds = tiny_images()
    model = build("wgan", dataset=ds, **small("wgan", ds), lr_d=0.5)
    model.train_step(batches(ds), model.make_optimizers(), StepContext())
    for p in model.D.parameters():
        assert p.abs().max() <= 0.01 + 1e-7


def test_unrolled_gradient_flows_through_the_unroll():
    """With unroll_grad the generator's gradient differs from the first-order one (and from k=0)."""
    ds = tiny_points()

    def g_grad(**kw):
        torch.manual_seed(3)
        m = build("unrolled", dataset=ds, hidden=[8, 8], latent_dim=3, **kw)
        opts = m.make_optimizers()
        torch.manual_seed(4)
        x = ds.tensors[0][:16]
        ctx = StepContext()
        ctx.optimizers = opts
        loss, _ = m.g_phase(Batch(image=x), ctx)
        grads = torch.autograd.grad(loss, list(m.G.parameters()))
        return torch.cat([g.reshape(-1) for g in grads])

    full, first, none = g_grad(unroll_steps=3), g_grad(unroll_steps=3, unroll_grad=False), g_grad(unroll_steps=0)
    assert not torch.allclose(full, first) and not torch.allclose(first, none)


def test_unrolled_gradient_is_finite_where_a_discriminator_gradient_is_exactly_zero():
    """A D parameter whose gradient is exactly 0 (a unit whose output is multiplied by 0 here; small gradients underflowing under bf16
    autocast in practice) has Adam second moment 0; sqrt's derivative there is inf and made G's unrolled gradient
    NaN.  The unroll's sqrt has derivative 0 at 0, and its values are sqrt's."""
    from ganfast.models.unrolled import _sqrt0

    v = torch.tensor([0.0, 0.25, 4.0], dtype=torch.float64, requires_grad=True)
    r = _sqrt0(v)
    (g,) = torch.autograd.grad(r.sum(), v)
    assert r.tolist() == [0.0, 0.5, 2.0] and g.tolist() == [0.0, 1.0, 0.25]
    ds = tiny_points()
    torch.manual_seed(3)
    m = build("unrolled", dataset=ds, hidden=[8, 8], latent_dim=3, unroll_steps=2)
    second = [mod for mod in m.D.modules() if isinstance(mod, torch.nn.Linear)][1]
    with torch.no_grad():
        second.weight[:, 0].zero_()  # hidden unit 0 reaches nothing: its incoming weights' gradients are exactly 0
    ctx = StepContext()
    ctx.optimizers = m.make_optimizers()
    torch.manual_seed(4)
    loss, _ = m.g_phase(Batch(image=ds.tensors[0][:16]), ctx)
    grads = torch.autograd.grad(loss, list(m.G.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_unrolled_first_order_equals_a_copy_trained_by_adam():
    """unroll_grad=False evaluates G's loss on D after k real Adam steps (the unrolled update rule is Adam's)."""
    import copy

    ds = tiny_points()
    torch.manual_seed(5)
    m = build("unrolled", dataset=ds, hidden=[8], latent_dim=3, unroll_steps=2, unroll_grad=False)
    opts = m.make_optimizers(fused=False)
    x = ds.tensors[0][:16]
    torch.manual_seed(6)
    ctx = StepContext()
    ctx.optimizers = opts
    loss, _ = m.g_phase(Batch(image=x), ctx)
    # the same by hand: copy D, take 2 Adam steps on the same fake batch, then G's loss
    torch.manual_seed(6)
    z = m.sample_latent(16)
    fake = m.generate(z).detach()
    d = copy.deepcopy(m.D)
    opt = torch.optim.Adam(d.parameters(), lr=m.config["lr_d"], betas=tuple(m.config["betas"]))
    for _ in range(2):
        opt.zero_grad()
        ganfast.losses.discriminator_loss("non-saturating", d(x), d(fake)).backward()
        opt.step()
    expected = ganfast.losses.generator_loss("non-saturating", d(m.generate(z)))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_infogan_codes_and_q_head():
    ds = tiny_images()
    m = build("infogan", dataset=ds, **small("infogan", ds), categorical_codes=[3], continuous_codes=2, noise_dim=5)
    z = m.sample_latent(6)
    assert z.shape == (6, 5 + 3 + 2)
    assert torch.all(z[:, 5:8].sum(1) == 1) and z[:, 8:].abs().max() <= 1
    assert any(p is q for p in m.make_optimizers()["D"].param_groups[0]["params"] for q in m.Q.parameters())


def test_acgan_classifier_in_d_optimiser():
    ds = tiny_images()
    m = build("acgan", dataset=ds, **small("acgan", ds))
    d_params = {id(p) for g in m.make_optimizers()["D"].param_groups for p in g["params"]}
    assert all(id(p) in d_params for p in m.C.parameters())


def _fixed_step_inputs(model, ds, seed=5):
    """A real batch and a fake batch (with labels where the method has them), fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x, y = ds.tensors
    i = torch.randint(0, len(x), (6,), generator=g)
    real, yr = x[i], (y[i] if model.discriminator_classes() > 0 else None)
    torch.manual_seed(seed)
    with torch.no_grad():
        z, yf, fake = model.fake(6, real.device)
    return real, yr, fake, yf, z


def _ctx(model, step=0, total=100):
    from ganfast.models.schedules import evaluate

    ctx = StepContext()
    ctx.schedule = evaluate(dict(model.schedules()), step, total)  # as the trainer sets it (instance noise)
    return ctx


@pytest.mark.parametrize("option", [
    {"r1": 10.0}, {"r2": 1.0}, {"label_smoothing": 0.1}, {"instance_noise": 0.1},
    {"feature_matching": 1.0}, {"historical_averaging": 0.01}, {"minibatch_discrimination": [4, 3]},
    {"minibatch_stddev": True}, {"n_critic": 3}, {"loss": "least-squares"}, {"loss": "minimax"},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_tricks_as_options(option):
    """Each option takes effect: D's loss on a fixed batch equals the ganfast.losses formula with the option's
    term, or the option's layer is in D, or D steps n_critic times; finite losses alone let an ignored option
    pass (the test only checked those)."""
    import ganfast.losses as L
    from ganfast.nn import MinibatchDiscrimination, MinibatchStdDev

    ds = tiny_images()
    model = build("dcgan", dataset=ds, **small("dcgan", ds), **option)
    real, yr, fake, yf, z = _fixed_step_inputs(model, ds)
    key, value = next(iter(option.items()))
    if key in ("r1", "r2", "label_smoothing", "loss"):
        loss, logs = model.discriminator_loss(real, yr, fake, yf, z, _ctx(model))
        r_out, f_out = model.d_forward(real, yr), model.d_forward(fake, yf)
        kind = value if key == "loss" else "non-saturating"
        want = L.discriminator_loss(kind, r_out, f_out, **({"real_label": 1 - value} if key == "label_smoothing"
                                                           else {}))
        if key == "r1":
            want = want + 0.5 * value * L.r1_penalty(model.critic(yr), real)
        if key == "r2":
            want = want + 0.5 * value * L.r2_penalty(model.critic(yf), fake)
        torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
        if key in ("r1", "r2"):
            assert key in logs and float(logs[key]) > 0
        if key == "label_smoothing":  # and not the plain loss: d/d(output bias) of mean BCE(r, 0.9) is 0.1 less
            bias = list(model.D.parameters())[-1]
            plain = L.discriminator_loss(kind, r_out, f_out)
            got, smooth, unsmoothed = (torch.autograd.grad(t, bias, retain_graph=True)[0] for t in (loss, want, plain))
            torch.testing.assert_close(got, smooth, rtol=1e-5, atol=1e-7)
            assert float((got - unsmoothed).abs().max()) == pytest.approx(0.1, rel=1e-3)
    elif key == "instance_noise":
        ctx = _ctx(model)
        assert ctx.schedule["instance_noise"] == pytest.approx(value)
        noisy = model.noisy(real, ctx)
        assert float((noisy - real).std()) == pytest.approx(value, rel=0.25)
        assert model.noisy(real, _ctx(model, step=10**9, total=None)) is real  # annealed away
    elif key == "feature_matching":
        _, logs = model.generator_loss(fake, yf, z, real, yr, _ctx(model))
        _, f_real = model.d_forward(real, yr, features=True)
        _, f_fake = model.d_forward(fake, yf, features=True)
        torch.testing.assert_close(logs["feature_matching"], L.feature_matching_loss(f_real, f_fake),
                                   rtol=1e-5, atol=1e-7)
    elif key == "historical_averaging":
        opts = model.make_optimizers()
        model.train_step(batches(ds), opts, _ctx(model))
        assert model.extra_state_dict()["historical_averaging"]["G"]["count"] >= 2
    elif key == "minibatch_discrimination":
        layers = [m for m in model.D.modules() if isinstance(m, MinibatchDiscrimination)]
        assert len(layers) == 1 and (layers[0].num_kernels, layers[0].kernel_dim) == tuple(value)
    elif key == "minibatch_stddev":
        assert sum(isinstance(m, MinibatchStdDev) for m in model.D.modules()) == 1
    elif key == "n_critic":
        opts = model.make_optimizers()
        model.train_step(batches(ds), opts, _ctx(model))
        steps = {k: {int(st["step"]) for st in o.state.values() if "step" in st} for k, o in opts.items()}
        assert steps == {"D": {value}, "G": {1}}, steps
    else:  # pragma: no cover
        raise AssertionError(option)
    logs = model.train_step(batches(ds), model.make_optimizers(), _ctx(model))
    assert all(math.isfinite(float(v)) for v in logs.values()), logs


def test_r2_on_a_conditional_method_binds_the_fake_labels():
    """R2 on cgan: the penalty is taken through D with the fake batch's labels (a wrong binding, e.g. the real
    labels, gives another number)."""
    import ganfast.losses as L

    ds = tiny_images()
    model = build("cgan", dataset=ds, **small("cgan", ds), r2=2.0)
    real, yr, fake, yf, z = _fixed_step_inputs(model, ds)
    assert yf is not None and not torch.equal(yf, yr)
    loss, logs = model.discriminator_loss(real, yr, fake, yf, z, _ctx(model))
    base = L.discriminator_loss("non-saturating", model.d_forward(real, yr), model.d_forward(fake, yf))
    r2 = L.r2_penalty(model.critic(yf), fake)
    torch.testing.assert_close(loss, base + r2, rtol=1e-5, atol=1e-6)
    assert abs(float(L.r2_penalty(model.critic(yr), fake)) - float(r2)) > 1e-6


def test_rebuild_from_config_gives_the_same_networks():
    ds = tiny_images()
    a = build("sngan", dataset=ds, **small("sngan", ds))
    cfg = dict(a.config)
    b = build("sngan", **cfg)
    b.load_state_dict(a.state_dict())
    assert b.config == a.config
    z = a.sample_latent(3)
    a.eval(), b.eval()
    torch.testing.assert_close(a.generate(z), b.generate(z))


@pytest.mark.parametrize("bad, match", [
    ({"name": "stylegan9"}, "unknown model"),
    ({"name": "dcgan", "lr_g": -1}, "lr_g"),
    ({"name": "dcgan", "betas": (0.5,)}, "betas"),
    ({"name": "dcgan", "loss": "nope"}, "loss"),
    ({"name": "dcgan", "n_critic": 0}, "n_critic"),
    ({"name": "dcgan", "sample_shape": (1, 12, 12)}, "power of two"),
    ({"name": "dcgan", "sample_shape": (1, 8)}, "sample_shape"),
    ({"name": "dcgan", "colour": 3}, "unknown option"),
    ({"name": "wgan", "label_smoothing": 0.1}, "label smoothing"),
    ({"name": "cgan"}, "conditional"),
    ({"name": "acgan", "num_classes": 1}, "2 classes"),
    ({"name": "infogan", "categorical_codes": [1]}, "categorical_codes"),
    ({"name": "unrolled", "unroll_steps": -1}, "unroll_steps"),
    ({"name": "sagan", "sample_shape": (2,)}, "image data"),
])
def test_bad_options(bad, match):
    bad = dict(bad)
    name = bad.pop("name")
    with pytest.raises((ValueError, TypeError), match=match):
        build(name, **bad)


def test_conditional_model_needs_labels():
    with pytest.raises(ValueError, match="labels"):
        build("cgan", dataset=tiny_points())
    m = build("cgan", dataset=tiny_images(), **small("cgan", tiny_images()))
    with pytest.raises(ValueError, match="labels"):
        m.generate(m.sample_latent(2))
    nb = batches(GANDataset("u", torch.rand(8, 1, 8, 8) * 2 - 1))
    with pytest.raises(ValueError, match="labels"):
        m.train_step(nb, m.make_optimizers(), StepContext())


def test_common_defaults_are_all_options():
    import dataclasses
    m = build("dcgan", dataset=tiny_images(), width=4)
    assert {f.name for f in dataclasses.fields(AdversarialOptions)} <= set(m.config)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("name", ALL)
def test_every_method_trains_under_autocast(name, amp, tmp_path):
    """--amp bf16/fp16 through the trainer: a few steps with finite losses (the trainer raises on non-finite ones).
    Found wgan-gp/progan's penalty rejecting bf16 fakes with float32 reals, and NaN in unrolled's sqrt."""
    from ganfast.train import TrainConfig, Trainer

    ds = tiny_images(n=32)
    if name == "pix2pix":  # paired: A = the images, B = their negatives
        from ganfast.data.edges import PairedTensors

        ds = PairedTensors("tiny-pairs", ds.tensors[0], -ds.tensors[0])
    elif name in ("lapgan", "srresnet", "srgan"):  # 16x16: lapgan's 8x8 and 16x16 levels; SR from 4x4
        ds = tiny_images(n=32, side=16)
    elif name in ("cyclegan", "recyclegan"):  # real unpaired sneakers and boots (runs of 3 frames), 8x8
        ds = ganfast.data.load("fashion-shoes-clips" if name == "recyclegan" else "fashion-shoes", image_size=8,
                               num_samples=32)
    options = {"fmap_base": 16, "fmap_max": 8, "lod_training_kimg": 0.016, "lod_transition_kimg": 0.016} \
        if name == "progan" else STYLEGAN2_TINY if name.startswith("stylegan") else \
        {"ngf": 4, "ndf": 4, "n_layers_d": 1} if name == "pix2pix" else \
        {"ngf": 4, "ndf": 4, "n_layers_d": 1, "n_blocks": 0} if name.endswith("cyclegan") else \
        {"width_g": 4, "width_d": 4, "hidden_g": [16], "hidden_d": [16], "latent_dim": 8} if name == "lapgan" else \
        {"width": 4, "n_blocks": 1, "ndf": 4, "dense": 8} if name == "srgan" else \
        {"width": 4, "n_blocks": 1} if name == "srresnet" else \
        small(name, ds)
    cfg = TrainConfig(model=name, data="tiny", steps=4, batch_size=8, amp=amp, out=str(tmp_path), progress=False,
                      log_every=1, sample_every=100, checkpoint_every=100, grid_size=4, model_options=options)
    t = Trainer(cfg, dataset=ds)
    t.fit()
    assert len(t.history) == 4 and all(math.isfinite(v) for v in t.history[-1].values()), t.history
    if amp == "bf16":  # no scaler: every step is finite; fp16 may overflow early, the scaler skipping those steps
        assert all(math.isfinite(v) for row in t.history for v in row.values()), t.history
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_a_non_finite_log_is_divergence_unless_the_fp16_scaler_skipped_that_step():
    from ganfast.train.trainer import _check_finite

    _check_finite({"d_loss": 1.0}, 3)
    _check_finite({"d_loss": float("nan")}, 3, {"D": 32768.0})  # overflow: the scaler skipped and halved
    with pytest.raises(FloatingPointError, match="diverged at step 3: d_loss"):
        _check_finite({"d_loss": float("nan")}, 3)
    with pytest.raises(FloatingPointError, match="diverged"):
        _check_finite({"d_loss": float("inf")}, 3, {})
    with pytest.raises(FloatingPointError, match="diverged"):  # halved below 1: not the scale's fault
        _check_finite({"d_loss": float("inf")}, 3, {"D": 0.5})


def test_step_optimizer_counts_the_steps_a_gradient_scaler_skips():
    """An inf gradient makes GradScaler skip the step and halve its scale: counted per optimiser, with the run of
    consecutive skips reset by the next good step; the weights stay where they were on a skipped step."""

    class Ctx(StepContext):
        def __init__(self):
            super().__init__()
            self.scalers = {"D": torch.amp.GradScaler("cpu", init_scale=1024.0)}

        def scaler(self, name):
            return self.scalers.get(name)

    ctx = Ctx()
    w = torch.nn.Parameter(torch.randn(5, generator=torch.Generator().manual_seed(0)))
    opt = torch.optim.SGD([w], lr=0.1)
    for k, bad in enumerate([True, True, False, True, False, False]):
        before = w.detach().clone()
        opt.zero_grad()
        ctx.backward((w * (float("inf") if bad else 1.0)).sum(), "D")
        ctx.step_optimizer(opt, "D")
        assert torch.equal(w.detach(), before) == bad, k
    assert ctx.skipped_steps == {"D": 3} and ctx.consecutive_skips == {"D": 0}
    opt.zero_grad()
    ctx.backward((w * float("nan")).sum(), "D")
    ctx.step_optimizer(opt, "D")
    assert ctx.skipped_steps == {"D": 4} and ctx.consecutive_skips == {"D": 1}
    plain = StepContext()  # no scaler: nothing is counted
    plain.step_optimizer(opt, "G")
    assert plain.skipped_steps == {} and plain.consecutive_skips == {}


def test_fp16_batchnorm_discriminator_with_r1_is_reported_not_silent(tmp_path):
    """The issue's case: with fp16, R1 and a BatchNorm discriminator, the double backward overflows at every
    scale (plain torch.nn too), so D's scaler skips every step while the logged losses look finite. The
    metrics count the skipped steps, one warning names the optimiser, and a checkpoint keeps the count."""
    from ganfast.train import TrainConfig, Trainer

    cfg = TrainConfig(model="dcgan", data="digits", steps=12, batch_size=16, amp="fp16", out=str(tmp_path),
                      progress=False, log_every=1, image_size=16, sample_every=100, checkpoint_every=100,
                      grid_size=4, model_options={"r1": 10, "width": 32})
    t = Trainer(cfg)
    with pytest.warns(RuntimeWarning, match="scaler of optimiser 'D' skipped its last 10 steps") as record:
        t.fit()
    assert sum("skipped its last" in str(w.message) for w in record) == 1  # once per streak, not every step
    assert [row["skipped_steps_D"] for row in t.history] == [float(k) for k in range(1, 13)]
    assert all(row["skipped_steps_G"] == 0 for row in t.history)
    assert all(math.isfinite(row["d_loss"]) for row in t.history)  # why it was silent before
    state = torch.load(os.path.join(tmp_path, "checkpoints", "ckpt-00000012.pt"), weights_only=False)
    assert state["amp_skips"] == {"skipped": {"D": 12, "G": 0}, "consecutive": {"D": 12, "G": 0}}
