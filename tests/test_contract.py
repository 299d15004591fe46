"""The training contract: a toy method with three networks, two optimisers, a lazy phase and schedules."""

import dataclasses
import math
import shutil

import pytest
import torch
from torch import nn

import ganfast.losses as L
from ganfast.data import Batch, GANDataset, load
from ganfast.models import EMASpec, Linear, Method, OptimizerSpec, Phase, StepContext, Steps, option
from ganfast.models.options import OptionsBase
from ganfast.models.phases import lazy_ratios, run_iteration
from ganfast.train import TrainConfig, Trainer
from ganfast.train.log import read_metrics

REG_INTERVAL = 4


@dataclasses.dataclass
class ToyOptions(OptionsBase):
    dim: int = option(2, "the data's", min=1)
    latent_dim: int = option(3, "", min=1)
    lr: float = option(1e-2, "", min=0.0, min_exclusive=True)
    betas: list = option([0.5, 0.9], "")
    r1: float = option(1.0, "", min=0.0)


class Toy(Method):
    """G: z -> x, E: x -> z, D: (x, z) -> score (a BiGAN-shaped toy); D's R1 is lazy, every 4 steps."""

    name = "toy"
    Options = ToyOptions

    def configure(self):
        self.reg_calls = []  # (step, raw R1) of every run of the lazy phase

    def build_networks(self):
        o = self.options
        return {"G": nn.Linear(o.latent_dim, o.dim), "E": nn.Linear(o.dim, o.latent_dim),
                "D": nn.Sequential(nn.Linear(o.dim + o.latent_dim, 8), nn.Tanh(), nn.Linear(8, 1))}

    def optimizers(self):
        o = self.options
        return {"GE": OptimizerSpec(("G", "E"), lr=o.lr, betas=tuple(o.betas)),
                "D": OptimizerSpec(("D",), lr=o.lr, betas=tuple(o.betas))}

    def schedules(self):
        return {"noise": Linear(0.5, 0.0), "lr/GE": Steps([0.5], [1.0, 0.1])}

    def phases(self):
        return [Phase("Dmain", "D", self.d_main), Phase("GEmain", "GE", self.ge_main, batch="same"),
                Phase("Dreg", "D", self.d_reg, interval=REG_INTERVAL, lazy=True, batch="same")]

    def ema_networks(self):
        return {"G": EMASpec(), "E": EMASpec(rampup=0.5)}

    def _pair(self, x, z):
        return self.D(torch.cat([x, z], 1))

    def d_main(self, batch, ctx):
        x = batch.image + ctx.schedule["noise"] * torch.randn_like(batch.image)
        z = torch.randn(x.shape[0], self.options.latent_dim)
        with torch.no_grad():
            fake, code = self.G(z), self.E(x)
        loss = L.discriminator_loss("non-saturating", self._pair(x, code), self._pair(fake, z))
        return loss, {"d_loss": loss.detach(), "noise": torch.tensor(ctx.schedule["noise"])}

    def ge_main(self, batch, ctx):
        x = batch.image
        z = torch.randn(x.shape[0], self.options.latent_dim)
        # labels swapped (BiGAN): G and E both try to fool D
        loss = L.discriminator_loss("non-saturating", self._pair(self.G(z), z), self._pair(x, self.E(x)))
        return loss, {"g_loss": loss.detach()}

    def d_reg(self, batch, ctx):
        code = self.E(batch.image).detach()
        r1 = L.r1_penalty(lambda t: self._pair(t, code), batch.image)
        self.reg_calls.append((ctx.step, float(r1.detach())))
        return 0.5 * self.options.r1 * r1, {"r1": r1.detach()}

    def sample(self, n=None, *, networks=None, generator=None, device=None, latent=None):
        if latent is None:
            latent = torch.randn(n, self.options.latent_dim, generator=generator)
        return self.net("G", networks)(latent)

    def sample_inputs(self, n, *, generator=None, batch=None):
        return {"latent": torch.randn(n, self.options.latent_dim, generator=generator)}


def points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("pts", torch.randn(n, 2, generator=g))


def trainer(out, steps):
    torch.manual_seed(0)
    cfg = TrainConfig(steps=steps, batch_size=8, out=str(out), progress=False, log_every=1, checkpoint_every=5,
                      sample_every=100, grid_size=16)
    return Trainer(cfg, model=Toy(), dataset=points())


def test_lazy_phase_runs_every_fourth_step_with_the_scaled_loss_and_corrected_adam(tmp_path):
    t = trainer(tmp_path, 10)
    t._setup()
    backward = t.ctx.backward
    seen = []

    def record(loss, name):
        seen.append((t.ctx.step, name, float(loss.detach())))
        backward(loss, name)
    t.ctx.backward = record
    t.fit()
    reg = t.model.reg_calls
    assert [s for s, _ in reg] == [0, 4, 8]
    # each step: Dmain (D), GEmain (GE), and on steps 0, 4, 8 the lazy Dreg (D) with its loss times 4
    per_step = {}
    for step, name, value in seen:
        per_step.setdefault(step, []).append((name, value))
    for step in range(10):
        names = [n for n, _ in per_step[step]]
        assert names == (["D", "GE", "D"] if step % REG_INTERVAL == 0 else ["D", "GE"]), (step, names)
    for step, raw in reg:
        scaled = per_step[step][2][1]
        assert scaled == pytest.approx(REG_INTERVAL * 0.5 * raw, rel=1e-6)
    # StyleGAN2's Adam correction on the lazily regularised optimiser only: lr * c, beta ** c, c = k / (k + 1)
    c = REG_INTERVAL / (REG_INTERVAL + 1)
    d = t.optimizers["D"].param_groups[0]
    assert d["initial_lr"] == pytest.approx(1e-2 * c) and d["betas"] == pytest.approx((0.5 ** c, 0.9 ** c))
    ge = t.optimizers["GE"].param_groups[0]
    assert ge["initial_lr"] == pytest.approx(1e-2) and ge["betas"] == pytest.approx((0.5, 0.9))
    # the per-optimiser learning-rate schedule: GE at 1e-2 for the first half, then a tenth of it
    assert ge["lr"] == pytest.approx(1e-3) and d["lr"] == pytest.approx(1e-2 * c)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["noise"] for r in rows] == pytest.approx([0.5 * (1 - s / 10) for s in range(10)])
    assert set(t.emas) == {"G", "E"} and t.emas["E"].rampup == 0.5


def test_toy_method_resumes_exactly(tmp_path):
    a = trainer(tmp_path / "a", 10)
    a.fit()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = trainer(tmp_path / "b", 10)
    assert b.resume(str(tmp_path / "b" / "checkpoints" / "ckpt-00000005.pt")) and b.step == 5
    b.fit()
    ra, rb = read_metrics(tmp_path / "a" / "metrics.csv"), read_metrics(tmp_path / "b" / "metrics.csv")
    assert [r["step"] for r in rb] == list(range(1, 11))
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k != "images_per_s"} == {k: v for k, v in y.items()
                                                                      if k != "images_per_s"}
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    for name in ("G", "E"):
        for p, q in zip(a.emas[name].module.state_dict().values(), b.emas[name].module.state_dict().values()):
            assert torch.equal(p, q), name
    assert [s for s, _ in b.model.reg_calls] == [8]  # the resumed half ran the lazy phase once, at step 8
    for opt in ("D", "GE"):
        sa, sb = a.optimizers[opt].state_dict(), b.optimizers[opt].state_dict()
        assert sa["param_groups"] == sb["param_groups"]


def test_phase_fields_are_checked():
    f = lambda batch, ctx: (torch.zeros(()), {})  # noqa: E731
    with pytest.raises(ValueError, match="interval"):
        Phase("x", "D", f, interval=0)
    with pytest.raises(ValueError, match="lazy"):
        Phase("x", "D", f, lazy=True)
    with pytest.raises(ValueError, match="batch"):
        Phase("x", "D", f, batch="fresh")
    with pytest.raises(ValueError, match="stop"):
        Phase("x", "D", f, start=5, stop=5)
    with pytest.raises(ValueError, match="share optimiser"):
        lazy_ratios([Phase("a", "D", f, interval=4, lazy=True), Phase("b", "D", f, interval=16, lazy=True)])
    p = Phase("x", "D", f, interval=3, start=2, stop=9)
    assert [s for s in range(12) if p.due(s)] == [2, 5, 8]


def test_phase_conditions_repeat_and_batches():
    """`repeat` draws a new batch each time for batch='next'; `when` can stop a phase; frozen networks stay so."""
    m = Toy()
    drawn = []

    def next_batch():
        drawn.append(len(drawn))
        return Batch(image=torch.randn(4, 2))
    calls = []

    def loss(tag):
        def fn(batch, ctx):
            calls.append((tag, id(batch), [p.requires_grad for p in m.G.parameters()]))
            return m.G(torch.randn(4, 3)).square().mean() + m.D[0].weight.sum() * 0, {}
        return fn
    phases = [Phase("D", "D", loss("D"), repeat=3),
              Phase("G", "GE", loss("G"), batch="same", when=lambda ctx: ctx.step % 2 == 0)]
    opts = m.make_optimizers()
    ctx = StepContext()
    run_iteration(phases, m.networks(), m.trains(), next_batch, opts, ctx)
    assert [c[0] for c in calls] == ["D", "D", "D", "G"] and len(drawn) == 3
    assert calls[3][1] == calls[2][1]  # "same": the last batch
    assert calls[0][2] == [False, False] and calls[3][2] == [True, True]  # only the stepped networks train
    assert all(p.requires_grad for p in m.parameters())  # all trainable again afterwards
    ctx.step = 1
    calls.clear()
    run_iteration(phases, m.networks(), m.trains(), next_batch, opts, ctx)
    assert [c[0] for c in calls] == ["D", "D", "D"]  # the condition held G back at an odd step


def test_options_are_typed_with_sources():
    from ganfast.models import build
    from ganfast.models.options import option_rows
    with pytest.raises(TypeError, match="unknown option"):
        Toy(dims=3)
    with pytest.raises(ValueError, match="option 'dim' must be an int"):
        Toy(dim=2.5)
    with pytest.raises(ValueError, match="option 'lr' must be > 0"):
        Toy(lr=0)
    assert Toy(lr=1).options.lr == 1.0 and isinstance(Toy(lr=1).options.lr, float)  # JSON ints become floats
    rows = {name: (default, source) for name, default, source in option_rows(type(build("dcgan")).Options)}
    assert rows["lr_g"][0] == 2e-4 and "Radford" in rows["lr_g"][1]
    # a subclass's re-declared default keeps the base's rules
    with pytest.raises(ValueError, match="option 'betas' must be"):
        build("wgan-gp", betas=[0.5, 1.5])
    assert math.isclose(build("wgan-gp", sample_shape=(2,)).options.betas[1], 0.9)


def test_the_readme_worked_example_trains(tmp_path, monkeypatch):
    """The method file in ganfast/models/README.md is real code: it registers, builds and trains."""
    import re
    from pathlib import Path

    from ganfast.models import registry

    text = (Path(__file__).resolve().parent.parent / "ganfast" / "models" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = re.sub(r"^from \.\. import", "from ganfast import", code, flags=re.M)
    code = re.sub(r"^from \.(\w)", r"from ganfast.models.\1", code, flags=re.M)
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    namespace = {"__name__": "r1gan_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    assert "r1gan" in registry.names()
    g = torch.Generator().manual_seed(0)
    data = GANDataset("tiny", torch.rand(32, 1, 8, 8, generator=g) * 2 - 1)
    cfg = TrainConfig(model="r1gan", data="tiny", steps=3, batch_size=8, out=str(tmp_path), progress=False,
                      log_every=1, sample_every=3, model_options={"r1_interval": 2})
    t = Trainer(cfg, dataset=data)
    t.fit()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [("r1" in r and r["r1"] == r["r1"]) for r in rows] == [True, False, True]  # steps 0 and 2
    assert (tmp_path / "samples" / "step-00000003.png").exists()


class PairToy(Method):
    """A pix2pix-shaped toy: G maps image -> target, a PatchGAN-style D scores (image, target) maps."""

    name = "pair-toy"
    Options = OptionsBase
    requires = ("image", "target")
    layout = "paired"
    sample_field = "target"

    def build_networks(self):
        return {"G": nn.Conv2d(3, 3, 1), "D": nn.Conv2d(6, 1, 3, padding=1)}

    def optimizers(self):
        return {"G": OptimizerSpec(("G",), lr=1e-3), "D": OptimizerSpec(("D",), lr=1e-3)}

    def phases(self):
        return [Phase("D", "D", self.d_loss), Phase("G", "G", self.g_loss, batch="same")]

    def d_loss(self, batch, ctx):
        fake = self.G(batch.image).detach()
        real_out = self.D(torch.cat([batch.image, batch.target], 1))
        fake_out = self.D(torch.cat([batch.image, fake], 1))
        assert real_out.shape[1:] == (1, 8, 8)  # a map of patch scores per sample
        loss = L.discriminator_loss("least-squares", real_out, fake_out)
        return loss, {"d_loss": loss.detach()}

    def g_loss(self, batch, ctx):
        fake = self.G(batch.image)
        loss = L.generator_loss("least-squares", self.D(torch.cat([batch.image, fake], 1)))
        return loss + (fake - batch.target).abs().mean(), {"g_loss": loss.detach()}

    def sample(self, n=None, *, networks=None, generator=None, device=None, condition=None):
        return self.net("G", networks)(condition)

    def sample_inputs(self, n, *, generator=None, batch=None):
        return {"condition": batch.image[:n]}


def test_a_paired_method_trains_on_a_paired_folder(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "data" / side).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "data" / side / f"{i}.png")
    cfg = TrainConfig(model="dcgan", data=str(tmp_path / "data"), steps=3, batch_size=4, out=str(tmp_path / "run"),
                      progress=False, log_every=1, sample_every=3, grid_size=4)
    t = Trainer(cfg, model=PairToy(), dataset=load(tmp_path / "data", layout="paired"))
    t.fit()
    assert t.dataset.fields == ("image", "target") and set(t.grid_inputs) == {"condition"}
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.csv")] == [1, 2, 3]
    assert (tmp_path / "run" / "samples" / "step-00000003.png").exists()
    with pytest.raises(ValueError, match=r"needs batch field\(s\) \['target'\]"):
        Trainer(cfg, model=PairToy(), dataset=GANDataset("plain", torch.rand(8, 3, 8, 8) * 2 - 1))
