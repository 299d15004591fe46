"""Evaluation during training: FID/KID with a user feature extractor, mode coverage, the best checkpoint."""

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from ganfast.data import GANDataset
from ganfast.metrics import mode_coverage
from ganfast.train import TrainConfig, Trainer
from ganfast.train.checkpoint import load_checkpoint
from ganfast.train.log import read_metrics

import scipy.linalg as scipy_linalg  # noqa: E402  (the test extra)


def images(n=96, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny", torch.rand(n, 1, side, side, generator=g) * 2 - 1)


class Plain(nn.Module):
    """A fixed random conv net: images in [0, 1] (N, 1, 8, 8) -> (N, 6) features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(123)
        self.conv = nn.Conv2d(1, 6, 3, stride=2)

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean((2, 3))


class Features(Plain):
    def forward(self, x):
        assert x.min() >= 0 and x.max() <= 1  # the evaluator maps [-1, 1] samples to [0, 1]
        return super().forward(x)


def scipy_fid(a, b):
    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_and_kid_during_training_with_a_user_feature_extractor(tmp_path):
    net = Features()
    cfg = TrainConfig(model="dcgan", data="tiny", steps=4, batch_size=8, out=str(tmp_path), progress=False,
                      log_every=1, eval_every=2, eval_samples=64, sample_every=100, model_options={"width": 4})
    t = Trainer(cfg, dataset=images(), feature_extractor=net)
    summary = t.fit()
    rows = read_metrics(tmp_path / "metrics.csv")
    evaluated = [r for r in rows if "fid" in r and r["fid"] == r["fid"]]
    assert [r["step"] for r in evaluated] == [2, 4]
    assert all(r["fid"] > 0 and np.isfinite(r["kid"]) for r in evaluated)
    # the number logged is the Frechet distance of these features, as SciPy computes it
    nets = {**t.model.networks(), **t.sample_networks()}
    for m in nets.values():
        m.eval()
    fake = t.evaluator.generate(t.model, nets)
    assert fake.shape == (64, 1, 8, 8)
    with torch.no_grad():
        real_f = t.evaluator.real_features()
        fake_f = net((fake + 1) / 2).double()
    assert evaluated[-1]["fid"] == pytest.approx(scipy_fid(real_f, fake_f), rel=1e-6)
    best = summary["best"]
    assert best["metric"] == "fid" and best["value"] == min(r["fid"] for r in evaluated)
    state = load_checkpoint(str(tmp_path / "checkpoints" / "best.pt"))
    assert state["step"] == best["step"] and state["best"] == best


def test_mode_coverage_during_training_and_exact_resume_with_evaluation(tmp_path):
    def run(out):
        cfg = TrainConfig(model="wgan-gp", data="ring8", num_samples=2000, steps=6, batch_size=64, out=str(out),
                          progress=False, log_every=1, eval_every=3, eval_samples=400, checkpoint_every=3,
                          sample_every=100, model_options={"hidden": [16, 16]})
        return Trainer(cfg)
    a = run(tmp_path / "a")
    a.fit()
    rows = read_metrics(tmp_path / "a" / "metrics.csv")
    ev = [r for r in rows if r.get("modes_covered") == r.get("modes_covered") and "modes_covered" in r]
    assert [r["step"] for r in ev if r["modes_covered"] == r["modes_covered"]] == [3, 6]
    # the logged coverage is mode_coverage of the EMA generator's samples from the evaluator's latents
    g = torch.Generator().manual_seed(0 + 777)
    z = a.model.sample_latent(400, generator=g)
    cov = mode_coverage(a.sample(latent=z), a.dataset)
    assert rows[-1]["high_quality"] == pytest.approx(cov.high_quality) and rows[-1]["modes_covered"] == cov.modes_covered
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = run(tmp_path / "b")
    assert b.resume(str(tmp_path / "b" / "checkpoints" / "ckpt-00000003.pt"))
    b.fit()
    ra, rb = rows, read_metrics(tmp_path / "b" / "metrics.csv")
    for x, y in zip(ra, rb):
        for k in x:
            if k != "images_per_s":
                assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), (x["step"], k)  # NaN: not logged there


def test_evaluation_errors(tmp_path):
    with pytest.raises(ValueError, match="coverage.*mixture"):
        Trainer(TrainConfig(model="dcgan", data="tiny", eval_every=2, eval_metrics=["coverage"], out=str(tmp_path),
                            model_options={"width": 4}), dataset=images())
    with pytest.raises(FileNotFoundError, match="pt_inception"):
        Trainer(TrainConfig(model="dcgan", data="tiny", eval_every=2, out=str(tmp_path), model_options={"width": 4}),
                dataset=images())
    with pytest.raises(FileNotFoundError, match="no such file"):
        Trainer(TrainConfig(model="dcgan", data="tiny", eval_every=2, eval_features=str(tmp_path / "nope.pt"),
                            out=str(tmp_path), model_options={"width": 4}), dataset=images())
    with pytest.raises(ValueError, match="eval_metrics"):
        TrainConfig(eval_metrics=["is"]).validate()
    with pytest.raises(ValueError, match="best_metric"):
        TrainConfig(best_metric="loss").validate()
    with pytest.raises(ValueError, match="FID and KID compare images"):
        Trainer(TrainConfig(model="gan", data="ring8", num_samples=500, eval_every=2, eval_metrics=["fid"],
                            out=str(tmp_path)))


def test_cli_eval_with_an_exported_feature_extractor(tmp_path):
    from test_train import ganfast, npz_digits
    script = tmp_path / "features.pt2"
    batch = torch.export.Dim("batch", min=2)
    prog = torch.export.export(Plain(), (torch.rand(4, 1, 8, 8),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(prog, str(script))
    data = npz_digits(tmp_path / "d.npz", n=64)
    out = tmp_path / "run"
    ganfast("train", "--model", "dcgan", "--data", data, "--steps", 2, "--batch-size", 8, "--out", out,
            "-o", "width=4", "--no-progress", "--eval-every", 2, "--eval-samples", 32, "--eval-features", script,
            "--log-every", 1)
    rows = read_metrics(out / "metrics.csv")
    assert rows[-1]["step"] == 2 and rows[-1]["fid"] > 0 and "kid" in rows[-1]
    assert (out / "checkpoints" / "best.pt").exists()
    bad = ganfast("train", "--model", "dcgan", "--data", data, "--steps", 2, "--batch-size", 8, "--out", out,
                  "-o", "width=4", "--no-progress", "--eval-every", 2, "--eval-metrics", "fid,bogus", check=False)
    assert bad.returncode == 2 and "--eval-metrics" in bad.stderr and "bogus" in bad.stderr
