"""The eleven methods on the named-network contract give the first trainer's numbers, and its checkpoints load.

The fixtures in tests/data/v1/ were written by the first trainer (commit 6dfa290); see their README.
On the machine they were written on, the new code reproduces every loss bit for bit; the tolerance
below only allows for another CPU's vector units rounding float32 convolutions differently.
"""

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from ganfast.train import TrainConfig, Trainer, model_from_checkpoint
from ganfast.train.checkpoint import load_checkpoint, save_checkpoint
from ganfast.train.log import read_metrics

HERE = Path(__file__).resolve().parent / "data" / "v1"
_spec = importlib.util.spec_from_file_location("v1_cases", HERE / "cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

OLD = json.loads((HERE / "losses.json").read_text())
EXPECTED = torch.load(HERE / "v1-expected.pt", weights_only=True)


def close(a, b, case=""):
    """Equal up to float32 reordering; a bfloat16 case up to a few bf16 roundings (u = 2^-8): its convolutions'
    rounding depends on the CPU (oneDNN with or without native bf16; logs recorded on one, replayed on an AMD
    EPYC differed by 1.4 % in a 1.4e-4 d_fake)."""
    if case.endswith("bf16"):
        return a == b or math.isclose(a, b, rel_tol=3e-2, abs_tol=1e-4)
    return a == b or math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


@pytest.mark.parametrize("case", sorted(OLD))
def test_every_method_logs_the_first_trainers_losses(case):
    new = cases.run(case)
    old = OLD[case]
    assert [r["step"] for r in new] == [r["step"] for r in old]
    for a, b in zip(old, new):
        assert set(a) == set(b), (case, a["step"])
        for k in a:
            assert close(a[k], b[k], case), (case, a["step"], k, a[k], b[k])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_version_1_checkpoint_samples_as_before(case):
    exp = EXPECTED[case]
    state = load_checkpoint(str(HERE / f"v1-{case}.pt"))
    assert state["version"] == 1
    m = model_from_checkpoint(state).eval()
    with torch.no_grad():
        x = m.generate(exp["latent"], exp["label"])
    torch.testing.assert_close(x, exp["sample"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_version_1_checkpoint_resumes_where_the_first_trainer_would_have(tmp_path, case):
    """Resume a version-1 checkpoint with today's trainer: steps 4-6 log what the first trainer logged."""
    model, make, options, extra = cases.CASES[case]
    ckpt = tmp_path / "checkpoints" / "ckpt-00000003.pt"
    os.makedirs(ckpt.parent)
    shutil.copy(HERE / f"v1-{case}.pt", ckpt)
    cfg = TrainConfig(model=model, data="tiny", steps=6, batch_size=8, out=str(tmp_path), progress=False, log_every=1,
                      checkpoint_every=100, sample_every=100, model_options=options, **extra)
    t = Trainer(cfg, dataset=make())
    assert t.resume(str(ckpt)) and t.step == 3
    t.fit()
    rows = read_metrics(tmp_path / "metrics.csv")
    got = [[r[k] for k in EXPECTED[case]["keys"]] for r in rows if r["step"] > 3]
    want = EXPECTED[case]["rows_after_resume"].tolist()
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert all(close(a, b) for a, b in zip(w, g)), (case, w, g)
    # and what it saves is the current format
    assert load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-00000006.pt"))["version"] == 2


def test_unreadable_versions_are_refused_with_a_reason(tmp_path):
    state = load_checkpoint(str(HERE / "v1-wgan-gp.pt"))
    for version, match in ((3, "newer than this ganfast reads"), (0, "not one ganfast ever wrote")):
        bad = dict(state, version=version)
        save_checkpoint(str(tmp_path / "bad.pt"), bad)
        with pytest.raises(ValueError, match=match):
            model_from_checkpoint(load_checkpoint(str(tmp_path / "bad.pt")))
    odd = dict(state, model={"mystery.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unknown module 'mystery'"):
        model_from_checkpoint(odd)
