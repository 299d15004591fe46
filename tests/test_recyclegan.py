"""Recycle-GAN: runs of frames, the recurrent / recycle / adversarial losses against a float64 re-derivation."""

import math

import pytest
import torch

import ganfast
from ganfast.data import Batch
from ganfast.models import StepContext, build
from ganfast.models.recyclegan import frame_triplets

TINY = {"ngf": 4, "ndf": 4, "n_layers_d": 1, "n_blocks": 1}


def clips(n, t=3, c=1, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, t, c, side, side, generator=g, dtype=torch.float64) * 2 - 1


def test_frame_triplets_are_every_run_of_three():
    x = clips(2, t=5)
    x0, x1, x2 = frame_triplets(x)
    assert x0.shape == (6, 1, 8, 8)
    for i in range(2):
        for s in range(3):
            k = 3 * i + s
            assert torch.equal(x0[k], x[i, s]) and torch.equal(x1[k], x[i, s + 1]) and torch.equal(x2[k], x[i, s + 2])
    with pytest.raises(ValueError, match="T >= 3"):
        frame_triplets(clips(2, t=2))
    with pytest.raises(ValueError, match=r"\(N, T, C, H, W\)"):
        frame_triplets(x[:, 0])


def test_defaults_follow_the_released_script():
    m = build("recyclegan", sample_shape=[1, 8, 8], **TINY)
    o = m.options
    assert (o.lambda_a, o.lambda_b, o.lambda_identity, o.pool_size, o.dropout) == (10.0, 10.0, 0.0, 0, 0.0)
    assert set(m.networks()) == {"G_AB", "G_BA", "D_A", "D_B", "P_A", "P_B"}
    assert m.trains()["G"] == ("G_AB", "G_BA", "P_A", "P_B") and m.trains()["D"] == ("D_A", "D_B")
    assert m.P_A.in_channels == 2 and m.P_A.num_downs == 3


@pytest.mark.parametrize("adv_pred", [True, False])
def test_losses_match_a_float64_rederivation(adv_pred):
    torch.manual_seed(0)
    m = build("recyclegan", sample_shape=[1, 8, 8], jitter=False, fused=False, adversarial_on_predicted=adv_pred,
              **TINY).double()
    fa, fb = clips(3, seed=1), clips(3, seed=2)
    batch = Batch(frames=fa, target_frames=fb)
    loss, logs = m.g_loss(batch, StepContext())
    a0, a1, a2 = fa.unbind(1)
    b0, b1, b2 = fb.unbind(1)

    def mse(x, t):
        return ((x - t) ** 2).mean()

    def l1(x, t):
        return (x - t).abs().mean()

    fb0, fb1, fa0, fa1 = m.G_AB(a0), m.G_AB(a1), m.G_BA(b0), m.G_BA(b1)
    fb2, fa2 = m.P_B(torch.cat([fb0, fb1], 1)), m.P_A(torch.cat([fa0, fa1], 1))
    pa2, pb2 = m.P_A(torch.cat([a0, a1], 1)), m.P_B(torch.cat([b0, b1], 1))
    want = (sum(mse(m.D_B(f), 1) for f in (fb0, fb1, fb2)) + sum(mse(m.D_A(f), 1) for f in (fa0, fa1, fa2))
            + 10 * l1(pa2, a2) + 10 * l1(pb2, b2) + 10 * l1(m.G_BA(fb2), a2) + 10 * l1(m.G_AB(fa2), b2))
    if adv_pred:
        want = want + mse(m.D_A(pa2), 1) + mse(m.D_B(pb2), 1)
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    assert ("g_gan_pred" in logs) == adv_pred and {"recurrent_a", "recycle_b"} <= set(logs)
    d, _ = m.d_loss(batch, StepContext())

    def pair(D, real, fake):
        return (mse(D(real), 1) + mse(D(fake), 0)) / 2

    want_d = (pair(m.D_B, b0, fb0) + pair(m.D_B, b1, fb1) + pair(m.D_B, b2, fb2) + pair(m.D_B, b2, pb2)
              + pair(m.D_A, a0, fa0) + pair(m.D_A, a1, fa1) + pair(m.D_A, a2, fa2) + pair(m.D_A, a2, pa2))
    torch.testing.assert_close(d, want_d, rtol=1e-12, atol=0)


def test_jitter_crops_every_frame_of_a_run_alike():
    m = build("recyclegan", sample_shape=[1, 16, 16], **TINY)
    still = clips(4, side=16, seed=3)[:, :1].expand(-1, 3, -1, -1, -1).float()  # a run of three equal frames
    torch.manual_seed(0)
    (a0, a1, a2), (b0, _, b2) = m.runs(Batch(frames=still, target_frames=still))
    assert torch.equal(a0, a1) and torch.equal(a1, a2) and torch.equal(b0, b2)
    assert not torch.equal(a0, still[:, 0])  # jittered


def test_translate_predict_and_grids():
    m = build("recyclegan", sample_shape=[1, 8, 8], **TINY).eval()
    x = clips(2, t=4).float()
    y = m.translate(x)
    assert y.shape == (2, 4, 1, 8, 8)
    torch.testing.assert_close(y[:, 2], m.translate(x[:, 2]))
    assert m.predict(x[:, 0], x[:, 1], domain="B").shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="domain"):
        m.predict(x[:, 0], x[:, 1], domain="C")
    batch = Batch(frames=x, target_frames=clips(2, t=4, seed=5).float())
    inputs = m.sample_inputs(2, batch=batch)
    assert torch.equal(inputs["condition"], x[:, 0])
    samples = m.sample(**inputs)
    grid, nrow = m.grid_images(samples, inputs, batch)
    assert nrow == 7 and grid.shape == (4 * 7, 1, 8, 8)
    torch.testing.assert_close(grid[3], m.translate(x[0, 0:1])[0])  # row 0: x0 x1 x2 | G(x0) ...
    with pytest.raises(ValueError, match="frames"):
        m.sample_inputs(2, batch=Batch(image=x[:, 0]))


def test_trains_on_real_clips_through_the_trainer(tmp_path):
    from ganfast.train import TrainConfig, Trainer

    ds = ganfast.data.load("fashion-shoes-clips", image_size=8, num_samples=16, frames_per_sample=4)
    cfg = TrainConfig(model="recyclegan", data="fashion-shoes-clips", steps=2, batch_size=2, out=str(tmp_path),
                      progress=False, log_every=1, sample_every=2, checkpoint_every=2, grid_size=2,
                      model_options={**TINY, "pool_size": 2})
    t = Trainer(cfg, dataset=ds)
    t.fit()
    assert len(t.history) == 2 and all(math.isfinite(v) for v in t.history[-1].values())
    assert list((tmp_path / "samples").glob("*.png"))
    assert t.model.pools["A"].count == 2  # pool of 2, filled by the first D phase's fakes


def test_grids_take_runs_spread_over_the_dataset():
    m = build("recyclegan", sample_shape=[1, 8, 8], **TINY)
    assert m.grid_indices(4, 100).tolist() == [0, 33, 66, 99]
    assert m.grid_indices(8, 3).tolist() == [0, 1, 2]
    assert build("cyclegan", sample_shape=[1, 8, 8], **TINY).grid_indices(3, 100).tolist() == [0, 1, 2]
