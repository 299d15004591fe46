"""``ganfast train --compile`` (ganfast.train.compile): what compiles, checkpoints, exact resume, clear failures.

Three tests compile (marked slow: torch.compile on the CPU takes seconds per
graph; the FX graph cache on disk makes later runs faster); the rest only
plan, parse and check without tracing anything.
"""

import dataclasses
import shutil

import pytest
import torch
from torch import nn

import ganfast.losses as L
from ganfast.data import GANDataset
from ganfast.models import Method, OptimizerSpec, Phase, build, option
from ganfast.models.options import OptionsBase
from ganfast.train import TrainConfig, Trainer, model_from_checkpoint
from ganfast.train.checkpoint import load_checkpoint
from ganfast.train.compile import MODES, CompileError, normalize_mode, plan
from ganfast.train.log import read_metrics


def images(n=48, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny", torch.rand(n, 1, side, side, generator=g) * 2 - 1)


def points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("pts", torch.randn(n, 2, generator=g))


# -- without compiling --------------------------------------------------------------------------


@pytest.mark.parametrize("name, options, compiled, eager_reason", [
    ("dcgan", {}, ("G", "D"), None),
    ("infogan", {}, ("G", "D", "Q"), None),
    ("wgan-gp", {}, ("G",), "-o gradient_penalty=10"),
    ("dcgan", {"r1": 10}, ("G",), "-o r1=10"),
    ("dcgan", {"r2": 1}, ("G",), "-o r2=1"),
    ("unrolled", {}, ("G",), "unroll_grad"),
    ("unrolled", {"unroll_grad": False}, ("G", "D"), None),
])
def test_plan_leaves_networks_differentiated_twice_eager(name, options, compiled, eager_reason):
    shape = (2,) if name == "unrolled" else (1, 8, 8)
    p = plan(build(name, sample_shape=shape, num_classes=10, **options), "default")
    assert p.compiled == compiled
    if eager_reason is None:
        assert p.eager == {}
    else:
        assert list(p.eager) == ["D"] and eager_reason in p.eager["D"]
        assert name in p.model and "D runs eagerly" in p.describe() and eager_reason in p.describe()


def test_modes_and_config():
    assert normalize_mode(True) == "default" and normalize_mode("off") is None and normalize_mode(None) is None
    for mode in MODES:
        assert normalize_mode(mode) == mode
        TrainConfig(compile=mode).validate()
    with pytest.raises(ValueError, match="compile must be"):
        TrainConfig(compile="fast").validate()


def test_cli_flag():
    from ganfast.cli import build_parser
    from ganfast.train.command import _explicit

    parse = build_parser().parse_args
    assert _explicit(parse(["train", "--compile"]))["compile"] == "default"
    assert _explicit(parse(["train", "--compile", "max-autotune-no-cudagraphs"]))["compile"] == \
        "max-autotune-no-cudagraphs"
    assert "compile" not in _explicit(parse(["train"]))
    with pytest.raises(SystemExit):
        parse(["train", "--compile", "fast"])


def test_compiled_networks_keep_their_state_dict_keys():
    model = build("dcgan", sample_shape=(1, 8, 8))
    keys = list(model.state_dict())
    for net in model.networks().values():
        net.compile(dynamic=False)  # nothing is traced until a call
    assert list(model.state_dict()) == keys and not any("_orig_mod" in k for k in keys)


# -- compiling ----------------------------------------------------------------------------------


def dcgan_trainer(out, steps, **kw):
    cfg = TrainConfig(model="dcgan", data="tiny", steps=steps, batch_size=8, out=str(out), progress=False,
                      log_every=1, checkpoint_every=2, sample_every=2, compile="default",
                      model_options={"width": 4, "latent_dim": 8}, **kw)
    return Trainer(cfg, dataset=images())


@pytest.mark.slow
def test_compiled_run_checkpoints_and_resumes_exactly(tmp_path):
    # the uninterrupted run, then a copy resumed from its step-2 checkpoint: in one process the
    # resumed trainer reuses the compiled code (Dynamo guards on the modules' structure, not their
    # identity); across processes the resume is bit for bit too (measured with the CLI, 2 threads)
    a = dcgan_trainer(tmp_path / "a", 4)
    summary = a.fit()
    assert a.first_step_seconds is not None
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = dcgan_trainer(tmp_path / "b", 4)
    assert b.resume(str(tmp_path / "b" / "checkpoints" / "ckpt-00000002.pt")) and b.step == 2
    b.fit()

    ra = read_metrics(tmp_path / "a" / "metrics.csv")
    rb = read_metrics(tmp_path / "b" / "metrics.csv")
    assert [r["step"] for r in rb] == [1, 2, 3, 4]
    for x, y in zip(ra, rb):
        for k in x:
            if k != "images_per_s":
                assert x[k] == y[k], (x["step"], k, x[k], y[k])  # bit for bit
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    for p, q in zip(a.ema.module.state_dict().values(), b.ema.module.state_dict().values()):
        assert torch.equal(p, q)

    # the checkpoint is the eager model's: same keys, no _orig_mod, and it rebuilds an uncompiled model
    state = load_checkpoint(summary["checkpoint"])
    eager_keys = set(build("dcgan", sample_shape=(1, 8, 8), width=4, latent_dim=8).state_dict())
    assert set(state["model"]) == eager_keys
    assert not any("_orig_mod" in k for k in state["model"]) and not any(
        "_orig_mod" in k for k in state["ema"]["G"]["module"])
    m = model_from_checkpoint(state)
    z = a.grid_inputs["latent"][:4]
    torch.testing.assert_close(m.eval().generate(z), a.sample(latent=z))
    assert (tmp_path / "a" / "samples" / "step-00000004.png").exists()


@pytest.mark.slow
def test_a_penalty_method_compiles_g_and_trains(tmp_path):
    cfg = TrainConfig(model="wgan-gp", data="pts", steps=2, batch_size=16, out=str(tmp_path), progress=False,
                      log_every=1, compile=True, model_options={"hidden": [8, 8], "latent_dim": 2, "n_critic": 2})
    t = Trainer(cfg, dataset=points())
    assert t.compile_plan.compiled == ("G",)
    t.fit()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert len(rows) == 2 and all(r["gp"] == r["gp"] for r in rows)


@dataclasses.dataclass
class GammaOptions(OptionsBase):
    gamma: float = option(1.0, "an R1 weight under a name ganfast.train.compile does not know", min=0.0)


class GammaGAN(Method):
    """G: z -> x and D: x -> score with an R1 penalty in D's phase: D is differentiated twice."""

    name = "gamma-gan"
    Options = GammaOptions

    def build_networks(self):
        return {"G": nn.Linear(2, 2), "D": nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))}

    def optimizers(self):
        return {"G": OptimizerSpec(("G",), lr=1e-3), "D": OptimizerSpec(("D",), lr=1e-3)}

    def phases(self):
        return [Phase("D", "D", self.d_phase), Phase("G", "G", self.g_phase, batch="same")]

    def d_phase(self, batch, ctx):
        with torch.no_grad():
            fake = self.G(torch.randn(len(batch), 2))
        loss = L.discriminator_loss("non-saturating", self.D(batch.image), self.D(fake))
        return loss + self.options.gamma * L.r1_penalty(self.D, batch.image), {"d_loss": loss.detach()}

    def g_phase(self, batch, ctx):
        loss = L.generator_loss("non-saturating", self.D(self.G(torch.randn(len(batch), 2))))
        return loss, {"g_loss": loss.detach()}

    def sample(self, n=None, *, networks=None, generator=None, device=None, latent=None):
        return self.net("G", networks)(torch.randn(n, 2, generator=generator) if latent is None else latent)

    def sample_inputs(self, n, *, generator=None, batch=None):
        return {"latent": torch.randn(n, 2, generator=generator)}


@pytest.mark.slow
def test_an_unknown_double_backward_fails_with_a_clear_message(tmp_path):
    cfg = TrainConfig(steps=2, batch_size=8, out=str(tmp_path), progress=False, log_every=1, compile="default")
    t = Trainer(cfg, model=GammaGAN(), dataset=points())
    assert t.compile_plan.compiled == ("G", "D")  # nothing tells the plan that gamma differentiates D twice
    with pytest.raises(CompileError, match=r"--compile: model .gamma-gan. differentiates a compiled network "
                                           r"twice .* train it without --compile"):
        t.fit()
