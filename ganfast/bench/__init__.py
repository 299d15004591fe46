"""``ganfast bench``: ganfast's backends against PyTorch eager and ``torch.compile``.

One module per op holds its cases (``ganfast/bench/<op>.py``, a ``cases()``
function returning :class:`~ganfast.bench.case.BenchCase` objects); this
table maps op names to those modules.  A new op adds its module and one line
here, and gets the command, the JSON and the pytest-benchmark suite
(``bench/bench_<op>.py``) from the shared runner.

Nothing here touches a device or imports an op at import time.
"""

from __future__ import annotations

import importlib
from typing import Dict, List

from .case import BenchCase

# op name -> module defining cases() for it.
CASE_MODULES: Dict[str, str] = {
    "bias_act": "ganfast.bench.bias_act",
    "bias_act_pixel_norm": "ganfast.bench.bias_act_pixel_norm",
    "conv_bn_act": "ganfast.bench.conv_bn_act",
    "conv_transpose_bn_act": "ganfast.bench.conv_transpose_bn_act",
    "feature_stats": "ganfast.bench.feature_stats",
    "instance_norm_act": "ganfast.bench.instance_norm_act",
    "minibatch_discrimination": "ganfast.bench.minibatch_discrimination",
    "minibatch_stddev": "ganfast.bench.minibatch_stddev",
    "modulated_conv2d": "ganfast.bench.modulated_conv2d",
    "self_attention2d": "ganfast.bench.self_attention2d",
    "sqrtm_trace": "ganfast.bench.sqrtm_trace",
    "upfirdn2d": "ganfast.bench.upfirdn2d",
}


# Whole training iterations timed next to the ops (``ganfast bench --op
# dcgan_step``, in the default set): name -> module with ``run`` and ``format_result``.
STEPS: Dict[str, str] = {"dcgan_step": "ganfast.bench.dcgan_step"}


# Names that stand for several ops: ``ganfast bench --op fid`` times the
# Frechet distance routes and the feature-statistics accumulation.
ALIASES: Dict[str, List[str]] = {"fid": ["sqrtm_trace", "feature_stats"]}


def bench_ops() -> List[str]:
    """Ops that have benchmark cases."""
    return sorted(CASE_MODULES)


def bench_names() -> List[str]:
    """What ``ganfast bench --op`` accepts besides aliases: the ops, then the whole steps."""
    return bench_ops() + sorted(STEPS)


class UnknownOp(ValueError):
    pass


def check_ops(names: List[str]) -> List[str]:
    """``names`` with aliases expanded and without duplicates, or :class:`UnknownOp` naming the valid ones."""
    names = [op for n in names for op in ALIASES.get(n, [n])]
    unknown = [n for n in names if n not in CASE_MODULES and n not in STEPS]
    if unknown:
        raise UnknownOp(
            f"unknown op{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)}; "
            f"ops with benchmarks: {', '.join(bench_names())} (and {', '.join(sorted(ALIASES))})"
        )
    return list(dict.fromkeys(names))


def load_cases(op: str, quick: bool = False) -> List[BenchCase]:
    """The ``--quick`` set (``quick=True``) or the full set of ``op``'s cases."""
    check_ops([op])
    if op in STEPS:
        return []
    module = importlib.import_module(CASE_MODULES[op])
    return [c for c in module.cases() if c.quick == quick]


def all_cases(op: str) -> List[BenchCase]:
    """Every case of ``op``, quick and full."""
    check_ops([op])
    return list(importlib.import_module(CASE_MODULES[op]).cases())


__all__ = ["CASE_MODULES", "STEPS", "BenchCase", "UnknownOp", "all_cases", "bench_names", "bench_ops", "check_ops",
           "load_cases"]
