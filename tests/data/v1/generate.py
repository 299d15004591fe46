"""Old-format (v1) checkpoints and what the old code computed from them, for the upgrade test."""
import os, sys, shutil, tempfile, json
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES
from ganfast.train import TrainConfig, Trainer, model_from_checkpoint
from ganfast.train.checkpoint import load_checkpoint
from ganfast.train.log import read_metrics

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
expected = {}
for case in ["dcgan-tricks", "acgan", "infogan", "wgan-gp"]:
    model, make, options, extra = CASES[case]
    tmp = tempfile.mkdtemp()
    cfg = TrainConfig(model=model, data="tiny", steps=6, batch_size=8, out=tmp, progress=False, log_every=1,
                      checkpoint_every=3, sample_every=100, model_options=options, **extra)
    Trainer(cfg, dataset=make()).fit()
    rows = read_metrics(os.path.join(tmp, "metrics.csv"))
    ck = os.path.join(tmp, "checkpoints", "ckpt-00000003.pt")
    shutil.copy(ck, os.path.join(out_dir, f"v1-{case}.pt"))
    state = load_checkpoint(ck)
    m = model_from_checkpoint(state).eval()
    g = torch.Generator().manual_seed(1)
    z = m.sample_latent(5, generator=g)
    y = m.sample_labels(5, generator=g)
    with torch.no_grad():
        x = m.generate(z, y)
    expected[case] = {"latent": z, "label": y, "sample": x,
                      "rows_after_resume": torch.tensor([[r[k] for k in sorted(r) if k != "images_per_s"] for r in rows[3:]], dtype=torch.float64),
                      "keys": [k for k in sorted(rows[0]) if k != "images_per_s"]}
torch.save(expected, os.path.join(out_dir, "v1-expected.pt"))
print({k: os.path.getsize(os.path.join(out_dir, f"v1-{k}.pt")) for k in expected})
