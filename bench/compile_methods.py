"""What ``ganfast train --compile`` compiles, method by method: graph breaks, recompiles, losses.

    python bench/compile_methods.py [--steps 3] [--batch 32] [--models dcgan wgan-gp ...] [--json OUT.json]

For every method of ``ganfast list`` (its defaults; images on ``digits`` at
16x16, the 2-D methods ``unrolled`` and ``pacgan`` on ``ring8``) it trains
``--steps`` iterations twice from the same seed, eagerly and with
``--compile``, and prints per method: the plan (networks compiled, networks
left eager), Dynamo's graph and graph-break counts, the first compiled
iteration's time (tracing and compiling) and the largest difference of the
logged losses between the two runs.  This is the measurement behind
``ganfast/train/compile.py``'s per-method paragraph; exit status 1 when a
method fails, breaks a graph or disagrees beyond ``--rtol``/``--atol``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch


def _losses(path):
    from ganfast.train.log import read_metrics

    rows = read_metrics(path)
    skip = ("step", "images_per_s", "seconds", "time", "lr")
    return [{k: float(v) for k, v in r.items() if not any(s in k for s in skip) and isinstance(v, (int, float))}
            for r in rows]


def run_one(model: str, data: str, steps: int, batch: int, compile_mode) -> dict:
    from ganfast.train import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(model=model, data=data, steps=steps, batch_size=batch, out=out, progress=False,
                          log_every=1, checkpoint_every=10 ** 9, sample_every=10 ** 9, seed=0,
                          compile=compile_mode)
        trainer = Trainer(cfg)
        t0 = time.perf_counter()
        trainer.fit()
        wall = time.perf_counter() - t0
        return {"losses": _losses(f"{out}/metrics.csv"), "wall_s": wall, "first_step_s": trainer.first_step_seconds,
                "plan": None if trainer.compile_plan is None else {
                    "compiled": list(trainer.compile_plan.compiled), "eager": dict(trainer.compile_plan.eager)}}


def main(argv=None) -> int:
    from ganfast.models import names

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, choices=list(names()), metavar="MODEL",
                   help="default: every method (" + ", ".join(names()) + ")")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mode", default="default")
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from torch._dynamo.utils import counters

    models = a.models or list(names())
    report, failed = [], False
    print(f"torch {torch.__version__}, {a.steps} steps of batch {a.batch}, eager vs --compile {a.mode}", flush=True)
    for model in models:
        data = "ring8" if model in ("unrolled", "pacgan") else "digits"
        row = {"model": model, "data": data}
        try:
            eager = run_one(model, data, a.steps, a.batch, None)
            torch._dynamo.reset()
            counters.clear()
            comp = run_one(model, data, a.steps, a.batch, a.mode)
            row["graphs"] = int(counters["stats"]["unique_graphs"])
            row["graph_breaks"] = int(sum(counters["graph_break"].values()))
            row["break_reasons"] = sorted(counters["graph_break"])[:5]
            row["plan"] = comp["plan"]
            row["first_step_s"] = comp["first_step_s"]
            worst = 0.0
            ok = len(eager["losses"]) == len(comp["losses"])
            for x, y in zip(eager["losses"], comp["losses"]):
                for k in x:
                    if k in y:
                        d = abs(x[k] - y[k])
                        worst = max(worst, d)
                        ok &= d <= a.atol + a.rtol * abs(x[k])
            row["max_loss_diff"] = worst
            row["ok"] = bool(ok and row["graph_breaks"] == 0)
        except Exception as err:  # report and go on: the table is the product
            row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            row["ok"] = False
        failed |= not row["ok"]
        report.append(row)
        if "error" in row:
            print(f"{model:<9} {data:<6} FAILED {row['error']}", flush=True)
        else:
            eager_nets = ", ".join(f"{k} eager" for k in row["plan"]["eager"]) or "-"
            print(f"{model:<9} {data:<6} compiled {','.join(row['plan']['compiled']):<7} {eager_nets:<8} "
                  f"graphs {row['graphs']:>2} breaks {row['graph_breaks']} first step {row['first_step_s']:.1f} s "
                  f"max |loss diff| {row['max_loss_diff']:.2e} {'ok' if row['ok'] else 'MISMATCH'}"
                  + (f" breaks: {row['break_reasons']}" if row["graph_breaks"] else ""), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "steps": a.steps, "batch": a.batch, "rows": report}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
