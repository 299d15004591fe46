"""The CPU table of bench/RESULTS.md: one representative case per op, every provider interleaved.

    python bench/cpu_table.py [--json OUT.json] [--cases-per-op 2] [--pass fwd+bwd]

``ganfast bench --device cpu`` runs every case that fits a CPU (an hour and
more on 2 cores); this takes, for each op, the first ``--cases-per-op`` cases
that fit (the quick set where no full case does), in float32, and times eager,
``torch.compile``, ``ganfast-auto`` and each ganfast backend interleaved
(:func:`ganfast.bench.timing.time_cpu_interleaved`).  Rows are printed, and
written to ``--json``, as each case finishes.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ganfast.bench import all_cases, bench_ops
from ganfast.bench.report import format_table
from ganfast.bench.runner import BenchConfig, Runner


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None)
    p.add_argument("--cases-per-op", type=int, default=1)
    p.add_argument("--pass", dest="passes", nargs="+", default=["fwd+bwd"])
    p.add_argument("--op", dest="ops", nargs="+", default=None)
    a = p.parse_args(argv)
    cfg = BenchConfig(device=torch.device("cpu"), dtypes=["float32"], passes=a.passes)
    runner = Runner(cfg, progress=lambda s: print(s, file=sys.stderr, flush=True))
    rows = []
    for op in a.ops or bench_ops():
        cases = [c for c in all_cases(op) if not c.quick and c.numel <= cfg.cpu_max_numel and "cpu" in c.devices]
        if not cases:
            cases = [c for c in all_cases(op) if c.quick and "cpu" in c.devices]
        for case in cases[: a.cases_per_op]:
            rows.extend(runner.run([case]))
            if a.json:
                with open(a.json, "w") as f:
                    json.dump({"rows": [r.as_dict() for r in rows]}, f, indent=1)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
