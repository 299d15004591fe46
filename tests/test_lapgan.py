"""LAPGAN: the Laplacian pyramid reconstructs exactly; the levels train independently; sampling runs coarse to
fine; the losses against a float64 re-derivation."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganfast.data import Batch, gaussian_pyramid, laplacian_pyramid, reconstruct_pyramid
from ganfast.data.pyramid import downsample2x, upsample2x
from ganfast.models import StepContext, build

TINY = {"width_g": 4, "width_d": 4, "hidden_g": [16], "hidden_d": [16], "latent_dim": 8}


def images(n, c=1, side=32, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, side, side, generator=g, dtype=dtype) * 2 - 1


def test_down_and_up_are_box_average_and_bilinear():
    x = images(2, 3, 8)
    want = torch.stack([x[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]).mean(0)
    torch.testing.assert_close(downsample2x(x), want, rtol=1e-15, atol=1e-15)
    # bilinear x2, align_corners=False: interior output 2i+1 (rows) mixes inputs i and i+1 as 3/4, 1/4
    y = upsample2x(x)
    torch.testing.assert_close(y[..., 3, :][..., 1::2][..., :-1],
                               (0.75 * x[..., 1, :] + 0.25 * x[..., 2, :])[..., :-1] * 0.75
                               + (0.75 * x[..., 1, :] + 0.25 * x[..., 2, :])[..., 1:] * 0.25)
    with pytest.raises(ValueError, match="even sides"):
        downsample2x(images(1, 1, 5))


@pytest.mark.parametrize("levels", [0, 1, 3])
def test_laplacian_pyramid_reconstructs_exactly(levels):
    x = images(3, 3, 32, seed=levels)
    pyr = laplacian_pyramid(x, levels)
    assert [p.shape[-1] for p in pyr] == [32 // 2 ** k for k in range(levels + 1)]
    torch.testing.assert_close(reconstruct_pyramid(pyr), x, rtol=0, atol=4e-16)  # a rounding or two per level
    g = gaussian_pyramid(x, levels)
    assert torch.equal(pyr[-1], g[-1])
    if levels:
        # band-pass: the finest level of a constant image is 0; of an image, small next to the image
        assert laplacian_pyramid(torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64), 1)[0].abs().max() < 1e-15


def test_pyramid_errors():
    with pytest.raises(ValueError, match="multiples of 8"):
        laplacian_pyramid(images(1, 1, 12), 3)
    with pytest.raises(ValueError, match="levels"):
        gaussian_pyramid(images(1, 1, 8), -1)
    with pytest.raises(ValueError, match="twice"):
        reconstruct_pyramid([images(1, 1, 8), images(1, 1, 8)])
    with pytest.raises(ValueError, match="floating"):
        downsample2x(torch.zeros(1, 1, 4, 4, dtype=torch.int64))


def test_networks_by_level_and_bad_options():
    m = build("lapgan", sample_shape=[1, 32, 32], **TINY)
    assert m.sides == [8, 16, 32]
    assert set(m.networks()) == {"G8", "D8", "G16", "D16", "G32", "D32"}
    assert m.trains() == {"G": ("G8", "G16", "G32"), "D": ("D8", "D16", "D32")}
    with pytest.raises(ValueError, match="power of two"):
        build("lapgan", sample_shape=[1, 32, 32], coarsest=12, **TINY)
    with pytest.raises(ValueError, match="coarsest >= 8"):
        build("lapgan", sample_shape=[1, 32, 32], coarsest=4, **TINY)


def test_losses_match_a_float64_rederivation():
    """Each level on the real pyramid: D_8 on I_8, D_r on (h_r, u(I_{r/2})); the fakes from the same noise."""
    torch.manual_seed(0)
    m = build("lapgan", sample_shape=[1, 32, 32], dropout=0.0, **TINY).double()
    x = images(4, seed=3)
    torch.manual_seed(1)
    d, logs = m.d_loss(Batch(image=x), StepContext())
    torch.manual_seed(1)  # the same noise draws, in the same order (z, then a plane per finer level)
    g8, g16 = downsample2x(downsample2x(x)), downsample2x(x)

    def bce(logit, t):
        return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, float(t)))

    z = (torch.rand(4, 8) * 2 - 1).double()  # drawn in float32, as the method draws it
    want = bce(m.D8(g8), 1) + bce(m.D8(m.G8(z)), 0)
    for side, fine, coarse in ((16, g16, g8), (32, x, g16)):
        low = upsample2x(coarse)
        noise = (torch.rand(4, 1, side, side) * 2 - 1).double()
        G, D = getattr(m, f"G{side}"), getattr(m, f"D{side}")
        want = want + bce(D(fine - low, low), 1) + bce(D(G(noise, low), low), 0)
    torch.testing.assert_close(d, want, rtol=1e-12, atol=0)
    assert {"d_loss_8", "d_loss_16", "d_loss_32"} <= set(logs)


def test_levels_train_independently():
    """Each level is conditioned on the real pyramid: changing G8 and G16 leaves the 32x32 level's loss as it was."""
    m = build("lapgan", sample_shape=[1, 32, 32], dropout=0.0, **TINY)
    batch = Batch(image=images(2, dtype=torch.float32))
    torch.manual_seed(5)
    before = m.g_loss(batch, StepContext())[1]
    with torch.no_grad():
        for p in list(m.G8.parameters()) + list(m.G16.parameters()):
            p.add_(torch.randn_like(p))
    torch.manual_seed(5)
    after = m.g_loss(batch, StepContext())[1]
    assert torch.equal(after["g_loss_32"], before["g_loss_32"])
    assert not torch.equal(after["g_loss_8"], before["g_loss_8"])


def test_sampling_runs_coarse_to_fine_and_is_seeded():
    m = build("lapgan", sample_shape=[1, 32, 32], **TINY).eval()
    inputs = m.sample_inputs(3, generator=torch.Generator().manual_seed(0))
    chain = m.sample_levels(latent=inputs["latent"], noise=inputs["noise"])
    assert [c.shape for c in chain] == [(3, 1, 8, 8), (3, 1, 16, 16), (3, 1, 32, 32)]
    assert [p.shape for p in inputs["noise"]] == [(3, 1, 16, 16), (3, 1, 32, 32)]
    torch.testing.assert_close(chain[0], m.G8(inputs["latent"]))
    low = upsample2x(chain[0])
    torch.testing.assert_close(chain[1], low + m.G16(inputs["noise"][0], low))  # eq. 2: u(I~_8) + G_16(n, u(I~_8))
    s = m.sample(**inputs)
    assert torch.equal(s, chain[-1].clamp(-1, 1)) and torch.equal(s, m.sample(**inputs))
    # every sample's randomness is in its own rows: a slice of the inputs gives the same images
    part = m.sample(latent=inputs["latent"][1:], noise=[p[1:] for p in inputs["noise"]])
    torch.testing.assert_close(part, s[1:], rtol=1e-5, atol=1e-6)
    # a noise seed still fixes the planes when none are given
    g = torch.Generator().manual_seed(7)
    seeded = m.sample_levels(latent=inputs["latent"], noise_seed=7)
    plane = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
    torch.testing.assert_close(seeded[1], low + m.G16(plane, low))
    grid, nrow = m.grid_images(s, inputs)
    assert nrow == 3 and grid.shape == (9, 1, 32, 32) and torch.equal(grid.view(3, 3, 1, 32, 32)[:, 2], s)
    with pytest.raises(ValueError, match="noise must be one plane per finer level"):
        m.sample(latent=inputs["latent"], noise=inputs["noise"][:1])
    with pytest.raises(ValueError, match="latent"):
        m.sample(2, latent=inputs["latent"])


def test_trains_on_fashion_mnist_through_the_trainer(tmp_path):
    import ganfast
    from ganfast.train import TrainConfig, Trainer

    ds = ganfast.data.load("fashion-mnist", num_samples=64)
    cfg = TrainConfig(model="lapgan", data="fashion-mnist", steps=3, batch_size=8, out=str(tmp_path), progress=False,
                      log_every=1, sample_every=3, checkpoint_every=3, grid_size=2, model_options=TINY)
    t = Trainer(cfg, dataset=ds)
    t.fit()
    assert len(t.history) == 3 and all(math.isfinite(v) for v in t.history[-1].values())
    assert list((tmp_path / "samples").glob("*.png"))
