"""Checkpoints, EMA, metrics logging and sample sheets (ganfast.train's helpers)."""

from __future__ import annotations

import math
import os
import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from ganfast.train import log as log_module
from ganfast.train.checkpoint import (
    CheckpointManager,
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ganfast.train.ema import EMA
from ganfast.train.grid import make_grid, save_image_grid, save_points_png
from ganfast.train.log import MetricsLogger, plot_losses, read_metrics

from PIL import Image  # noqa: E402  (a dependency: missing it must fail, not skip)


def _tiny_model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _same(a, b) -> None:
    """Deep equality of checkpoint trees, tensors compared exactly."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def _leftovers(directory) -> list:
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


# -- checkpoint.py ------------------------------------------------------------------------------


def test_round_trip_of_a_realistic_state(tmp_path):
    model = _tiny_model()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ema = EMA(model, decay=0.99)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 3)).square().mean().backward()
        opt.step()
        ema.update(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    state = {
        "step": 2,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "ema": ema.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "config": {"name": "dcgan", "lr": 2e-4, "betas": (0.5, 0.999), "layers": [64, 128], "note": None,
                   "shape": torch.Size([3, 32, 32]), "dtype": torch.bfloat16, "flags": {"amp": True, 1: "x"}},
        "bf16": torch.randn(3, dtype=torch.bfloat16),
        "nan": float("nan"),
    }  # fmt: skip
    path = tmp_path / "ck.pt"
    save_checkpoint(str(path), state)
    back = load_checkpoint(str(path))
    _same(state, back)
    assert _leftovers(tmp_path) == []
    # The loaded pieces plug back into fresh objects.
    model2 = _tiny_model()
    model2.load_state_dict(back["model"])
    torch.optim.Adam(model2.parameters(), lr=1.0).load_state_dict(back["optimizer"])
    EMA(model2).load_state_dict(back["ema"])


@pytest.mark.parametrize(
    "bad, where, what",
    [
        ({"config": {"fn": lambda x: x}}, "state['config']['fn']", "is a function"),
        ({"cfg": [1, {"arr": np.zeros(2)}]}, "state['cfg'][1]['arr']", "numpy.ndarray"),
        ({"model": nn.Linear(1, 1)}, "state['model']", "state_dict()"),
        ({"tags": {"a", "b"}}, "state['tags']", "set"),
        ({"d": {1.5: 0}}, "state['d']", "key"),
        ({"x": np.float32(1.0)}, "state['x']", "numpy.float32"),
    ],
)
def test_unsafe_types_are_rejected_before_writing(tmp_path, bad, where, what):
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError) as info:
        save_checkpoint(str(path), bad)
    assert where in str(info.value) and what in str(info.value)
    assert os.listdir(tmp_path) == []


def test_a_cycle_is_rejected(tmp_path):
    loop: list = []
    loop.append(loop)
    with pytest.raises(TypeError, match="contains itself"):
        save_checkpoint(str(tmp_path / "ck.pt"), {"loop": loop})


def test_failed_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(str(path), {"step": 1, "w": torch.ones(3)})
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(str(path), {"step": 2, "w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]
    assert load_checkpoint(str(path))["step"] == 1

    # An interrupt (Ctrl-C) mid-save cleans up the same way.
    def interrupted_save(obj, f, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(str(path), {"step": 3})
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]


def test_load_refuses_pickles_and_damaged_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(str(tmp_path / "nowhere.pt"))

    # torch.save of an arbitrary object: loading it would need a code-running unpickle.
    custom = tmp_path / "custom.pt"
    torch.save({"obj": _Payload()}, str(custom))
    with pytest.raises(ValueError, match="refusing to load .*custom.pt.*unsafe"):
        load_checkpoint(str(custom))

    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"obj": _Payload()}))
    with pytest.raises(ValueError, match="plain.pkl"):
        load_checkpoint(str(plain))
    assert not _Payload.ran

    good = tmp_path / "good.pt"
    save_checkpoint(str(good), {"w": torch.randn(64, 64)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(ValueError, match="truncated.pt is truncated"):
        load_checkpoint(str(truncated))


class _CreatesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # unpickling would call open(path, "w"): the file would appear
        return (open, (self.path, "w"))


def test_loading_never_runs_pickle_code(tmp_path):
    """A checkpoint whose pickle would create a file when executed: refused, and the file never appears."""
    target = tmp_path / "created-by-unpickling.txt"
    for name, write in (("zip.pt", lambda f: torch.save({"x": _CreatesAFile(str(target))}, f)),
                        ("legacy.pt", lambda f: torch.save({"x": _CreatesAFile(str(target))}, f,
                                                           _use_new_zipfile_serialization=False)),
                        ("plain.pkl", lambda f: open(f, "wb").write(pickle.dumps({"x": _CreatesAFile(str(target))})))):
        write(str(tmp_path / name))
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            load_checkpoint(str(tmp_path / name))
        assert not target.exists(), name


def _record_span(path, suffix):
    """(offset, length) of the data of the zip record whose name ends in ``suffix``."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(suffix))
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), dtype="<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.file_size


@pytest.mark.parametrize("where", ["tensor", "pickle"])
def test_flipped_bytes_are_caught_by_the_checksum(tmp_path, where):
    """16 flipped bytes inside a tensor loaded silently (weights off by up to 2.0): every record's CRC-32 is
    checked, and the error names the file and the record."""
    good = tmp_path / "good.pt"
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    save_checkpoint(str(good), {"w": w, "step": 7, "note": "x" * 64})
    assert torch.equal(load_checkpoint(str(good))["w"], w)
    start, length = _record_span(str(good), "data.pkl" if where == "pickle" else "/data/0")
    data = bytearray(good.read_bytes())
    at = start + length // 2 - 8
    for k in range(16):
        data[at + k] ^= 0x5A
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flipped.pt is corrupt: its record .* CRC-32"):
        load_checkpoint(str(bad))


class _Payload:
    ran = False

    def __reduce__(self):
        # Were this ever unpickled, it would flag itself.
        return (_Payload._mark, ())

    @staticmethod
    def _mark():
        _Payload.ran = True
        return _Payload.__new__(_Payload)


def test_manager_keeps_the_newest_and_points_at_the_latest(tmp_path):
    d = tmp_path / "ckpts"
    mgr = CheckpointManager(str(d), keep=2)
    assert mgr.latest() is None and mgr.list() == []
    assert mgr.path_for(7) == os.path.join(str(d), "ckpt-00000007.pt")
    for step in (100, 200, 300):
        assert mgr.save(step, {"step": step}) == mgr.path_for(step)
    assert mgr.list() == [mgr.path_for(200), mgr.path_for(300)]
    assert (d / "latest").read_text().strip() == "ckpt-00000300.pt"
    assert mgr.latest() == mgr.path_for(300)
    assert load_checkpoint(mgr.latest())["step"] == 300
    assert _leftovers(d) == []

    # The pointer names a file that is gone: fall back to the highest step present.
    os.remove(mgr.path_for(300))
    assert mgr.latest() == mgr.path_for(200)
    # A damaged newest file is passed over too.
    (d / "ckpt-00000400.pt").write_bytes(b"garbage")
    assert mgr.latest() == mgr.path_for(200)

    # Saving an older step (after resuming from it) never deletes the file just written.
    os.remove(d / "ckpt-00000400.pt")
    mgr.save(50, {"step": 50})
    assert mgr.path_for(50) in mgr.list()
    assert mgr.latest() == mgr.path_for(50)

    keep_all = CheckpointManager(str(tmp_path / "all"), keep=None, prefix="g")
    for step in range(5):
        keep_all.save(step, {"step": step})
    assert [os.path.basename(p) for p in keep_all.list()] == [f"g-{s:08d}.pt" for s in range(5)]
    with pytest.raises(ValueError):
        CheckpointManager(str(d), keep=-1)


def test_rng_round_trip(tmp_path):
    state = rng_state()
    expected = (torch.rand(5), [random.random() for _ in range(3)], random.gauss(0, 1), np.random.rand(4))
    # The state must survive the trip through a weights_only checkpoint.
    save_checkpoint(str(tmp_path / "rng.pt"), {"rng": state})
    loaded = load_checkpoint(str(tmp_path / "rng.pt"))["rng"]
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    set_rng_state(loaded)
    again = (torch.rand(5), [random.random() for _ in range(3)], random.gauss(0, 1), np.random.rand(4))
    assert torch.equal(expected[0], again[0])
    assert expected[1:3] == again[1:3]
    np.testing.assert_array_equal(expected[3], again[3])
    assert "cuda" not in loaded or torch.cuda.is_available()
    set_rng_state({k: v for k, v in loaded.items() if k != "cuda"})  # tolerates the missing entry


def test_rng_restores_a_cached_gaussian():
    random.gauss(0, 1)  # leaves gauss_next set
    np.random.standard_normal()  # odd count: numpy caches the second normal
    state = rng_state()
    want = (random.gauss(0, 1), np.random.standard_normal())
    set_rng_state(state)
    assert (random.gauss(0, 1), np.random.standard_normal()) == want


# -- ema.py ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_matches_a_hand_computation(warmup):
    model = nn.Linear(3, 2)
    decay = 0.9
    ema = EMA(model, decay=decay, warmup=warmup)
    assert all(not p.requires_grad for p in ema.module.parameters())
    expected = {k: v.clone().double() for k, v in model.state_dict().items()}
    for n in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        assert ema.current_decay() == pytest.approx(d)
        ema.update(model)
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v.double()
    assert ema.num_updates == 4
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v.double(), expected[k], rtol=1e-6, atol=1e-6)
    # Training mode is the caller's business, and the EMA never tracks gradients.
    assert ema.module.training == model.training


def test_ema_copies_buffers_and_round_trips():
    model = _tiny_model()
    ema = EMA(model, decay=0.999, warmup=False)
    model.train()
    model(torch.randn(16, 3))  # moves BatchNorm's running statistics
    ema.update(model)
    bn_model, bn_ema = model[1], ema.module[1]
    assert torch.equal(bn_ema.running_mean, bn_model.running_mean)
    assert torch.equal(bn_ema.running_var, bn_model.running_var)
    assert int(bn_ema.num_batches_tracked) == 1

    other = EMA(_tiny_model(), decay=0.5, warmup=True)
    other.load_state_dict(ema.state_dict())
    assert (other.num_updates, other.decay, other.warmup) == (1, 0.999, False)
    for (k, a), (_, b) in zip(other.module.state_dict().items(), ema.module.state_dict().items()):
        assert torch.equal(a, b), k


def test_ema_with_spectral_norm():
    torch.manual_seed(3)
    model = nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Linear(4, 4)), nn.LeakyReLU(0.2))
    ema = EMA(model, decay=0.5, warmup=False)
    original = model[0].parametrizations.weight.original
    start = original.detach().clone()
    with torch.no_grad():
        original.add_(1.0)
    model.train()
    model(torch.randn(2, 4))  # one power iteration updates u and v
    ema.update(model)
    sn_ema = ema.module[0].parametrizations.weight
    torch.testing.assert_close(sn_ema.original, start + 0.5)
    assert torch.equal(sn_ema[0]._u, model[0].parametrizations.weight[0]._u)
    assert torch.equal(sn_ema[0]._v, model[0].parametrizations.weight[0]._v)
    ema.module.eval()
    assert torch.isfinite(ema.module(torch.randn(2, 4))).all()

    with pytest.raises(ValueError, match="differ"):
        ema.update(nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(0.2)))


# -- log.py ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_metrics_round_trip_widen_and_resume(tmp_path, ext):
    path = str(tmp_path / f"metrics{ext}")
    third = 1 / 3
    with MetricsLogger(path) as logger:
        logger.log(0, {"d_loss": third, "g_loss": 2.0})
        logger.log(10, {"d_loss": float("nan"), "g_loss": torch.tensor(0.25), "steps": np.int64(5)})
        logger.log(20, {"d_loss": 0.1, "g_loss": 0.2, "r1": 1e-7})  # a new column
        logger.log(30, {"d_loss": 0.3})
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == [0, 10, 20, 30]
    assert all(type(r["step"]) is int for r in rows)
    assert rows[0]["d_loss"] == third  # every digit survives
    assert math.isnan(rows[1]["d_loss"]) and rows[1]["g_loss"] == 0.25 and rows[1]["steps"] == 5.0
    assert rows[2]["r1"] == 1e-7 and "r1" not in rows[0] and "g_loss" not in rows[3]
    if ext == ".csv":
        with open(path) as f:
            header = f.readline().strip().split(",")
        assert header == ["step", "d_loss", "g_loss", "steps", "r1"]

    # A kill mid-write leaves half a line; resuming at step 10 drops it and the later rows.
    with open(path, "a") as f:
        f.write("40,0.12" if ext == ".csv" else '{"step": 40, "d_lo')
    assert [r["step"] for r in read_metrics(path)] == [0, 10, 20, 30]
    with MetricsLogger(path, resume_step=10) as logger:
        assert [r["step"] for r in read_metrics(path)] == [0, 10]
        logger.log(20, {"d_loss": 0.5, "g_loss": 0.6})
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == [0, 10, 20] and rows[2]["d_loss"] == 0.5

    # Without resume_step the file starts over.
    with MetricsLogger(path) as logger:
        logger.log(5, {"d_loss": 1.0})
    assert read_metrics(path) == [{"step": 5, "d_loss": 1.0}]


def test_metrics_logger_flushes_every_row(tmp_path):
    path = str(tmp_path / "m.csv")
    logger = MetricsLogger(path)
    logger.log(1, {"loss": 1.5})
    assert read_metrics(path) == [{"step": 1, "loss": 1.5}]  # readable while still open
    logger.close()


def test_metrics_logger_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        MetricsLogger(str(tmp_path / "metrics.txt"))
    with MetricsLogger(str(tmp_path / "m.jsonl")) as logger:
        with pytest.raises(TypeError, match="'name'"):
            logger.log(0, {"name": "dcgan"})
        with pytest.raises(ValueError, match="step"):
            logger.log(0, {"step": 1.0})


def test_missing_tensorboard_warns_once(tmp_path, monkeypatch):
    import sys

    # TensorBoard missing or broken, whether or not it is installed here: its import fails
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setattr(log_module, "_tensorboard_warned", False)
    with pytest.warns(UserWarning, match="TensorBoard"):
        MetricsLogger(str(tmp_path / "a.csv"), tensorboard_dir=str(tmp_path / "tb")).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with MetricsLogger(str(tmp_path / "b.csv"), tensorboard_dir=str(tmp_path / "tb")) as logger:
            logger.log(0, {"loss": 1.0})
    assert read_metrics(str(tmp_path / "b.csv")) == [{"step": 0, "loss": 1.0}]


def _rgb(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def test_smoothing_is_a_debiased_exponential_moving_average():
    rng = np.random.default_rng(5)
    values = rng.normal(size=40)
    values[[7, 8, 20]] = np.nan
    w = 0.9
    got = log_module._smoothed(list(values), w)
    finite = values[np.isfinite(values)]
    # Independently: each smoothed value is the weighted mean of the finite values so far, weights w^age.
    want = [np.sum(w ** np.arange(n)[::-1] * finite[:n]) / np.sum(w ** np.arange(n)) for n in range(1, finite.size + 1)]
    np.testing.assert_allclose(np.asarray(got)[np.isfinite(values)], want, rtol=1e-12)
    assert np.isnan(np.asarray(got)[[7, 8, 20]]).all()


def _training_rows(n=60, eval_every=20):
    """Rows as the trainer logs them: losses every row, evaluation scores on some rows only."""
    rng = np.random.default_rng(6)
    rows = []
    for i in range(n):
        step = 10 * (i + 1)
        row = {"step": step, "d_loss": -2.0 + i * 0.1 + rng.normal(0, 0.1), "g_loss": 1.0 + rng.normal(0, 0.1),
               "d_real": 1.0 + rng.normal(), "d_fake": -1.0 + rng.normal(), "w_distance": 2.0 + rng.normal(),
               "gp": 10.0 ** (-3.0 * i / (n - 1)), "images_per_s": 900.0 + i, "time": 0.5 * i}
        if step % (10 * eval_every) == 0:
            row.update(fid=300.0 / (1 + i), kid=0.1 * 10.0 ** (-4.0 * i / (n - 1)), modes_covered=float(min(8, i // 5)),
                       high_quality=i / n)
        rows.append(row)
    return rows


def _want_log(values) -> bool:
    v = np.asarray([x for x in values if math.isfinite(x)])
    return bool(v.size and v.min() > 0 and v.max() / v.min() > 100)


def test_plot_layout_groups_and_scales():
    rows = _training_rows()
    panels = log_module.plot_layout(rows)
    assert [(p.title, p.keys, p.kind) for p in panels] == [
        ("losses", ("d_loss", "g_loss"), "train"),
        ("D outputs", ("d_real", "d_fake", "w_distance"), "train"),
        ("penalties and auxiliary terms", ("gp",), "train"),
        ("fid", ("fid",), "eval"),
        ("kid", ("kid",), "eval"),
        ("modes_covered", ("modes_covered",), "eval"),
        ("high_quality", ("high_quality",), "eval"),
    ]  # images_per_s and time are bookkeeping: left out
    for p in panels:
        assert p.log == _want_log(r[k] for r in rows for k in p.keys if k in r), p
    by_title = {p.title: p for p in panels}
    assert not by_title["losses"].log  # d_loss crosses zero
    assert by_title["penalties and auxiliary terms"].log  # gp spans three decades
    assert by_title["kid"].log and not by_title["fid"].log  # kid spans 2.7 decades, fid a factor 3
    assert not by_title["modes_covered"].log  # it starts at 0

    # Two decades exactly stay linear; a bit more goes to log.
    for top, log in ((100.0, False), (101.0, True)):
        two = [{"step": 1, "r1": 1.0}, {"step": 2, "r1": top}]
        assert log_module.plot_layout(two) == [log_module.Panel("penalties and auxiliary terms", ("r1",), "train", log)]

    # Named keys: bookkeeping columns get panels of their own; an all-NaN column gets none.
    rows[0]["r2"] = float("nan")
    panels = log_module.plot_layout(rows, keys=["images_per_s", "g_loss", "r2", "fid"])
    assert [(p.title, p.keys) for p in panels] == [("losses", ("g_loss",)), ("images_per_s", ("images_per_s",)),
                                                   ("fid", ("fid",))]
    assert log_module.plot_layout([]) == []
    # AC-GAN's and InfoGAN's auxiliary terms go with the penalties, accuracies with D's outputs.
    aux = [{"step": 1, "d_class": 0.5, "g_info": 0.2, "d_real_acc": 0.9, "feature_matching": 0.1, "loss": 1.0}]
    assert [(p.title, p.keys) for p in log_module.plot_layout(aux)] == [
        ("losses", ("loss",)), ("D outputs", ("d_real_acc",)),
        ("penalties and auxiliary terms", ("d_class", "g_info", "feature_matching"))]


def _near(pixels, colour, tol=40) -> int:
    """How many pixels lie within ``tol`` of ``colour`` (antialiasing blends line edges)."""
    return int((np.abs(pixels.astype(int) - np.asarray(colour)).sum(-1) <= tol).sum())


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_plot_losses_draws_every_panel(tmp_path, ext):
    import matplotlib

    rows = _training_rows()
    path = str(tmp_path / f"m{ext}")
    with MetricsLogger(path) as logger:
        for row in rows:
            logger.log(row["step"], {k: v for k, v in row.items() if k != "step"})
    # The CSV leaves empty cells where a row has no score; JSON lines leave the key out.
    assert sum("fid" in r for r in read_metrics(path)) == 3
    backend = matplotlib.get_backend()
    png = str(tmp_path / "loss.png")
    plot_losses(path, png)
    assert matplotlib.get_backend() == backend  # the process's backend is not switched to Agg
    pixels = _rgb(png)
    assert pixels.shape == (3 * 300, 3 * 440, 3)  # seven panels, three columns: three rows of 440x300 cells
    blue = (31, 119, 180)  # matplotlib's C0: the first quantity of every panel
    cells = [pixels[r * 300 + 15:(r + 1) * 300 - 15, c * 440 + 15:(c + 1) * 440 - 15]
             for r in range(3) for c in range(3)]
    for i, cell in enumerate(cells[:7]):
        assert _near(cell, blue) > 30, f"panel {i} has no curve"
    for cell in cells[7:]:
        assert (cell == 255).all()  # the two unused cells stay empty
    assert _leftovers(tmp_path) == []

    # The smoothed line over the faint raw one: without smoothing the picture changes.
    plot_losses(path, png, smooth=0.0)
    assert not np.array_equal(_rgb(png), pixels)
    # A chosen column alone (a bookkeeping one), at an exact size.
    plot_losses(path, png, keys=["images_per_s"], size=(641, 397))
    pixels = _rgb(png)
    assert pixels.shape == (397, 641, 3) and _near(pixels, blue) > 100
    with pytest.raises(ValueError, match="no column"):
        plot_losses(path, png, keys=["nope"])
    with pytest.raises(ValueError, match="smooth"):
        plot_losses(path, png, smooth=1.0)
    with pytest.raises(ValueError, match="size"):
        plot_losses(path, png, size=(100, 100))


def test_plot_losses_lone_point_and_empty_file(tmp_path):
    blue = (31, 119, 180)
    png = str(tmp_path / "loss.png")
    single = str(tmp_path / "one.csv")
    with MetricsLogger(single) as logger:
        logger.log(3, {"loss": 2.0})
    plot_losses(single, png)
    pixels = _rgb(png)
    assert pixels.shape == (480, 800, 3) and _near(pixels, blue) > 5  # a lone point is still drawn

    empty = str(tmp_path / "empty.csv")
    MetricsLogger(empty).close()
    plot_losses(empty, png)
    pixels = _rgb(png)
    assert pixels.shape == (480, 800, 3) and _near(pixels, blue) == 0
    assert (pixels < 128).any()  # the frame and "no data yet"
    assert _leftovers(tmp_path) == []


# -- grid.py --------------------------------------------------------------------------------------


def test_make_grid_layout_and_colours():
    white, black = torch.ones(1, 3, 4, 5), -torch.ones(1, 3, 4, 5)
    images = torch.cat([white, black, white * 3, black])  # 3 clamps to white
    grid = make_grid(images, nrow=3, padding=1, pad_value=-1.0)
    assert grid.dtype == np.uint8 and grid.shape == (2 * (4 + 1) + 1, 3 * (5 + 1) + 1, 3)
    assert (grid[1:5, 1:6] == 255).all()  # tile 0
    assert (grid[1:5, 7:12] == 0).all()  # tile 1
    assert (grid[1:5, 13:18] == 255).all()  # tile 2
    assert (grid[0] == 0).all()  # black padding
    assert (grid[6:10, 7:12] == 0).all()  # the unused cell is padding
    gray = make_grid(torch.zeros(5, 1, 2, 2))  # one channel, default nrow = ceil(sqrt(5)) = 3
    assert gray.shape == (2 * 4 + 2, 3 * 4 + 2, 3)
    assert tuple(gray[2, 2]) == (128, 128, 128) and tuple(gray[0, 0]) == (255, 255, 255)

    with pytest.raises(ValueError, match="batch dimension"):
        make_grid(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        make_grid(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="empty"):
        make_grid(torch.zeros(0, 3, 4, 4))


def test_save_image_grid(tmp_path):
    images = torch.cat([torch.ones(2, 1, 16, 16), -torch.ones(2, 1, 16, 16)]).requires_grad_()
    path = str(tmp_path / "grid.png")
    save_image_grid(images, path)  # 16-px tiles: scale 4 makes them 64 px
    pixels = _rgb(path)
    assert pixels.shape == (4 * (2 * 18 + 2), 4 * (2 * 18 + 2), 3)
    assert tuple(pixels[4 * 2 + 5, 4 * 2 + 5]) == (255, 255, 255)  # first tile, white
    assert tuple(pixels[4 * 20 + 5, 4 * 2 + 5]) == (0, 0, 0)  # third tile, black
    save_image_grid(images.to(torch.bfloat16), path, nrow=4, padding=0, scale=1)
    assert _rgb(path).shape == (16, 64, 3)
    assert _leftovers(tmp_path) == []


def test_save_points_png(tmp_path):
    points = torch.tensor([[1.0, 1.0], [-2.0, 0.5], [float("nan"), 0.0]])
    centres = np.array([[0.0, 0.0], [1.5, -1.5]])
    path = str(tmp_path / "points.png")
    save_points_png(points, path, reference=centres, size=201, limits=2.0)
    pixels = _rgb(path)
    assert pixels.shape == (201, 201, 3)
    assert tuple(pixels[5, 195]) == (255, 255, 255)
    # (1, 1) lands at column 150, row 50 in a [-2, 2] box of 201 px.
    r, g, b = (int(v) for v in pixels[50, 150])
    assert b > 150 and r < 100 and g < 150
    # The centre (0, 0) is a red cross at the middle pixel.
    r, g, b = (int(v) for v in pixels[100, 100])
    assert r > 150 and g < 100 and b < 100
    assert tuple(pixels[100, 20]) == (190, 190, 190)  # the x axis through 0

    save_points_png(np.random.randn(1000, 2), path)  # default limits
    assert _rgb(path).shape == (512, 512, 3)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        save_points_png(torch.zeros(4, 3), path)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    """A kill during a checkpoint or grid write leaves `.name.PID.HEX.tmp` behind: the next run removes those of
    processes that no longer run, and leaves a live writer's, ordinary files and look-alikes alone."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".ckpt-00000010.pt.{dead_pid}.0123456789ab.tmp"
    live = tmp_path / f".step-00000010.png.{os.getpid()}.ba9876543210.tmp"
    keep = [tmp_path / "ckpt-00000010.pt", tmp_path / f".notes.{dead_pid}.tmp", tmp_path / "x.tmp"]
    for p in [stale, live] + keep:
        p.write_bytes(b"partial")
    assert remove_stale_temporaries(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and all(p.exists() for p in keep)
    assert remove_stale_temporaries(str(tmp_path / "missing")) == []
