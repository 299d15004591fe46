"""ganfast.metrics.mode_coverage on constructed samples whose answer is known by hand."""

import dataclasses

import numpy as np
import pytest
import torch

import ganfast.data as gd
from ganfast.metrics import ModeCoverage, mode_coverage
from ganfast.metrics.mode_coverage import default_min_samples

RING_STD = 0.02


def _ring_modes():
    return gd.mixture_modes("ring8")[0]


def test_perfect_generator_covers_all_modes():
    samples = _ring_modes().repeat(10, 1)  # 10 points exactly on each centre
    r = mode_coverage(samples, "ring8")
    assert (r.modes_covered, r.num_modes, r.high_quality, r.num_samples) == (8, 8, 1.0, 80)
    assert r.counts == [10] * 8 and r.min_samples == 1


def test_true_mixture_sample():
    ds = gd.load("grid25", num_samples=2500, seed=5)
    r = mode_coverage(ds.tensors[0], ds)
    assert r.modes_covered == 25 and r.min_samples == 20 and sum(r.counts) == round(r.high_quality * 2500)
    # A 2-D Gaussian lies within 3 std of its mean with probability 1 - exp(-9/2) = 0.9889.
    assert abs(r.high_quality - 0.9889) < 0.01
    assert mode_coverage(ds.tensors[0].numpy(), "grid25") == r


def test_collapsed_generator(gen):
    centre = _ring_modes()[3]
    samples = centre + RING_STD * 0.5 * torch.randn(1000, 2, generator=gen)
    r = mode_coverage(samples, "ring8")
    assert r.modes_covered == 1 and r.counts[3] == sum(r.counts) and r.counts[3] > 990
    assert str(r).startswith("1/8 modes covered")


def test_boundary_of_high_quality():
    centre = _ring_modes()[0].double()
    radius = 3 * RING_STD
    # along the tangent (the y axis at (2, 0)), so the point stays nearest to mode 0
    inside = (centre + torch.tensor([0.0, radius * (1 - 1e-6)])).unsqueeze(0)
    outside = (centre + torch.tensor([0.0, radius * (1 + 1e-6)])).unsqueeze(0)
    assert mode_coverage(inside, "ring8").counts[0] == 1
    r = mode_coverage(outside, "ring8")
    assert r.counts[0] == 0 and r.high_quality == 0.0 and r.modes_covered == 0
    # num_std scales the radius
    assert mode_coverage(outside, "ring8", num_std=3.1).counts[0] == 1
    assert mode_coverage(inside, "ring8", num_std=2.9).counts[0] == 0


def test_min_samples_threshold_edge():
    modes = _ring_modes()
    junk = torch.zeros(2500 - 39, 2)  # the origin is 2 from every mode: low quality
    samples = torch.cat([modes[0].repeat(20, 1), modes[1].repeat(19, 1), junk])
    r = mode_coverage(samples, "ring8")
    assert r.min_samples == 20  # PacGAN: 20 of 2500
    assert r.counts[:2] == [20, 19] and r.modes_covered == 1
    assert r.high_quality == pytest.approx(39 / 2500)
    assert mode_coverage(samples, "ring8", min_samples=19).modes_covered == 2
    assert mode_coverage(samples, "ring8", min_samples=21).modes_covered == 0


@pytest.mark.parametrize("n, expected", [(1, 1), (125, 1), (126, 2), (2500, 20), (2501, 21), (10_000, 80)])
def test_default_min_samples(n, expected):
    assert default_min_samples(n) == expected


def test_result_formatting():
    modes = _ring_modes()
    samples = torch.cat([modes.repeat(973 // 8 + 1, 1)[:973], torch.zeros(27, 2)])
    r = mode_coverage(samples, "ring8")
    assert str(r) == "8/8 modes covered, 97.3% high-quality samples (1000 samples)"
    d = r.as_dict()
    assert d == dict(modes_covered=8, num_modes=8, high_quality=0.973, counts=r.counts, num_samples=1000,
                     min_samples=8)
    d["counts"].append(0)
    assert len(r.counts) == 8  # as_dict copies
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.modes_covered = 0
    assert isinstance(r, ModeCoverage)


def test_dataset_and_tensor_kinds():
    ds = gd.load("ring8", num_samples=800)
    x = ds.tensors[0].clone().requires_grad_(True)
    assert mode_coverage(x, ds) == mode_coverage(x.detach().numpy().astype(np.float64), "ring8")


@pytest.mark.parametrize(
    "samples, match",
    [
        (torch.zeros(10, 3), r"\(N, 2\)"),
        (torch.zeros(10), r"\(N, 2\)"),
        (torch.zeros(0, 2), "empty"),
        (torch.tensor([[0.0, float("nan")]]), "non-finite"),
        (np.array([[np.inf, 0.0]]), "non-finite"),
    ],
)
def test_bad_samples(samples, match):
    with pytest.raises(ValueError, match=match) as info:
        mode_coverage(samples, "ring8")
    assert "samples" in str(info.value)


def test_bad_arguments():
    ok = torch.zeros(4, 2)
    with pytest.raises(TypeError, match="samples"):
        mode_coverage([[0.0, 0.0]], "ring8")
    for num_std in (0, -1.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValueError, match="num_std"):
            mode_coverage(ok, "ring8", num_std=num_std)
    for min_samples in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="min_samples"):
            mode_coverage(ok, "ring8", min_samples=min_samples)
    with pytest.raises(ValueError, match="ring8, grid25"):
        mode_coverage(ok, "digits")
    no_modes = gd.GANDataset("pts", torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no mode centres"):
        mode_coverage(ok, no_modes)
