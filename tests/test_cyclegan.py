"""CycleGAN: the ResNet generator's layout, the image pool's rule, the losses against a float64 re-derivation."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganfast.data import Batch
from ganfast.data.edges import PairedTensors
from ganfast.models import StepContext, build
from ganfast.models.cyclegan import ImagePool, gan_loss, jitter_images
from ganfast.models.nets import ResNetGenerator
from ganfast.models.nets.cyclegan import default_resnet_blocks

TINY = {"ngf": 4, "ndf": 4, "n_layers_d": 1, "n_blocks": 2}


def images(n, c=1, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, side, side, generator=g, dtype=torch.float64) * 2 - 1


def test_resnet_9blocks_has_the_released_keys_and_size():
    """The released resnet_9blocks (ngf 64, 3 -> 3 channels): 11.378M parameters, keys model.1 ... model.26."""
    g = ResNetGenerator(3, 3, 64, 9)
    assert sum(p.numel() for p in g.parameters()) == 11_378_179
    convs = sorted({k.rsplit(".", 1)[0] for k in g.state_dict()}, key=lambda k: [int(p) if p.isdigit() else p
                                                                               for p in k.split(".")])
    assert convs == (["model.1", "model.4", "model.7"]
                     + [f"model.{i}.conv_block.{j}" for i in range(10, 19) for j in (1, 5)]
                     + ["model.19", "model.22", "model.26"])
    assert default_resnet_blocks(128) == 6 and default_resnet_blocks(256) == 9


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_generator_shapes_range_and_bad_input(upsample):
    g = ResNetGenerator(1, 3, 4, 2, upsample=upsample).double()
    y = g(images(2, 1, 16))
    assert y.shape == (2, 3, 16, 16) and y.abs().max() < 1
    if upsample == "resize":
        assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    with pytest.raises(ValueError, match="multiples of 4"):
        g(images(1, 1, 10))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        g(images(1, 3, 16))
    with pytest.raises(ValueError, match="upsample"):
        ResNetGenerator(1, 1, upsample="bilinear")


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_fused_networks_compute_the_unfused_function_and_load_its_weights(norm):
    """fused=True converts Conv -> InstanceNorm -> ReLU runs: same outputs and gradients in float64, the same
    parameters under the converted names, and the unfused state dicts load."""
    torch.manual_seed(0)
    plain = build("cyclegan", sample_shape=[1, 16, 16], fused=False, norm=norm, **TINY).double()
    fused = build("cyclegan", sample_shape=[1, 16, 16], fused=True, norm=norm, **TINY).double()
    fused.load_state_dict(plain.state_dict())
    if norm == "instance":
        assert any("conv" in k and "model.1." in k for k in fused.G_AB.state_dict())  # model.1.conv.weight
    x = images(3, 1, 16, seed=1)
    for name in ("G_AB", "G_BA", "D_A", "D_B"):
        f, p = getattr(fused, name), getattr(plain, name)
        yf, yp = f(x), p(x)
        torch.testing.assert_close(yf, yp, rtol=1e-10, atol=1e-12)
        (yf * yp.detach()).sum().backward()
        (yp * yp.detach()).sum().backward()
        # the same parameters and gradients under the converted names (model.1.conv.weight: model.1.weight,
        # model.1.norm.*: model.2.*)
        plain_params = dict(p.named_parameters())
        fused_params = {unconverted_name(k): v for k, v in f.named_parameters()}
        assert fused_params.keys() == plain_params.keys(), name
        for k, v in fused_params.items():
            assert torch.equal(v, plain_params[k]), k
            torch.testing.assert_close(v.grad, plain_params[k].grad, rtol=1e-9, atol=1e-12, msg=f"{name}.{k}")


def unconverted_name(key):
    """A fused layer's parameter name as the torch.nn Sequential had it: i.conv.w -> i.w, i.bn.w / i.norm.w ->
    (i+1).w."""
    key = re.sub(r"(\d+)\.conv\.", r"\1.", key)
    return re.sub(r"(\d+)\.(bn|norm)\.", lambda m: f"{int(m.group(1)) + 1}.", key)


def reference_pool(history, images, uniforms, slots, size):
    """The released ImagePool.query, written out: fill, then swap with probability 1/2."""
    out = []
    for img, u, j in zip(images, uniforms, slots):
        if len(history) < size:
            history.append(img.clone())
            out.append(img)
        elif u > 0.5:
            out.append(history[j].clone())
            history[j] = img.clone()
        else:
            out.append(img)
    return torch.stack(out)


def test_image_pool_follows_the_released_rule_and_resumes():
    pool, history = ImagePool(5), []
    for step in range(6):
        x = images(3, seed=10 + step)
        torch.manual_seed(step)
        got = pool.query(x)
        torch.manual_seed(step)  # the pool draws n uniforms, then n slots, from the global RNG
        u, j = torch.rand(3), torch.randint(0, 5, (3,))
        want = reference_pool(history, x, u.tolist(), j.tolist(), 5)
        assert torch.equal(got, want), step
    assert pool.count == 5 and torch.equal(pool.images, torch.stack(history))
    # some draws returned a stored image (the pool is not a pass-through once full)
    restored = ImagePool(5)
    restored.load_state_dict(pool.state_dict())
    x = images(4, seed=99)
    torch.manual_seed(7)
    a = pool.query(x)
    torch.manual_seed(7)
    assert torch.equal(restored.query(x), a)
    assert torch.equal(ImagePool(0).query(x), x)
    with pytest.raises(ValueError, match="pool size"):
        ImagePool(-1)
    with pytest.raises(ValueError, match="holds images of shape"):
        pool.query(images(2, 3))


def test_image_pool_returns_stored_images_once_full():
    pool = ImagePool(4)
    first = images(4, seed=1)
    pool.query(first)
    torch.manual_seed(0)
    out = pool.query(images(64, seed=2))
    from_history = sum(any(torch.equal(o, f) for f in first) for o in out)
    assert 0 < from_history <= 4  # each stored image can be returned once before it is replaced


def test_losses_match_a_float64_rederivation():
    """L_G = LSGAN(D_B(G_AB(A))) + LSGAN(D_A(G_BA(B))) + 10 cycle each way + 5 identity each way;
    L_D = the two halved LSGAN terms, the fakes through the pools (size 0 here: the fakes themselves)."""
    torch.manual_seed(0)
    m = build("cyclegan", sample_shape=[1, 8, 8], jitter=False, fused=False, pool_size=0, **TINY).double()
    a, b = images(4, seed=1), images(4, seed=2)
    batch = Batch(image=a, target=b)
    loss, logs = m.g_loss(batch, StepContext())
    fb, fa = m.G_AB(a), m.G_BA(b)

    def mse(x, t):
        return ((x - t) ** 2).mean()

    want = (mse(m.D_B(fb), 1) + mse(m.D_A(fa), 1) + 10 * (m.G_BA(fb) - a).abs().mean()
            + 10 * (m.G_AB(fa) - b).abs().mean() + 5 * (m.G_AB(b) - b).abs().mean() + 5 * (m.G_BA(a) - a).abs().mean())
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    assert {"cycle_a", "cycle_b", "idt_a", "idt_b", "g_gan_ab", "g_gan_ba"} <= set(logs)
    d, _ = m.d_loss(batch, StepContext())
    want_d = (mse(m.D_B(b), 1) + mse(m.D_B(fb), 0)) / 2 + (mse(m.D_A(a), 1) + mse(m.D_A(fa), 0)) / 2
    torch.testing.assert_close(d, want_d, rtol=1e-12, atol=0)
    # vanilla mode is BCE with logits
    logits = images(3, seed=5)
    torch.testing.assert_close(gan_loss(logits, True, "vanilla"),
                               F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)))


def test_d_phase_sees_the_g_phase_fakes_through_the_pool():
    torch.manual_seed(0)
    m = build("cyclegan", sample_shape=[1, 8, 8], jitter=False, fused=False, pool_size=50, **TINY)
    batch = Batch(image=images(4, seed=1).float(), target=images(4, seed=2).float())
    m.g_loss(batch, StepContext())
    fake_b = m._iteration[4]
    m.d_loss(batch, StepContext())
    assert m.pools["B"].count == 4 and torch.equal(m.pools["B"].images[:4], fake_b)
    state = m.extra_state_dict()
    other = build("cyclegan", sample_shape=[1, 8, 8], pool_size=50, **TINY)
    other.load_extra_state_dict(state)
    assert other.pools["A"].count == 4 and torch.equal(other.pools["A"].images[:4], m.pools["A"].images[:4])


def test_identity_needs_equal_channels():
    with pytest.raises(ValueError, match="lambda_identity=0"):
        build("cyclegan", sample_shape=[1, 8, 8], target_channels=3, **TINY)
    m = build("cyclegan", sample_shape=[1, 8, 8], target_channels=3, lambda_identity=0, **TINY)
    assert m.G_AB.out_channels == 3 and m.G_BA.in_channels == 3
    assert m.translate(images(2).float()).shape == (2, 3, 8, 8)
    assert m.translate(images(2, 3).float(), direction="BtoA").shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="BtoA"):
        m.translate(images(2).float(), direction="BtoA")
    with pytest.raises(ValueError, match="direction"):
        m.translate(images(2).float(), direction="sideways")


def test_jitter_images_keeps_shape_and_is_seeded():
    x = images(3, 1, 16).float()
    torch.manual_seed(0)
    y1 = jitter_images(x)
    torch.manual_seed(0)
    assert torch.equal(jitter_images(x), y1) and y1.shape == x.shape and not torch.equal(y1, x)
    with pytest.raises(ValueError, match="jitter_images"):
        jitter_images(x[0])


def test_trains_through_the_trainer_with_grids_and_exact_resume(tmp_path):
    """A few steps, a checkpoint, a resume that continues as the uninterrupted run (pools included)."""
    from ganfast.train import TrainConfig, Trainer

    x = images(16, 1, 8, seed=3).float()
    ds = PairedTensors("tiny-domains", x, -x.flip(0))

    def cfg(out, steps):
        return TrainConfig(model="cyclegan", data="tiny", steps=steps, batch_size=4, out=str(out), progress=False,
                           log_every=1, sample_every=2, checkpoint_every=2, grid_size=4, seed=0,
                           model_options={**TINY, "pool_size": 3, "decay_fraction": 0.0})

    full = Trainer(cfg(tmp_path / "full", 4), dataset=ds)
    full.fit()
    assert all(math.isfinite(v) for row in full.history for v in row.values())
    assert list((tmp_path / "full" / "samples").glob("*.png"))
    part = Trainer(cfg(tmp_path / "part", 2), dataset=ds)
    part.fit()
    resumed = Trainer(cfg(tmp_path / "part", 4), dataset=ds)
    resumed.fit(resume=True)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert torch.equal(resumed.model.pools["B"].images, full.model.pools["B"].images)
