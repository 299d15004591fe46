"""frechet_distance, FeatureStats, inception_score, kernel_inception_distance and FID, in float64."""

import warnings

import numpy as np
import pytest
import torch

from ganfast.metrics import FID, FeatureStats, frechet_distance, inception_score, kernel_inception_distance

import scipy.linalg as scipy_linalg  # noqa: E402  (the test extra)


def _feats(n, d, gen, mean=0.0, scale=1.0, dtype=torch.float64):
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64) / d ** 0.5
    x = (torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix).relu() * scale + mean
    return x.to(dtype)


def _stats(x):
    x = x.double().numpy()
    return x.mean(0), np.cov(x, rowvar=False)


def _scipy_fd(mu1, s1, mu2, s2):
    """pytorch-fid's formula, as SciPy users compute it."""
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# -- frechet_distance ---------------------------------------------------------------------


@pytest.mark.parametrize("d", [8, 64])
def test_frechet_distance_matches_scipy(d, gen):
    a, b = _feats(400, d, gen), _feats(300, d, gen, mean=0.1, scale=1.2)
    args = (*_stats(a), *_stats(b))
    want = _scipy_fd(*args)
    got = frechet_distance(*args)
    assert isinstance(got, float)
    assert abs(got - want) <= 1e-9 * abs(want)


def test_frechet_distance_rank_deficient_against_exact_arithmetic():
    """Fewer samples than dimensions, exactly: 60-digit eigenvalues of the product as the reference."""
    import mpmath
    rng = np.random.default_rng(7)
    d = 14
    a, b = rng.integers(-2, 3, size=(d, 5)).astype(float), rng.integers(-2, 3, size=(d, 9)).astype(float)
    s1, s2 = a @ a.T, b @ b.T
    mu1, mu2 = rng.integers(-5, 6, size=d).astype(float), rng.integers(-5, 6, size=d).astype(float)
    with mpmath.workdps(60):
        ev = mpmath.eig(mpmath.matrix(s1.tolist()) * mpmath.matrix(s2.tolist()), left=False, right=False)
        tr = sum(mpmath.sqrt(mpmath.re(e)) for e in ev if mpmath.re(e) > 0)
        exact = float(mpmath.mpf(float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2))) - 2 * tr)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert abs(got - exact) <= 1e-12 * abs(exact)


def test_frechet_distance_closed_form_diagonal(gen):
    m1, m2 = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    v1, v2 = torch.rand(50, generator=gen, dtype=torch.float64), torch.rand(50, generator=gen, dtype=torch.float64)
    v1[::5] = 0.0
    want = float(((m1 - m2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())
    assert frechet_distance(m1, torch.diag(v1), m2, torch.diag(v2)) == pytest.approx(want, rel=1e-12)


def test_frechet_distance_identical_is_zero(gen):
    mu, s = _stats(_feats(50, 80, gen))  # singular: 50 samples, 80 dimensions
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-10 * np.trace(s))
    assert frechet_distance(mu, s, mu, s) >= 0.0


def test_frechet_distance_accepts_numpy_tensors_and_mixes(gen):
    mu1, s1 = _stats(_feats(200, 16, gen))
    mu2, s2 = _stats(_feats(150, 16, gen, mean=0.3))
    want = frechet_distance(mu1, s1, mu2, s2)
    t = torch.from_numpy
    assert frechet_distance(t(mu1), t(s1), t(mu2), t(s2)) == want
    assert frechet_distance(t(mu1).float(), s1, mu2.tolist(), t(s2).float()) == pytest.approx(want, rel=1e-5)
    assert frechet_distance(mu1.astype(np.float32), s1, mu2, s2, method="eigh") == pytest.approx(want, rel=1e-5)


def test_frechet_distance_float32_statistics_stored_as_float64_are_accepted(gen):
    """Covariances computed in float32 are PSD only to rounding; that must not be an error."""
    x = _feats(40, 64, gen, dtype=torch.float32)  # rank 39
    xc = x - x.mean(0)
    s = (xc.T @ xc / 39).double()
    s = (s + s.T) / 2
    mu = x.double().mean(0)
    assert frechet_distance(mu, s, mu + 1, s) == pytest.approx(64.0, rel=1e-4)


def test_frechet_distance_bad_inputs(gen):
    mu, s = _stats(_feats(100, 6, gen))
    with pytest.raises(ValueError, match=r"mu1 must be a 1-D vector"):
        frechet_distance(mu[None], s, mu, s)
    with pytest.raises(ValueError, match=r"mu2 must have shape \(6,\)"):
        frechet_distance(mu, s, mu[:5], s)
    with pytest.raises(ValueError, match="sigma1 must be a square matrix"):
        frechet_distance(mu, s[:5], mu, s)
    with pytest.raises(ValueError, match=r"sigma2 must have shape \(6, 6\)"):
        frechet_distance(mu, s, mu, np.eye(7))
    bad = s.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="sigma2 holds 1 NaN or infinite value"):
        frechet_distance(mu, s, mu, bad)
    mu_inf = mu.copy()
    mu_inf[0] = np.inf
    with pytest.raises(ValueError, match="mu1 holds"):
        frechet_distance(mu_inf, s, mu, s)
    asym = s.copy()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="sigma1 must be a symmetric covariance"):
        frechet_distance(mu, asym, mu, s)
    with pytest.raises(ValueError, match="sigma2 is not positive semidefinite"):
        frechet_distance(mu, s, mu, s - 2 * np.eye(6) * np.trace(s))
    with pytest.raises(ValueError, match="sigma1 is not positive semidefinite"):
        frechet_distance(mu, -s, mu, -s)
    with pytest.raises(TypeError, match="sigma1 must be a torch.Tensor or a numpy array"):
        frechet_distance(mu, "s", mu, s)
    with pytest.raises(TypeError, match="mu2 must hold real numbers"):
        frechet_distance(mu, s, mu.astype(np.complex128), s)
    with pytest.raises(ValueError, match="method must be one of"):
        frechet_distance(mu, s, mu, s, method="scipy")


# -- FeatureStats -------------------------------------------------------------------------


def test_feature_stats_uneven_batches_match_numpy_cov(gen):
    x = _feats(1001, 37, gen, dtype=torch.float32)
    stats = FeatureStats()
    start = 0
    for size in (1, 2, 500, 77, 300, 121):
        stats.update(x[start:start + size])
        start += size
    assert stats.count == 1001 and stats.num_features == 37
    mu, sigma = _stats(x)
    np.testing.assert_allclose(stats.mean().numpy(), mu, rtol=1e-13, atol=0)
    np.testing.assert_allclose(stats.covariance().numpy(), sigma, rtol=0, atol=1e-13 * np.abs(sigma).max())
    np.testing.assert_allclose(stats.covariance(ddof=0).numpy(), np.cov(x.double().numpy(), rowvar=False, ddof=0),
                               rtol=0, atol=1e-13 * np.abs(sigma).max())
    mu_np, sigma_np = stats.mu_sigma()
    assert mu_np.dtype == np.float64 and sigma_np.shape == (37, 37)


def test_feature_stats_large_means(gen):
    """Features ~1e4 with std ~1 in float32: the covariance keeps every digit (raw float32 sums keep none)."""
    x = (torch.randn(6000, 48, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 2, 48, dtype=torch.float64)
         + 1e4 * (1 + torch.rand(48, generator=gen, dtype=torch.float64))).float()
    stats = FeatureStats()
    for batch in x.split(512):
        stats.update(batch)
    mu, sigma = _stats(x)  # numpy float64 two-pass
    got = stats.covariance().numpy()
    assert np.abs(got - sigma).max() <= 1e-9 * np.abs(sigma).max()
    assert np.abs(stats.mean().numpy() - mu).max() <= 1e-12 * np.abs(mu).max()
    # what the shift avoids: float32 raw sums
    xs = x.float()
    naive = (xs.T @ xs / 6000 - torch.outer(xs.mean(0), xs.mean(0))).double().numpy() * 6000 / 5999
    assert np.abs(naive - sigma).max() > 1e-2 * np.abs(sigma).max()


def test_feature_stats_merge_equals_concatenation(gen):
    a, b = _feats(300, 20, gen, mean=5.0), _feats(211, 20, gen, mean=5.5, scale=2.0)
    sa, sb = FeatureStats().update(a), FeatureStats()
    for batch in b.split(50):
        sb.update(batch)
    merged = sa.copy().merge(sb)
    mu, sigma = _stats(torch.cat([a, b]))
    assert merged.count == 511
    np.testing.assert_allclose(merged.mean().numpy(), mu, rtol=1e-13)
    np.testing.assert_allclose(merged.covariance().numpy(), sigma, rtol=0, atol=1e-12 * np.abs(sigma).max())
    assert FeatureStats().merge(sa).count == sa.count  # into empty
    assert sa.copy().merge(FeatureStats()).count == sa.count  # empty into


def test_feature_stats_accepts_pool_output_and_numpy(gen):
    x = _feats(30, 8, gen)
    s1 = FeatureStats().update(x[:, :, None, None]).update(x.numpy())
    assert s1.count == 60
    torch.testing.assert_close(s1.mean(), x.mean(0), rtol=1e-13, atol=0)


def test_feature_stats_npz_round_trip_and_pytorch_fid_format(tmp_path, gen):
    x = _feats(120, 10, gen)
    stats = FeatureStats().update(x)
    path = tmp_path / "stats.npz"
    stats.save(path)
    assert path.exists()
    with np.load(path) as f:  # what pytorch-fid reads
        np.testing.assert_array_equal(f["mu"], stats.mean().numpy())
        np.testing.assert_array_equal(f["sigma"], stats.covariance().numpy())
        assert f["mu"].dtype == np.float64 and int(f["num_samples"]) == 120
    back = FeatureStats.load(path)
    assert back.count == 120 and back.mergeable
    torch.testing.assert_close(back.covariance(), stats.covariance(), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(back.mean(), stats.mean(), rtol=0, atol=0)
    # it keeps accumulating exactly
    y = _feats(80, 10, gen)
    back.update(y)
    mu, sigma = _stats(torch.cat([x, y]))
    np.testing.assert_allclose(back.covariance().numpy(), sigma, rtol=0, atol=1e-12 * np.abs(sigma).max())
    # pytorch-fid's own files: mu and sigma only; usable, not mergeable
    only = tmp_path / "pytorch_fid.npz"
    np.savez_compressed(only, mu=mu, sigma=sigma)
    fixed = FeatureStats.load(only)
    assert not fixed.mergeable
    np.testing.assert_array_equal(fixed.covariance().numpy(), sigma)
    with pytest.raises(ValueError, match="without a sample count"):
        fixed.update(y)
    with pytest.raises(ValueError, match="without a sample count"):
        FeatureStats().update(y).merge(fixed)


def test_feature_stats_errors(tmp_path, gen):
    s = FeatureStats()
    with pytest.raises(ValueError, match="needs at least 1 sample"):
        s.mean()
    s.update(_feats(1, 5, gen))
    with pytest.raises(ValueError, match="needs at least 2 samples"):
        s.covariance()
    with pytest.raises(ValueError, match="features must have 5 columns"):
        s.update(torch.randn(3, 6))
    with pytest.raises(ValueError, match=r"features must have shape \(N, d\)"):
        s.update(torch.randn(3, 5, 2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        s.update(torch.tensor([[1.0, 2.0, float("nan"), 4.0, 5.0]]))
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(ValueError, match="needs the keys 'mu' and 'sigma'"):
        FeatureStats.load(bad)
    with pytest.raises(FileNotFoundError):
        FeatureStats.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        FeatureStats.load(junk)


def test_feature_stats_state_dict(gen):
    x = _feats(90, 7, gen)
    s = FeatureStats().update(x[:50])
    r = FeatureStats().load_state_dict(s.state_dict())
    r.update(x[50:])
    torch.testing.assert_close(r.covariance(), FeatureStats().update(x).covariance(), rtol=1e-13, atol=1e-15)


def test_feature_stats_all_reduce_without_a_process_group_is_a_no_op(gen):
    s = FeatureStats().update(_feats(10, 3, gen))
    c = s.covariance()
    assert s.all_reduce() is s and torch.equal(s.covariance(), c)


# -- Inception Score ----------------------------------------------------------------------


def _is_numpy(logits: np.ndarray, splits: int):
    """The reference formula, directly (float64)."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    part = len(p) // splits
    scores = []
    for k in range(splits):
        q = p[k * part:(k + 1) * part]
        py = q.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(q * (np.log(q) - np.log(py)), 1))))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_direct_formula(gen):
    logits = torch.randn(503, 17, generator=gen, dtype=torch.float64) * 3
    mean, std = inception_score(logits, splits=10)
    want = _is_numpy(logits.numpy(), 10)
    assert mean == pytest.approx(want[0], rel=1e-12) and std == pytest.approx(want[1], rel=1e-9)
    probs = torch.softmax(logits, 1)
    assert inception_score(probs.numpy(), splits=10) == pytest.approx((mean, std), rel=1e-10)
    assert inception_score(logits.float(), splits=10)[0] == pytest.approx(mean, rel=1e-5)


def test_inception_score_closed_forms():
    assert inception_score(torch.zeros(40, 9), splits=4) == (pytest.approx(1.0, abs=1e-14), pytest.approx(0.0))
    assert inception_score(torch.full((40, 9), 1 / 9), splits=4, kind="probs")[0] == pytest.approx(1.0, abs=1e-14)
    # every class equally often, each prediction certain: exp(log C) = C
    onehot = torch.eye(8).repeat(5, 1)
    mean, std = inception_score(onehot, splits=5)
    assert mean == pytest.approx(8.0, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_bad_inputs():
    with pytest.raises(ValueError, match="fewer than splits=10"):
        inception_score(torch.randn(5, 3))
    with pytest.raises(ValueError, match="splits must be a positive int"):
        inception_score(torch.randn(5, 3), splits=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        inception_score(torch.tensor([[0.0, float("nan")]] * 4), splits=2)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\] with rows summing to 1"):
        inception_score(torch.randn(10, 3), splits=2, kind="probs")
    with pytest.raises(ValueError, match=r"preds must have shape \(N, d\)"):
        inception_score(torch.randn(10), splits=2)


# -- KID ----------------------------------------------------------------------------------


def _mmd_numpy(x, y):
    """Unbiased MMD^2 with (x.y/d + 1)^3, written out with loops-free numpy (float64)."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean())


def test_kid_matches_direct_formula(gen):
    x = _feats(60, 12, gen).numpy()
    y = _feats(45, 12, gen, mean=0.2).numpy()
    # subset_size is capped at min(60, 45) = 45; the subsets are those of a generator seeded with `seed`
    mean, std = kernel_inception_distance(x, y, num_subsets=3, subset_size=1000, seed=5)
    gen_t = torch.Generator().manual_seed(5)
    vals = []
    for _ in range(3):
        ix = torch.randperm(60, generator=gen_t)[:45].numpy()
        iy = torch.randperm(45, generator=gen_t)[:45].numpy()
        vals.append(_mmd_numpy(x[ix], y[iy]))
    assert mean == pytest.approx(np.mean(vals), rel=1e-12) and std == pytest.approx(np.std(vals), rel=1e-9)
    assert np.std(vals) > 0  # every y subset is all of y: the estimates differ through x's subsets
    # subsets as large as both sets are permutations of them: the one full-set estimate, std 0
    full = kernel_inception_distance(x[:45], y, num_subsets=4, subset_size=45)
    assert full[0] == pytest.approx(_mmd_numpy(x[:45], y), rel=1e-12) and full[1] < 1e-12 * abs(full[0])


def test_kid_same_distribution_is_near_zero_and_unbiased(gen):
    x = _feats(2000, 16, gen)
    y = _feats(2000, 16, gen, mean=0.3)  # another distribution
    x2 = x[torch.randperm(2000, generator=gen)]
    same, same_std = kernel_inception_distance(x[:1000], x2[1000:], num_subsets=20, subset_size=200, seed=1)
    diff, _ = kernel_inception_distance(x[:1000], y[:1000], num_subsets=20, subset_size=200, seed=1)
    assert abs(same) < 3 * same_std + 1e-12  # unbiased: centred on 0
    assert diff > 20 * max(abs(same), same_std)


def test_kid_is_reproducible_and_checks_inputs(gen):
    x, y = _feats(100, 5, gen), _feats(100, 5, gen, mean=0.5)
    assert kernel_inception_distance(x, y, 5, 50) == kernel_inception_distance(x, y, 5, 50)
    assert kernel_inception_distance(x, y, 5, 50, seed=1) != kernel_inception_distance(x, y, 5, 50, seed=2)
    with pytest.raises(ValueError, match="same number of features"):
        kernel_inception_distance(x, y[:, :4])
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_inception_distance(x[:1], y)
    with pytest.raises(ValueError, match="num_subsets must be a positive int"):
        kernel_inception_distance(x, y, num_subsets=0)


# -- FID ---------------------------------------------------------------------------------


class _Pool(torch.nn.Module):
    """A small user feature extractor: conv, ReLU, global average pool -> (N, 16, 1, 1)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(self.conv(x).relu(), 1)


def test_fid_with_a_user_extractor_matches_frechet_distance_of_features(gen):
    net = _Pool().double()
    fid = FID(feature_extractor=net)
    real = torch.rand(40, 3, 12, 12, generator=gen)
    fake = (torch.rand(30, 3, 12, 12, generator=gen) * 255).to(torch.uint8)
    for batch in real.split(16):
        fid.update(batch, real=True)
    fid.update(fake[:11], real=False).update(fake[11:], real=False)
    with torch.no_grad():  # images reach the network as float32 in [0, 1], then in its dtype
        fr = net(real.double()).flatten(1)
        ff = net((fake.float() / 255).double()).flatten(1)
    want = frechet_distance(*_stats(fr), *_stats(ff))
    assert fid.compute() == pytest.approx(want, rel=1e-10)
    assert fid.real.count == 40 and fid.fake.count == 30


def test_fid_features_reference_stats_and_reset(tmp_path, gen):
    a, b = _feats(300, 24, gen), _feats(200, 24, gen, mean=0.2)
    fid = FID()  # no extractor needed for features
    fid.update_features(a, real=True).update_features(b, real=False)
    want = frechet_distance(*_stats(a), *_stats(b))
    assert fid.compute() == pytest.approx(want, rel=1e-12)
    fid.real.save(tmp_path / "real.npz")
    again = FID(real_stats=tmp_path / "real.npz").update_features(b, real=False)
    assert again.compute() == pytest.approx(want, rel=1e-12)
    fid.reset(real=False)
    with pytest.raises(ValueError, match="at least 2 generated samples"):
        fid.compute()


def test_fid_rejects_images_outside_the_unit_range(gen):
    fid = FID(feature_extractor=_Pool())
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*\(x \+ 1\) / 2"):
        fid.update(torch.rand(2, 3, 8, 8) * 2 - 1, real=True)
    with pytest.raises(TypeError, match="real must be True"):
        fid.update(torch.rand(2, 3, 8, 8), real="yes")
    with pytest.raises(ValueError, match=r"must have shape \(N, C, H, W\)"):
        fid.update(torch.rand(3, 8, 8), real=True)
    bad = FID(feature_extractor=lambda x: x.mean())
    with pytest.raises(ValueError, match=r"must return \(N, d\) features"):
        bad.update(torch.rand(2, 3, 8, 8), real=True)


def test_fid_without_weights_says_which_file_and_where(monkeypatch, tmp_path):
    monkeypatch.delenv("GANFAST_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fid = FID()
    with pytest.raises(FileNotFoundError) as info:
        fid.update(torch.rand(2, 3, 8, 8), real=True)
    msg = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and "GANFAST_INCEPTION_WEIGHTS" in msg
    assert "never downloads" in msg and str(tmp_path) in msg


HALF_SWEEP = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("dtype, as_numpy", [(d, False) for d in HALF_SWEEP] +
                         [(d, True) for d in HALF_SWEEP if d != torch.bfloat16],  # numpy has no bfloat16
                         ids=lambda v: str(v) if not isinstance(v, bool) else ("numpy" if v else "torch"))
def test_inception_score_takes_half_precision_probabilities_and_logits(dtype, as_numpy):
    """Softmax probabilities rounded to float16 / bfloat16 sum to 1 only within ~3e-4 / ~2.3e-3 over 1008
    classes: they were taken for logits and softmaxed again, giving about 1.0 instead of about 29. Detected by
    the dtype's rounding now; logits of every dtype give the float64 score up to their own rounding."""
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(400, 1008, generator=g, dtype=torch.float64) * 4
    want, _ = inception_score(logits.to(dtype).double(), splits=4)  # the logits as this dtype holds them
    probs = torch.softmax(logits.to(dtype).float(), dim=1).to(dtype)
    if dtype in (torch.float16, torch.bfloat16):
        assert float((probs.double().sum(1) - 1).abs().max()) > 1e-4  # what the fixed 1e-4 test refused
    rel = {torch.float16: 3e-3, torch.bfloat16: 2e-2}.get(dtype, 1e-6)  # the softmax ran in float32
    conv = (lambda t: t.numpy()) if as_numpy else (lambda t: t)
    for kind in ("auto", "probs"):
        got, _ = inception_score(conv(probs), splits=4, kind=kind)
        assert got == pytest.approx(want, rel=rel), (kind, got, want)
    got, _ = inception_score(conv(logits.to(dtype)), splits=4)
    assert got == pytest.approx(want, rel=1e-9)
    assert want > 20  # far from the ~1 of a double softmax


def test_inception_score_refuses_probabilities_off_by_more_than_their_rounding():
    g = torch.Generator().manual_seed(12)
    probs = torch.softmax(torch.randn(20, 50, generator=g), dim=1)
    off = probs * 1.01  # rows sum to 1.01: not a rounding of any dtype here
    with pytest.raises(ValueError, match=r"rows summing to 1 \(within 0.0001 for torch.float32\); the worst row"):
        inception_score(off, splits=2, kind="probs")
    with pytest.raises(ValueError, match="within 0.0078"):
        inception_score(off.bfloat16() * 1.02, splits=2, kind="probs")


@pytest.mark.parametrize("dtype", HALF_SWEEP, ids=str)
def test_feature_metrics_take_every_float_dtype(dtype):
    """KID, FID statistics and FeatureStats on features of each dtype: the float64 results of the same
    (rounded) values, never an error or a silent cast of the wrong kind."""
    g = torch.Generator().manual_seed(13)
    a = (torch.randn(300, 16, generator=g, dtype=torch.float64) + 0.5).to(dtype)
    b = torch.randn(300, 16, generator=g, dtype=torch.float64).to(dtype)
    a64, b64 = a.double(), b.double()
    kid = kernel_inception_distance(a, b, num_subsets=5, subset_size=100)
    assert kid == pytest.approx(kernel_inception_distance(a64, b64, num_subsets=5, subset_size=100), rel=1e-9)
    sa = FeatureStats().update(a)
    torch.testing.assert_close(sa.mean(), a64.mean(0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(sa.covariance(), torch.cov(a64.T), rtol=1e-9, atol=1e-12)
    fid = FID(feature_extractor=lambda x: x)
    fid.update_features(a, real=True).update_features(b, real=False)
    want = frechet_distance(a64.mean(0), torch.cov(a64.T), b64.mean(0), torch.cov(b64.T))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 300 samples of 16-d features: no reliability warning
        assert fid.compute() == pytest.approx(want, rel=1e-9)
