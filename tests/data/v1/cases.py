"""Run tiny training jobs through the public Trainer API and dump every logged row (old and new code alike)."""
import json, sys, tempfile, os
import torch
from ganfast.data import GANDataset
from ganfast.train import TrainConfig, Trainer
from ganfast.train.log import read_metrics

def images(n=48, side=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny", torch.rand(n, 1, side, side, generator=g) * 2 - 1,
                      torch.randint(0, classes, (n,), generator=g), classes=[str(i) for i in range(classes)])

def points(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("pts", torch.randn(n, 2, generator=g))

IMG = {"width": 4, "latent_dim": 8}
PTS = {"hidden": [16, 16], "latent_dim": 4}
CASES = {
    "gan": ("gan", points, PTS, {}),
    "dcgan": ("dcgan", images, IMG, {}),
    "cgan": ("cgan", images, IMG, {}),
    "acgan": ("acgan", images, IMG, {}),
    "infogan": ("infogan", images, {"width": 4, "noise_dim": 4}, {}),
    "wgan": ("wgan", images, IMG, {}),
    "wgan-gp": ("wgan-gp", points, PTS, {"lr_schedule": "linear"}),
    "lsgan": ("lsgan", images, IMG, {}),
    "sngan": ("sngan", images, IMG, {}),
    "sagan": ("sagan", images, IMG, {}),
    "unrolled": ("unrolled", points, {**PTS, "unroll_steps": 2}, {}),
    "dcgan-tricks": ("dcgan", images, {**IMG, "instance_noise": 0.1, "instance_noise_steps": 5,
                                        "historical_averaging": 0.01, "feature_matching": 1.0, "r1": 1.0,
                                        "label_smoothing": 0.1, "minibatch_stddev": True}, {}),
    "dcgan-mbd-r2": ("dcgan", images, {**IMG, "minibatch_discrimination": [4, 3], "r2": 1.0, "n_critic": 2}, {}),
    "dcgan-bf16": ("dcgan", images, IMG, {"amp": "bf16"}),
}

def run(case, steps=8):
    model, make, options, extra = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=model, data="tiny", steps=steps, batch_size=8, out=tmp, progress=False, log_every=1,
                          checkpoint_every=100, sample_every=100, model_options=options, **extra)
        Trainer(cfg, dataset=make()).fit()
        rows = read_metrics(os.path.join(tmp, "metrics.csv"))
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]

if __name__ == "__main__":
    out = {c: run(c) for c in CASES}
    json.dump(out, open(sys.argv[1], "w"), indent=1)
    print("wrote", sys.argv[1], {c: len(v) for c, v in out.items()})
