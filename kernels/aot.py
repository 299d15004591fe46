"""Ahead-of-time compilation of every Triton kernel for NVIDIA GPUs, on a machine without one.

The CPU interpreter that runs the kernel tests executes a kernel as Python:
it never lowers a ``tl.dot``, allocates shared memory or runs ``ptxas``, so a
kernel can pass every test here and still fail to compile on a GPU, spill
registers to local memory (every spilled value is a round trip through L1/L2
in the inner loop) or ask for more shared memory than a block may have
(the launch then fails with "out of resource: shared memory").  Triton's
compiler needs no device: ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90, 32))`` produces PTX and, through the ``ptxas``
Triton ships, a cubin.  This module compiles each kernel of
``ganfast.kernels`` in the specialisations its launchers can choose, for
sm_90 (H100/H200) and sm_80 (A100), and reports per case the registers per
thread, the bytes spilled (stores and loads, from ``ptxas -v``) and the
shared memory per block (``compiled.metadata.shared``, what the launch
requests).

What is compiled (:func:`cases`).  Each kernel has *axes*: the dtypes its
launcher accepts, its mode switches (``ACT``, ``BACKWARD``, ``MODE``,
``WHAT``, ``DQ``), its optional features (``HAS_*``, ``STATS``,
``INDEX64``, side-input dtypes) and a *layout* (how Triton specialises the
integer arguments of a dense NCHW or channels-last launch: unit strides
become compile-time 1, multiples of 16 get ``tt.divisibility``, pointers are
16-byte aligned as torch allocates them).  Its *block configurations*
(block sizes, warps, stages) are the launcher's own ``_config`` evaluated
over power-of-two problem sizes: every chooser depends on sizes only
through ``next_power_of_2``, ``min``/``max`` and thresholds at powers of
two, so the sweep reaches every configuration it can return.

* the block configurations of the level (below) are compiled for every
  combination of the kernel's *full* axes (dtype, modes, layout where it
  matters), with the other axes at the heaviest values the launcher allows
  together (features on, 64-bit indexing, float64 side inputs; for a
  parameter the ops leave unbounded, its typical value): this is where
  registers and shared memory peak;
* every pair of values of any two axes that the launcher can combine
  appears in at least one case (a strength-2 covering array, built greedily
  and deterministically), on the smallest block configuration: this
  compiles every branch next to every dtype and mode.

Levels (:data:`LEVELS`), by the block configurations they compile:
``"quick"`` the largest with every combination of the full axes, and the
smallest in the covering rows only, which then hold every pair of values of
any two axes, full ones included (the smallest tile needs the least
registers and shared memory: what it can add is a compile error, and that
comes from a dtype, mode or feature next to the tile, which the pairs
reach); a pairwise axis that is itself a block size (``_Kernel.sizes``:
minibatch_stddev's ``PB``) is paired by its largest and smallest values, and
each value in between compiles once.  ``"extremes"`` the smallest and, for
each (warps, stages), the maximal ones (no other configuration with the
same warps and stages is at least as large in every block dimension), each
with every combination of the full axes; ``"full"`` all of them.  A tile no
larger in any dimension, on the same warps and stages, holds no more
accumulator, operand or pipeline data, so it needs no more registers or
shared memory, and it compiles through the same code: ``"extremes"`` bounds
the resources of ``"full"`` at a fraction of the compiling.  Values the
launchers accept without bound are sampled, and each
sample is stated where its axis is defined (kernel sizes 1..7,
``kernel_dim``, the group size of ``minibatch_stddev``, the query/key width
of ``self_attention2d``).

Resources come from the real compilation: Triton prints ``ptxas -v`` when
``knobs.nvidia.dump_ptxas_log`` is set (``TRITON_DUMP_PTXAS_LOG=1``), and
each process compiles into a fresh cache directory so that ``ptxas`` always
runs.  The limits are the CUDA C++ Programming Guide's (table "Technical
Specifications per Compute Capability": maximum shared memory per thread
block, 227 KB for 9.0 and 163 KB for 8.0; the Hopper and Ampere tuning
guides give the same, 1 KB below the SM's 228 KB and 164 KB).

Whether kernels run under the interpreter is fixed when ``ganfast.kernels``
is first imported (``TRITON_INTERPRET``), so the compiling must happen in a
process where it is unset: :func:`check` starts such processes (``python
-m ganfast.kernels.aot``); :func:`compile_cases` refuses to run in an
interpreting one.  This module reads each kernel module's private kernels
and block-size choosers by attribute, on purpose: the sets compiled are the
launchers' own, not a copy of them (four launch literals are repeated,
each marked "the launcher's": two ``num_warps=4``, conv2d's ``SUM_SPLIT``
and minibatch_discrimination's ``DB``).  Importing it loads neither Triton
nor the kernels.

Command line: ``python -m ganfast.kernels.aot [--level quick|extremes|full]
[--targets 90,80] [--filter TEXT] [--list] [--json]`` prints the table and
exits 1 when a case fails; ``ganfast doctor --kernels`` prints it too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["LEVELS", "SMALL_SPILL", "TARGETS", "Case", "Result", "Target", "cases", "check", "compile_case",
           "compile_cases", "format_table", "main", "problems"]


@dataclasses.dataclass(frozen=True)
class Target:
    """A GPU architecture compiled for: compute capability and per-block limits."""

    capability: int  # 90 for sm_90
    name: str
    max_shared: int  # bytes of shared memory one block may use (opt-in maximum)


#: Compiled for by default.  Shared memory: CUDA C++ Programming Guide, "Technical Specifications per Compute
#: Capability", "Maximum amount of shared memory per thread block": 227 KB (9.0), 163 KB (8.0); what
#: cudaDevAttrMaxSharedMemoryPerBlockOptin reports on an H100 (232448) and an A100 (166912).
TARGETS: Tuple[Target, ...] = (
    Target(90, "sm_90", 227 * 1024),
    Target(80, "sm_80", 163 * 1024),
)

LEVELS = ("quick", "extremes", "full")


@dataclasses.dataclass(frozen=True)
class Case:
    """One specialisation of one kernel: what ``triton.compile`` is given."""

    kernel: str  # "<module>.<kernel>", e.g. "bias_act._bias_act_kernel"
    config: str  # short human-readable description
    constexprs: Tuple[Tuple[str, Any], ...]  # every constexpr parameter, with the runtime ones specialised to 1
    signature: Tuple[Tuple[str, str], ...]  # every parameter's Triton type ("*bf16", "i32", "constexpr")
    aligned: Tuple[str, ...]  # parameters with tt.divisibility 16 (aligned pointers, multiples of 16)
    num_warps: int
    num_stages: int


@dataclasses.dataclass(frozen=True)
class Result:
    """What compiling one case for one target gave.

    ``registers``: per thread; ``spill_stores``/``spill_loads``: bytes per
    thread, from ``ptxas -v``; ``shared``: bytes per block.  ``status`` is
    "ok", "small spill" (below :data:`SMALL_SPILL`, allowed), "error", or
    what is wrong: "spills", "shared memory" or both ("spills, shared
    memory"); ``error`` the compiler's message when the compilation failed.
    (``ptxas`` never assigns more than 255 registers a thread: it spills
    instead.)
    """

    kernel: str
    config: str
    target: str
    registers: Optional[int]
    spill_stores: Optional[int]
    spill_loads: Optional[int]
    shared: Optional[int]
    status: str
    error: str = ""
    seconds: float = 0.0  # wall-clock time of the compilation
    cpu_seconds: float = 0.0  # CPU time of the compilation (ptxas included): what it costs on an idle machine


# -- the covering of each kernel's axes ---------------------------------------------------


def _pow2s(lo: int, hi: int) -> List[int]:
    return [1 << e for e in range(lo.bit_length() - 1, hi.bit_length())]


def _any_row(row: Dict[str, Any]) -> bool:
    return True


def _covering(axes: Dict[str, Sequence[Any]], covered: Iterable[Dict[str, Any]],
              allowed: Callable[[Dict[str, Any]], bool] = _any_row) -> List[Dict[str, Any]]:
    """Rows that, with ``covered``, hold every allowed pair of values of any two axes (greedy, deterministic).

    ``allowed(partial_row)`` says whether values already chosen may go together (the launchers' exclusions);
    it must leave every allowed partial row a completion.
    """
    names = list(axes)
    rank = {(n, v): i for n in names for i, v in enumerate(axes[n])}

    def pairs(row):
        return {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}

    todo = {((a, va), (b, vb)) for a, b in itertools.combinations(names, 2) for va in axes[a] for vb in axes[b]
            if allowed({a: va, b: vb})}
    for row in covered:
        todo -= pairs(row)
    rows = []
    while todo:
        (a, va), (b, vb) = min(todo, key=lambda p: (names.index(p[0][0]), rank[p[0]], names.index(p[1][0]),
                                                    rank[p[1]]))
        row = {a: va, b: vb}
        for n in names:
            if n in row:
                continue

            def gain(v, n=n):
                new = sum(((m, row[m]), (n, v)) in todo if names.index(m) < names.index(n)
                          else ((n, v), (m, row[m])) in todo for m in row)
                return new, -rank[(n, v)]

            row[n] = max([v for v in axes[n] if allowed({**row, n: v})], key=gain)
        rows.append({n: row[n] for n in names})
        todo -= pairs(row)
    return rows


def _extremes(configs: Sequence[Dict[str, Any]], dims: Sequence[str]) -> List[Dict[str, Any]]:
    """The smallest configuration, and the maximal ones for each (num_warps, num_stages)."""
    keep = [min(configs, key=lambda c: math.prod(c[d] for d in dims))]
    for c in configs:
        same = [o for o in configs if (o["num_warps"], o["num_stages"]) == (c["num_warps"], c["num_stages"])]
        if not any(o is not c and all(o[d] >= c[d] for d in dims) and any(o[d] > c[d] for d in dims)
                   for o in same):
            keep.append(c)
    return _unique(keep)


def _unique(items: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out, seen = [], set()
    for it in items:
        key = tuple(sorted(it.items()))
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def _unique_values(values: Iterable[Any]) -> Tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def _by_size(configs: Iterable[Dict[str, Any]], dims: Sequence[str]) -> List[Dict[str, Any]]:
    """Distinct configurations, largest first (the covering rows take the last, the smallest)."""
    return sorted(_unique(configs), key=lambda c: (-math.prod(c[d] for d in dims), -c["num_warps"],
                                                  tuple(-c[d] for d in dims)))


@dataclasses.dataclass
class _Kernel:
    """How one kernel is specialised.

    ``full``: axes compiled in every combination, each with the level's
    block configurations.  ``pairwise``: axes covered in pairs; the first
    value of each goes with every block configuration: the heaviest, or for
    a parameter the ops leave unbounded, the typical one.  ``configs(row)``:
    the launcher's block configurations for a row (largest first), as
    constexprs plus ``num_warps``/``num_stages``.
    ``build(row, config)``: ``(constexprs, pointer dtypes, layout,
    description)``, where the layout maps integer parameters to "1" (the
    launch passes 1: Triton makes it a constant) or "D" (a multiple of 16).
    """

    module: str
    kernel: str
    full: Dict[str, Sequence[Any]]
    pairwise: Dict[str, Sequence[Any]]
    configs: Callable[[Dict[str, Any]], List[Dict[str, Any]]]
    build: Callable[[Dict[str, Any], Dict[str, Any]], Tuple[Dict[str, Any], Dict[str, str], Dict[str, str], str]]
    dims: Sequence[str]  # the block-size keys of a configuration
    wide: Tuple[str, ...] = ()  # integer parameters that reach 2^31 (so Triton types them i64) when INDEX64 is on
    allowed: Callable[[Dict[str, Any]], bool] = _any_row  # which values a launcher can combine (partial rows)
    # Pairwise axes that are block sizes the launcher picks (largest first): "quick" keeps the largest and the
    # smallest, as it does of the block configurations.
    sizes: Tuple[str, ...] = ()

    def heaviest(self, row: Dict[str, Any]) -> Dict[str, Any]:
        """``row`` with every pairwise axis at its heaviest value the launcher allows with the rest."""
        row = dict(row)
        for name, values in self.pairwise.items():
            row[name] = next(v for v in values if self.allowed({**row, name: v}))
        return row


# -- per-kernel axes, from the launchers ----------------------------------------------------


def _ttype(dtype) -> str:
    import torch

    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}[dtype]


def _acc(dtype) -> str:
    from ganfast._dtypes import compute_dtype

    return _ttype(compute_dtype(dtype))


def _dtypes():
    """The storage dtypes, heaviest (float64 accumulation) first."""
    from ganfast._dtypes import FLOAT_DTYPES

    return tuple(reversed(FLOAT_DTYPES))


def _flags(row: Dict[str, Any], names: Sequence[str]) -> str:
    return " ".join(n for n in names if row.get(n))


def _specs(level: str) -> List[_Kernel]:
    """Every kernel's axes and configurations (imports the kernel modules: Triton must not interpret)."""
    import torch
    import triton

    from ganfast._activations import NAMES
    from ganfast.kernels import _common
    from ganfast.kernels import batch_norm_act as bn
    from ganfast.kernels import bias_act, conv2d, feature_stats
    from ganfast.kernels import bias_act_pixel_norm as bapn
    from ganfast.kernels import minibatch_discrimination as mbd
    from ganfast.kernels import minibatch_stddev as mbstd
    from ganfast.kernels import self_attention2d as attn
    from ganfast.kernels import upfirdn2d as ufd

    dtypes = _dtypes()

    def pick(configs, dims):
        configs = _by_size(configs, dims)
        if level == "quick":
            return _unique([configs[0], configs[-1]])
        return configs if level == "full" else _by_size(_extremes(configs, dims), dims)

    specs: List[_Kernel] = []

    # bias_act: a flat elementwise pass; the block depends on the element count only.
    def ba_configs(row):
        return pick(({"BLOCK": b, "num_warps": w, "num_stages": 3} for b, w in map(bias_act._config, _pow2s(1, 2**34))),
                    ["BLOCK"])

    # Layouts of (n, channels, channel_stride): NCHW (channel_stride = H*W), channels_last (1), odd sizes.
    ba_layouts = {"odd": {}, "nchw": {"n": "D", "channels": "D", "channel_stride": "D"},
                  "nhwc": {"n": "D", "channels": "D", "channel_stride": "1"}}

    def ba_build(row, cfg):
        x = _ttype(row["dtype"])
        bias = {"x": x}.get(row["bias"], row["bias"]) if row["HAS_BIAS"] else x
        const = dict(ACT=row["ACT"], BACKWARD=row["BACKWARD"], HAS_BIAS=row["HAS_BIAS"], HAS_CLAMP=row["HAS_CLAMP"],
                     ACC=_acc(row["dtype"]), INDEX64=row["INDEX64"], BLOCK=cfg["BLOCK"])
        ptrs = dict(x_ptr=x, g_ptr=x, b_ptr=bias, out_ptr=x)
        text = (f"{x} {row['ACT']} {'bwd' if row['BACKWARD'] else 'fwd'} {_flags(row, ['HAS_BIAS', 'HAS_CLAMP'])}"
                f"{' (bias ' + bias + ')' if row['HAS_BIAS'] else ''}")
        return const, ptrs, ba_layouts[row["layout"]], text

    specs.append(_Kernel(
        "bias_act", "_bias_act_kernel",
        full=dict(dtype=dtypes, ACT=NAMES, BACKWARD=(False, True)),
        pairwise=dict(HAS_BIAS=(True, False), bias=("fp64", "fp32", "x"), HAS_CLAMP=(True, False),
                      INDEX64=(True, False), layout=tuple(ba_layouts)),
        configs=ba_configs, build=ba_build, dims=["BLOCK"], wide=("n",)))

    # bias_act_pixel_norm: one program per tile of pixels, each pixel's channel vector reduced in the tile.  The
    # block depends on (C, P, dtype); SINGLE (the whole channel vector in registers, C <= 1024) is a full axis.
    pn_dims = ["BLOCK_C", "BLOCK_P"]

    @functools.lru_cache(maxsize=None)
    def pn_all(dtype, single):
        out = []
        for c, p in itertools.product(_pow2s(1, 2**16), _pow2s(1, 2**26)):
            bp, bc, one, w = bapn._config(c, p, dtype)
            if one == single:
                out.append({"BLOCK_C": bc, "BLOCK_P": bp, "SINGLE": one, "num_warps": w, "num_stages": 3})
        return _by_size(out, pn_dims)

    # Layouts of the (n, c, h, w) strides and sizes: NCHW (unit w stride), channels_last (unit c stride), and a
    # 2-D (N, C) latent batch (H = W = 1, h and w strides 0, unit c stride).
    pn_sizes = {"P": "D", "C": "D", "HW": "D", "W": "D"}

    def pn_layout(c, w, **sizes):
        return dict(pn_sizes, **sizes, **{f"s{t}_{d}": s for t in "xgo" for d, s in (("n", "D"), ("c", c), ("h", "D"),
                                                                                      ("w", w))})

    pn_layouts = {"nchw": pn_layout("D", "1"), "nhwc": pn_layout("1", "D"), "2d": pn_layout("1", "D", HW="1", W="1")}

    def pn_build(row, cfg):
        x = _ttype(row["dtype"])
        const = {k: row[k] for k in ("BACKWARD", "HAS_BIAS", "INDEX64")}
        const.update({k: cfg[k] for k in ("SINGLE", "BLOCK_P", "BLOCK_C")}, ACC=_acc(row["dtype"]))
        bias = (x if row["bias"] == "x" else row["bias"]) if row["HAS_BIAS"] else x
        ptrs = dict(x_ptr=x, g_ptr=x, out_ptr=x, b_ptr=bias)
        words = [x, row["layout"], "bwd" if row["BACKWARD"] else "fwd", "single" if cfg["SINGLE"] else "two-pass"]
        if row["HAS_BIAS"]:
            words.append("bias " + bias)
        return const, ptrs, pn_layouts[row["layout"]], " ".join(words)

    specs.append(_Kernel(
        "bias_act_pixel_norm", "_bias_act_pixel_norm_kernel",
        full=dict(dtype=dtypes, BACKWARD=(False, True), SINGLE=(True, False)),
        pairwise=dict(HAS_BIAS=(True, False), bias=("fp64", "fp32", "x"), INDEX64=(True, False),
                      layout=tuple(pn_layouts)),
        configs=lambda row: pick(pn_all(row["dtype"], row["SINGLE"]), pn_dims),
        build=pn_build, dims=pn_dims))

    # upfirdn2d: one program per (plane, tile of outputs); the tile depends on the output's (H, W) only.  The
    # factors are compile-time (StyleGAN2's 1 and 2, and 4), the same on both axes here: an anisotropic pair
    # compiles through the same code with the two values.
    ufd_dims = ["BLOCK_H", "BLOCK_W"]

    def ufd_configs(row):
        return pick(({"BLOCK_H": bh, "BLOCK_W": bw, "num_warps": w, "num_stages": 3}
                     for bh, bw, w in (ufd._config(h, w) for h in _pow2s(1, 2**14) for w in _pow2s(1, 2**14))),
                    ufd_dims)

    def ufd_layout(c, w):
        out = {k: "D" for k in ("C", "H", "W", "OH", "OW", "TILES_W", "TILES")}
        out.update({f"s{t}_{d}": "D" for t in "xo" for d in "nh"})
        out.update({f"s{t}_c": c for t in "xo"}, **{f"s{t}_w": w for t in "xo"})
        return out

    ufd_layouts = {"nchw": ufd_layout("D", "1"), "nhwc": ufd_layout("1", "D"), "odd": {}}

    def ufd_build(row, cfg):
        x, acc = _ttype(row["dtype"]), _acc(row["dtype"])
        const = dict(UP_X=row["up"], UP_Y=row["up"], DOWN_X=row["down"], DOWN_Y=row["down"], ACC=acc,
                     INDEX64=row["INDEX64"], BLOCK_H=cfg["BLOCK_H"], BLOCK_W=cfg["BLOCK_W"])
        ptrs = dict(x_ptr=x, out_ptr=x, k_ptr=acc)
        return const, ptrs, ufd_layouts[row["layout"]], f"{x} {row['layout']} up {row['up']} down {row['down']}"

    specs.append(_Kernel(
        "upfirdn2d", "_upfirdn2d_kernel", full=dict(dtype=dtypes),
        pairwise=dict(up=(2, 1, 4), down=(2, 1, 4), INDEX64=(True, False), layout=tuple(ufd_layouts)),
        configs=ufd_configs, build=ufd_build, dims=ufd_dims, wide=("sx_n", "so_n")))

    # batch_norm_act: the elementwise pass, the two-level reduction and its merge.
    def bn_geometries():
        for outer, channels, inner in itertools.product(_pow2s(1, 2**24), _pow2s(1, 2**13), _pow2s(1, 2**16)):
            yield outer * channels * inner, bn._Geometry(outer, channels * inner, channels, inner, inner)

    bn_all = [bn._config(numel, geo) for numel, geo in bn_geometries()]
    flat_layouts = {"odd": {}, "nchw": {"n": "D", "channels": "D", "channel_stride": "D"},
                    "nhwc": {"n": "D", "channels": "D", "channel_stride": "1"}}

    def apply_build(row, cfg):
        y, acc = _ttype(row["dtype"]), _acc(row["dtype"])
        const = dict(MODE=row["MODE"], ACC=acc, INDEX64=row["INDEX64"], BLOCK=cfg["BLOCK"])
        ptrs = dict(y_ptr=y, g_ptr=y, out_ptr=y)  # the seven per-channel vectors are ACC (the default below)
        return const, ptrs, flat_layouts[row["layout"]], f"{y} {row['MODE']}"

    specs.append(_Kernel(
        "batch_norm_act", "_apply_kernel",
        full=dict(dtype=dtypes, MODE=("forward", "backward", "bn_backward")),
        pairwise=dict(INDEX64=(True, False), layout=tuple(flat_layouts)),
        configs=lambda row: pick(({"BLOCK": c.block, "num_warps": c.warps, "num_stages": 3} for c in bn_all),
                                 ["BLOCK"]),
        build=apply_build, dims=["BLOCK"], wide=("n",)))

    red_dims = ["BLOCK_O1", "BLOCK_O2", "BLOCK_C", "BLOCK_I"]

    def red_build(row, cfg):
        y, acc = _ttype(row["dtype"]), _acc(row["dtype"])
        const = dict(WHAT=row["WHAT"], ACC=acc, INDEX64=row["INDEX64"],
                     **{d: cfg[d] for d in red_dims})
        # The tile follows the layout: BLOCK_I = 1 is channels_last (inner = channel_stride = 1), else NCHW.
        if cfg["BLOCK_I"] == 1:
            layout = {"inner": "1", "channel_stride": "1", "channels": "D", "outer_stride": "D"}
        else:
            layout = {"inner": "D", "channel_stride": "D", "channels": "D", "outer_stride": "D"}
        return const, dict(y_ptr=y, g_ptr=y), layout, f"{y} {row['WHAT']}"

    specs.append(_Kernel(
        "batch_norm_act", "_reduce_kernel",
        full=dict(dtype=dtypes, WHAT=("stats", "grad")),
        pairwise=dict(INDEX64=(True, False)),
        configs=lambda row: pick(({"BLOCK_O1": c.block_o // c.block_o2, "BLOCK_O2": c.block_o2, "BLOCK_C": c.block_c,
                                   "BLOCK_I": c.block_i, "num_warps": c.reduce_warps, "num_stages": 3}
                                  for c in bn_all), red_dims),
        build=red_build, dims=red_dims))

    def merge_build(row, cfg):
        y = _ttype(row["dtype"])
        const = dict(WHAT=row["WHAT"], BLOCK_P=cfg["BLOCK_P"], BLOCK_C=cfg["BLOCK_C"])
        layout = {"channels": "D", "channel_stride": "1" if row["layout"] == "nhwc" else "D"}
        return const, dict(y_ptr=y, part_ptr=_acc(row["dtype"]), out_a_ptr=_acc(row["dtype"]),
                           out_b_ptr=_acc(row["dtype"])), layout, f"{y} {row['WHAT']}"

    specs.append(_Kernel(
        "batch_norm_act", "_merge_kernel",
        full=dict(dtype=dtypes, WHAT=("stats", "grad")),
        pairwise=dict(layout=("nchw", "nhwc")),
        # num_warps=4: the launcher's literal.
        configs=lambda row: pick(({"BLOCK_P": c.merge_p, "BLOCK_C": c.merge_c, "num_warps": 4, "num_stages": 3}
                                  for c in bn_all), ["BLOCK_P", "BLOCK_C"]),
        build=merge_build, dims=["BLOCK_P", "BLOCK_C"]))

    # conv2d: the implicit GEMM.  Layouts of a 3x3, stride-2, padding-1 layer with 64 channels in and out at 32x32
    # (stride 2: a downsampling or transposed layer, the heavier index arithmetic; padding 1 is the constant 1).
    conv_dims = ["BLOCK_M", "BLOCK_N", "BLOCK_K"]
    conv_sizes = {"c_in": "D", "h_in": "D", "w_in": "D", "c_out": "D", "h_out": "D", "w_out": "D", "pad_h": "1",
                  "pad_w": "1", "m_tiles": "D", "plane": "D", "sx_n": "D", "sw_o": "D", "sy_n": "D"}
    conv_layouts = {
        "nchw": dict(conv_sizes, sx_c="D", sx_h="D", sx_w="1", sw_w="1", sy_c="D", sy_h="D", sy_w="1"),
        "nhwc": dict(conv_sizes, sx_c="1", sx_h="D", sx_w="D", sw_i="1", sw_h="D", sw_w="D", sy_c="1", sy_h="D",
                     sy_w="D"),
    }
    # Kernel sizes (the launcher takes 1..7 each): KH and KW only enter integer tap arithmetic (no tile shape or
    # loop is sized by them), so 1 (one tap: folds away), 3, 4 (the transposed 4x4 of DCGANs), 7 (the largest)
    # and an asymmetric 1x7 stand for the 49.
    kernel_sizes = ((7, 7), (4, 4), (3, 3), (1, 1), (1, 7))

    @functools.lru_cache(maxsize=None)
    def conv_all(dtype, index64):
        out = []
        for m, n, k in itertools.product(_pow2s(1, 2**20), repeat=3):
            c = conv2d._config(m, n, k, dtype, index64)
            out.append({"BLOCK_M": c.block_m, "BLOCK_N": c.block_n, "BLOCK_K": c.block_k, "num_warps": c.warps,
                        "num_stages": c.stages})
        return _by_size(out, conv_dims)

    def conv_configs(row):
        return pick(conv_all(row["dtype"], bool(row["INDEX64"])), conv_dims)  # 64-bit offsets: smaller tiles

    def conv_allowed(row):
        # conv2d_stats and conv_transpose2d_stats take no epilogue, per-sample scale, addend or out_dtype; the
        # per-sample scales and addend (modulated_conv2d) take no per-channel scale, shift or activation.
        epilogue = row.get("HAS_SCALE") or row.get("HAS_SHIFT") or row.get("HAS_ACT")
        per_sample = row.get("HAS_IN_SCALE") or row.get("HAS_OUT_SCALE") or row.get("HAS_ADD")
        if row.get("STATS"):
            return not (epilogue or per_sample or row.get("out", "x") != "x")
        return not (epilogue and per_sample)

    def conv_build(row, cfg):
        x, acc = _ttype(row["dtype"]), _acc(row["dtype"])
        out = x if row["out"] == "x" else row["out"]
        kh, kw = row["kernel"]
        const = dict(KH=kh, KW=kw, TRANSPOSED=row["TRANSPOSED"], HAS_BIAS=row["HAS_BIAS"],
                     HAS_SCALE=row["HAS_SCALE"], HAS_SHIFT=row["HAS_SHIFT"], HAS_ACT=row["HAS_ACT"],
                     HAS_IN_SCALE=row["HAS_IN_SCALE"], HAS_OUT_SCALE=row["HAS_OUT_SCALE"], HAS_ADD=row["HAS_ADD"],
                     STATS=row["STATS"], ACC=acc, INDEX64=row["INDEX64"], DOT_F32=_common.dot_upcast(row["dtype"]),
                     SUM_SPLIT=min(16, cfg["BLOCK_M"]),  # the launcher's expression
                     **{d: cfg[d] for d in conv_dims})
        ptrs = dict(x_ptr=x, w_ptr=x, b_ptr=row["bias"] if row["HAS_BIAS"] else x,
                    scale_ptr=row["scale"] if row["HAS_SCALE"] else x,
                    shift_ptr=row["shift"] if row["HAS_SHIFT"] else x, y_ptr=out,
                    add_ptr=(x if row["add"] == "x" else row["add"]) if row["HAS_ADD"] else x,
                    part_ptr=acc if row["STATS"] else x)  # xs_ptr, os_ptr: ACC (the default)
        feats = [f for f, on in (("bias " + row["bias"], row["HAS_BIAS"]), ("scale " + row["scale"], row["HAS_SCALE"]),
                                 ("shift " + row["shift"], row["HAS_SHIFT"]), ("act", row["HAS_ACT"]),
                                 ("in_scale", row["HAS_IN_SCALE"]), ("out_scale", row["HAS_OUT_SCALE"]),
                                 ("add " + row["add"], row["HAS_ADD"]), ("stats", row["STATS"])) if on]
        text = (f"{x} {row['layout']} {'transposed' if row['TRANSPOSED'] else 'conv'} {kh}x{kw} "
                f"{','.join(feats)}{' y ' + out if out != x else ''}")
        return const, ptrs, conv_layouts[row["layout"]], text

    specs.append(_Kernel(
        "conv2d", "_conv_kernel",
        full=dict(dtype=dtypes, layout=tuple(conv_layouts), STATS=(True, False)),
        pairwise=dict(TRANSPOSED=(True, False), HAS_BIAS=(True, False), HAS_SCALE=(True, False),
                      HAS_SHIFT=(True, False), HAS_ACT=(True, False), HAS_IN_SCALE=(True, False),
                      HAS_OUT_SCALE=(True, False), HAS_ADD=(True, False), INDEX64=(True, False), kernel=kernel_sizes,
                      add=("x", "fp32", "fp64"),
                      bias=("fp64", "fp32", "bf16", "fp16"), scale=("fp64", "fp32"), shift=("fp64", "fp32"),
                      out=("x", "fp64", "fp32", "bf16", "fp16")),
        configs=conv_configs, build=conv_build, dims=conv_dims, allowed=conv_allowed))

    # feature_stats: x (n, d) rows of features, read through its strides (unit feature stride for a dense batch).
    fs_layouts = {"d%16": {"n": "D", "d": "D", "stride_xn": "D", "stride_xd": "1"}, "odd": {"stride_xd": "1"}}

    def fs_build(row, cfg):
        x = _ttype(row["dtype"])
        const = dict(BLOCK_N=cfg["BLOCK_N"], BLOCK_D=cfg["BLOCK_D"])
        ptrs = dict(x_ptr=x, shift_ptr="fp64", total_ptr="fp64", gram_ptr="fp64", pairs_ptr="i32")
        return const, ptrs, fs_layouts[row["layout"]], x

    specs.append(_Kernel(
        "feature_stats", "_feature_stats_kernel",
        # The launcher widens 16-bit x to float32 first.
        full=dict(dtype=tuple(d for d in dtypes if d in feature_stats._KERNEL_DTYPES)),
        pairwise=dict(layout=tuple(fs_layouts)),
        configs=lambda row: pick(({"BLOCK_D": d, "BLOCK_N": n, "num_warps": w, "num_stages": 3}
                                  for d, n, w in map(feature_stats._config, _pow2s(1, 2**16))), ["BLOCK_D", "BLOCK_N"]),
        build=fs_build, dims=["BLOCK_D", "BLOCK_N"]))

    # minibatch_discrimination: M stored as (K, D, B) (unit batch stride), o (B, K) and dM (B, K, D) contiguous,
    # batch a multiple of 16.  D (kernel_dim, unbounded in the op) is the unroll count of the distance loop:
    # Salimans et al.'s 5 goes with every block configuration; 16, 8 and the small ones on the smallest tile
    # (larger D only lengthens the unrolled loop).
    mbd_dims = ["BLOCK_I", "BLOCK_J"]
    mbd_layout = {"B": "D", "s_mb": "1", "s_mk": "D", "s_md": "D", "s_ok": "1", "s_gk": "1", "s_dd": "1"}

    def mbd_configs(row):
        return pick(({"BLOCK_I": bi, "BLOCK_J": bj, "num_warps": w, "num_stages": 3}
                     for bi, bj, w in map(mbd._config, _pow2s(1, 2**16))), mbd_dims)

    def mbd_build(backward):
        def build(row, cfg):
            m, acc = _ttype(row["dtype"]), _acc(row["dtype"])
            const = dict(D=row["D"], ACC=acc, **{d: cfg[d] for d in mbd_dims})
            if backward:
                const["DB"] = triton.next_power_of_2(row["D"])  # the launcher's expression
                ptrs = dict(g_ptr=row["other"], m_ptr=m, dm_ptr=m)
            else:
                ptrs = dict(m_ptr=m, o_ptr=row["other"])
            return const, ptrs, mbd_layout, f"{m} D={row['D']} {'g' if backward else 'o'} {row['other']}"
        return build

    for name, backward in (("_forward_kernel", False), ("_backward_kernel", True)):
        specs.append(_Kernel(
            "minibatch_discrimination", name, full=dict(dtype=dtypes),
            pairwise=dict(D=(5, 16, 8, 3, 2, 1), other=("fp64", "fp32", "bf16", "fp16")),
            configs=mbd_configs, build=mbd_build(backward), dims=mbd_dims))

    # minibatch_stddev: the group size G is unbounded in the op (it divides the batch); G up to 64 (StyleGAN's 4,
    # ProGAN's whole minibatch of 16..64) is compiled.  PB comes from the number of partials, any count.
    std_dims = ["GB", "BLOCK"]

    def std_configs(row):
        return pick(({"GB": gb, "BLOCK": block, "num_warps": w, "num_stages": 3}
                     for gb, block, _, w in (mbstd._config(g, p) for g in _pow2s(1, 64) for p in _pow2s(1, 2**26))),
                    std_dims)

    pbs = tuple(sorted({mbstd._partials_block(s) for s in _pow2s(1, 2**20)}, reverse=True))
    std_layout = {"HW": "D", "W": "D", "sx_n": "D", "sx_c": "D", "sx_h": "D", "sx_w": "1", "so_n": "D", "so_c": "D",
                  "so_h": "D", "so_w": "1", "sg_n": "D", "sg_c": "D", "sg_h": "D", "sg_w": "1", "sd_n": "D",
                  "sd_c": "D", "sd_h": "D", "sd_w": "1"}

    def std_build():
        def build(row, cfg):
            x, acc = _ttype(row["dtype"]), _acc(row["dtype"])
            const = dict(ACC=acc, GB=cfg["GB"], BLOCK=cfg["BLOCK"], INDEX64=row["INDEX64"])
            for flag in [f for f in ("FLAT_X", "FLAT_O", "FLAT_G", "FLAT_D") if f in row]:
                const[flag] = row[flag]
            if "PB" in row:
                const["PB"] = row["PB"]
            ptrs = {p: x for p in ("x_ptr", "out_ptr", "g_ptr", "dx_ptr")}
            flats = [f for f in ("FLAT_X", "FLAT_O", "FLAT_G", "FLAT_D") if row.get(f)]
            return const, ptrs, std_layout, f"{x} {' '.join(flats)}{' PB=' + str(row['PB']) if 'PB' in row else ''}"
        return build

    std_flags = {"_stats_kernel": ("FLAT_X", "FLAT_O"), "_fill_kernel": ("FLAT_O",), "_grad_sum_kernel": ("FLAT_G",),
                 "_backward_kernel": ("FLAT_G", "FLAT_X", "FLAT_D")}
    for name, flags in std_flags.items():
        pairwise = dict(INDEX64=(True, False), **{f: (False, True) for f in flags})  # FLAT_*: False divides
        if name in ("_fill_kernel", "_backward_kernel"):
            pairwise["PB"] = pbs
        specs.append(_Kernel("minibatch_stddev", name, full=dict(dtype=dtypes), pairwise=pairwise,
                             configs=std_configs, build=std_build(), dims=std_dims,
                             sizes=("PB",) if "PB" in pairwise else ()))

    # self_attention2d.  Query/key width d (unbounded in the op): SAGAN's C / 8 for C up to 1024, so BLOCK_D up to
    # 128.  Layouts of the (B, channels, N) arguments: the flattened output of a 1x1 convolution in NCHW (unit
    # position stride) or channels_last (unit channel stride); outputs, lse and delta are contiguous.
    attn_dims = ["BLOCK_M", "BLOCK_N", "BLOCK_D", "BLOCK_C"]

    @functools.lru_cache(maxsize=None)
    def attn_all(dtype, index64):
        out = []
        for n_pos, d_qk, d_v in itertools.product(_pow2s(1, 2**14), _pow2s(1, 128), _pow2s(1, 2**10)):
            c = attn._config(n_pos, d_qk, d_v, dtype, index64)
            out.append({**{d: c[d] for d in attn_dims}, "num_warps": c["num_warps"], "num_stages": 3})
        return _by_size(out, attn_dims)

    def attn_configs(row):
        return pick(attn_all(row["dtype"], bool(row["INDEX64"])), attn_dims)  # 64-bit offsets: smaller tiles

    outs = {"s_on": "1", "s_ln": "1", "s_dn": "1", "s_dqn": "1", "s_dkn": "1", "s_dvn": "1", "s_lb": "D", "s_db": "D",
            "s_ob": "D", "s_oc": "D", "s_dqb": "D", "s_dqd": "D", "s_dkb": "D", "s_dkd": "D", "s_dvb": "D",
            "s_dvc": "D", "n_pos": "D", "d_qk": "D", "d_v": "D"}
    ins = ("q", "k", "v", "g")
    attn_layouts = {
        "nchw": dict(outs, **{f"s_{t}{c}": s for t in ins for c, s in (("b", "D"), ("n", "1"))},
                     s_qd="D", s_kd="D", s_vc="D", s_gc="D"),
        "nhwc": dict(outs, **{f"s_{t}{c}": s for t in ins for c, s in (("b", "D"), ("n", "D"))},
                     s_qd="1", s_kd="1", s_vc="1", s_gc="1"),
    }

    def attn_build(kind):
        def build(row, cfg):
            x = _ttype(row["dtype"])
            q = torch.empty((1, 1, 1), dtype=row["dtype"])
            flags, _, _ = attn._launch_args(q, q, 1.0)  # PRECISION and UPCAST as the launcher sets them
            flags = dict(flags, ACC=_acc(row["dtype"]))
            if kind == "delta":
                const = dict(ACC=flags["ACC"], INDEX64=row["INDEX64"], BLOCK_M=cfg["BLOCK_M"],
                             BLOCK_C=cfg["BLOCK_C"])
            else:
                const = dict(flags, INDEX64=row["INDEX64"], **{d: cfg[d] for d in attn_dims})
                if kind != "fwd":
                    const["DQ"] = kind == "dq"
            ptrs = {p: x for p in ("q_ptr", "k_ptr", "v_ptr", "o_ptr", "g_ptr", "dq_ptr", "dk_ptr", "dv_ptr")}
            return const, ptrs, attn_layouts[row["layout"]], f"{x} {row['layout']} {kind}"
        return build

    for name, kind in (("_fwd_kernel", "fwd"), ("_bwd_kernel", "dq"), ("_bwd_kernel", "dkdv")):
        specs.append(_Kernel("self_attention2d", name, full=dict(dtype=dtypes, layout=tuple(attn_layouts)),
                             pairwise=dict(INDEX64=(True, False)), configs=attn_configs, build=attn_build(kind),
                             dims=attn_dims))
    # _delta_kernel: num_warps=4, the launcher's literal; its tile is (BLOCK_M, BLOCK_C) of the same configuration.
    specs.append(_Kernel(
        "self_attention2d", "_delta_kernel", full=dict(dtype=dtypes, layout=tuple(attn_layouts)),
        pairwise=dict(INDEX64=(True, False)),
        configs=lambda row: pick(({"BLOCK_M": c["BLOCK_M"], "BLOCK_C": c["BLOCK_C"], "num_warps": 4, "num_stages": 3}
                                  for c in attn_configs(dict(row))), ["BLOCK_M", "BLOCK_C"]),
        build=attn_build("delta"), dims=["BLOCK_M", "BLOCK_C"]))
    return specs


def _kernel_names() -> List[str]:
    """Every ``@triton.jit`` kernel (a function named ``*_kernel``) of the kernel modules."""
    import pkgutil

    import triton

    import ganfast.kernels as pkg

    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name == "aot":
            continue
        mod = importlib.import_module(f"ganfast.kernels.{info.name}")
        for attr, value in vars(mod).items():
            if isinstance(value, triton.runtime.JITFunction) and attr.endswith("_kernel"):
                names.append(f"{info.name}.{attr}")
    return sorted(names)


def _case(spec: _Kernel, row: Dict[str, Any], cfg: Dict[str, Any]) -> Case:
    import triton.language as tl

    mod = importlib.import_module(f"ganfast.kernels.{spec.module}")
    fn = getattr(mod, spec.kernel)
    const, ptrs, layout, text = spec.build(row, cfg)
    index64 = bool(const.get("INDEX64"))
    constexprs, signature, aligned = [], [], []
    for p in fn.params:
        name = p.name
        if p.is_constexpr:
            if name not in const:
                raise KeyError(f"{spec.module}.{spec.kernel}: no value for constexpr {name}")
            value = const[name]
            if name == "ACC":
                value = {"fp32": tl.float32, "fp64": tl.float64}[value]
            constexprs.append((name, value))
            signature.append((name, "constexpr"))
        elif name.endswith("_ptr"):
            # Per-channel vectors and partial buffers are in the accumulation dtype unless a row says otherwise.
            signature.append((name, "*" + ptrs.get(name, const.get("ACC") or "fp32")))
            aligned.append(name)
        elif name.endswith(("_hi", "_lo")):
            signature.append((name, "fp32"))
        elif layout.get(name) == "1":
            constexprs.append((name, 1))
            signature.append((name, "constexpr"))
        else:
            # INDEX64 is switched on by a tensor's extent; of the integers, only a flat kernel's element count
            # passes 2^31 with it (Triton then types it i64): sizes and strides of one image stay below.
            signature.append((name, "i64" if index64 and name in spec.wide else "i32"))
            if layout.get(name) == "D":
                aligned.append(name)
    extra = [k for k in const if k not in fn.arg_names]
    if extra:
        raise KeyError(f"{spec.module}.{spec.kernel}: no parameters {extra}")
    tile = "x".join(str(cfg[d]) for d in spec.dims)
    flags = " I64" if index64 else ""
    stages = f" s{cfg['num_stages']}" if spec.module == "conv2d" else ""  # the only launcher that sets them
    config = f"{text.strip()} {tile} w{cfg['num_warps']}{stages}"
    return Case(f"{spec.module}.{spec.kernel}", " ".join((config + flags).split()), tuple(constexprs),
                tuple(signature), tuple(aligned), cfg["num_warps"], cfg["num_stages"])


def cases(level: str = "quick", kernel_filter: str = "") -> List[Case]:
    """The specialisations compiled at ``level`` (one of :data:`LEVELS`) of the kernels whose
    ``"<module>.<kernel>"`` name contains ``kernel_filter``, in a fixed order.

    Imports the kernel modules: call it where ``TRITON_INTERPRET`` is unset.

    Raises:
        ValueError: ``level`` is not one of :data:`LEVELS`.
        RuntimeError: ``ganfast.kernels`` was imported under ``TRITON_INTERPRET=1``.
        LookupError: a ``*_kernel`` of the kernel modules has no specification here.
    """
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level!r}")
    if _interpreting():
        raise RuntimeError(_INTERPRETING)
    specs = _specs(level)
    missing = sorted(set(_kernel_names()) - {f"{s.module}.{s.kernel}" for s in specs})
    if missing:
        raise LookupError(f"kernels without a compile specification in ganfast.kernels.aot: {missing}")
    out: List[Case] = []
    seen = set()
    for spec in specs:
        name = f"{spec.module}.{spec.kernel}"
        if kernel_filter and kernel_filter not in name:
            continue
        seeds = [spec.heaviest(dict(zip(spec.full, combo))) for combo in itertools.product(*spec.full.values())]
        axes = dict(spec.full, **spec.pairwise)
        if level == "quick":
            # The largest configuration with every combination of the full axes (where registers and shared
            # memory peak); the smallest with every pair of values of any two axes, full ones included, where a
            # block-size axis pairs its largest and smallest values, and each value in between comes once, with
            # the heaviest values of the rest.
            ends = {n: _unique_values((axes[n][0], axes[n][-1])) for n in spec.sizes}
            covering = _covering(dict(axes, **ends), [], spec.allowed)
            covering += [dict(seeds[0], **{n: v}) for n in spec.sizes for v in axes[n] if v not in ends[n]]
            rows = [(row, spec.configs(row)[0]) for row in seeds]
            rows += [(row, spec.configs(row)[-1]) for row in covering]
        else:
            rows = [(row, cfg) for row in seeds for cfg in spec.configs(row)]
            rows += [(row, spec.configs(row)[-1]) for row in _covering(axes, seeds, spec.allowed)]
        for row, cfg in rows:
            case = _case(spec, row, cfg)
            key = (case.kernel, case.constexprs, case.signature, case.aligned, case.num_warps, case.num_stages)
            if key not in seen:
                seen.add(key)
                out.append(case)
    return out


# -- compiling ------------------------------------------------------------------------------------

#: Spills that do not fail the check: at most this many bytes a thread stored and loaded, by a kernel
#: below the register limit (255).  Such spills are ptxas's scheduling choice, not register pressure:
#: measured (triton 3.9, ptxas for sm_90a) on self_attention2d's 16 x 16 dK/dV tile, 4 bytes spilled at
#: 96 of 255 registers, no local memory in the PTX, gone with 2 warps instead of 4; across the sweep
#: they are 4 to 16 bytes at 48 to 168 registers, and they appear and vanish with the warps count and
#: the ptxas version.  A kernel at the limit that spills anything, or one that spills more, fails.
SMALL_SPILL = 16
_REGISTER_LIMIT = 255

_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


_INTERPRETING = ("ganfast.kernels was imported under TRITON_INTERPRET=1: compile in a process where it is unset "
                 "(ganfast.kernels.aot.check starts such processes)")


def _interpreting() -> bool:
    from ganfast import kernels

    return kernels.INTERPRET


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (ptxas), in seconds."""
    import resource

    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _describe(err: BaseException) -> str:
    """The innermost cause's last line first (Triton wraps it in a CompilationError), then each error in turn."""
    chain = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    lines = str(chain[-1]).strip().splitlines() or [""]
    head = f"{type(chain[-1]).__name__}: {lines[-1]}"
    return "\n".join([head] + [f"{type(e).__name__}: {e}"[-1500:] for e in chain])


def compile_case(case: Case, target: Target) -> Result:
    """Compile ``case`` for ``target`` and judge it against the target's limits.

    Raises:
        RuntimeError: this process imported ``ganfast.kernels`` under ``TRITON_INTERPRET=1``.
    """
    if _interpreting():
        raise RuntimeError(_INTERPRETING)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module, kernel = case.kernel.split(".")
    fn = getattr(importlib.import_module(f"ganfast.kernels.{module}"), kernel)
    index = {name: i for i, name in enumerate(fn.arg_names)}
    src = ASTSource(fn=fn, signature=dict(case.signature),
                    constexprs={(index[k],): v for k, v in case.constexprs},
                    attrs={(index[k],): [["tt.divisibility", 16]] for k in case.aligned})
    triton.knobs.nvidia.dump_ptxas_log = True
    log = io.StringIO()
    start, cpu = time.perf_counter(), _cpu_seconds()
    base = dict(kernel=case.kernel, config=case.config, target=target.name)
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = triton.compile(src, target=GPUTarget("cuda", target.capability, 32),
                                      options=dict(num_warps=case.num_warps, num_stages=case.num_stages))
    except Exception as err:  # a compile error is a result
        return Result(**base, registers=None, spill_stores=None, spill_loads=None, shared=None, status="error",
                      error=_describe(err), seconds=time.perf_counter() - start, cpu_seconds=_cpu_seconds() - cpu)
    times = dict(seconds=time.perf_counter() - start, cpu_seconds=_cpu_seconds() - cpu)
    text = log.getvalue()
    regs, spills = _PTXAS_REGS.search(text), _PTXAS_SPILLS.search(text)
    shared = compiled.metadata.shared
    if regs is None or spills is None:
        return Result(**base, registers=None, spill_stores=None, spill_loads=None, shared=shared, status="error",
                      error="no ptxas -v report (was the cubin taken from a cache?)", **times)
    r, ss, sl = int(regs.group(1)), int(spills.group(1)), int(spills.group(2))
    status = _status(r, ss, sl, shared, target)
    return Result(**base, registers=r, spill_stores=ss, spill_loads=sl, shared=shared, status=status, **times)


def _status(registers: int, spill_stores: int, spill_loads: int, shared: int, target: Target) -> str:
    """A compiled case's status from ptxas's report and the shared memory it requests (see :class:`Result`)."""
    small = registers < _REGISTER_LIMIT and max(spill_stores, spill_loads) <= SMALL_SPILL
    status = ", ".join(what for what, bad in (("spills", (spill_stores or spill_loads) and not small),
                                              ("shared memory", shared > target.max_shared)) if bad)
    return status or ("small spill" if spill_stores or spill_loads else "ok")


@contextlib.contextmanager
def _fresh_cache():
    """A private, empty Triton cache for the block: every compilation runs ptxas (and reports)."""
    import triton

    with tempfile.TemporaryDirectory(prefix="ganfast-aot-") as cache:
        old = os.environ.get("TRITON_CACHE_DIR")
        os.environ["TRITON_CACHE_DIR"] = cache
        try:
            with contextlib.suppress(AttributeError):
                triton.knobs.cache.dir = cache
            yield
        finally:
            if old is None:
                os.environ.pop("TRITON_CACHE_DIR", None)
            else:
                os.environ["TRITON_CACHE_DIR"] = old
            with contextlib.suppress(AttributeError):
                triton.knobs.cache.dir = old


def compile_cases(selected: Sequence[Case], targets: Sequence[Target] = TARGETS,
                  progress: Optional[Callable[[Result], None]] = None) -> List[Result]:
    """Compile every case for every target, in this process, into a fresh Triton cache."""
    results = []
    with _fresh_cache():
        for case in selected:
            for target in targets:
                res = compile_case(case, target)
                results.append(res)
                if progress is not None:
                    progress(res)
    return results


def problems(results: Iterable[Result]) -> List[Result]:
    """The results that fail the check: compile errors, spills, shared memory over the target's limit."""
    return [r for r in results if r.status not in ("ok", "small spill")]


def _serve(selected: Sequence[Case], targets: Sequence[Target]) -> None:
    """Worker of :func:`check`: print the case count, then compile each case index read from stdin."""
    print(json.dumps({"cases": len(selected)}), flush=True)
    with _fresh_cache():
        for line in sys.stdin:
            case = selected[int(line)]
            for target in targets:
                print(json.dumps(dataclasses.asdict(compile_case(case, target))), flush=True)


def check(level: str = "quick", targets: Sequence[int] = (90, 80), kernel_filter: str = "", workers: int = 2,
          timeout: float = 4 * 3600.0, progress: Optional[Callable[[int, int, Result], None]] = None
          ) -> List[Result]:
    """Compile the cases of ``level`` for ``targets`` (compute capabilities) in ``workers`` fresh processes.

    Each worker imports ``ganfast.kernels`` with ``TRITON_INTERPRET`` unset
    and compiles the next case not yet taken (the cases differ in cost by
    100x); the results come back in case order, the targets of a case
    together.  ``progress(done, total, result)`` is called after each.

    Raises:
        ValueError: an unknown level or target, or ``workers`` < 1.
        RuntimeError: a worker failed (its stderr is in the message), or ``timeout`` seconds passed.
    """
    import queue
    import threading

    if level not in LEVELS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level!r}")
    known = {t.capability for t in TARGETS}
    if not targets or any(t not in known for t in targets):
        raise ValueError(f"targets: expected compute capabilities among {sorted(known)}, got {list(targets)}")
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "ganfast.kernels.aot", "--serve", "--level", level, "--filter", kernel_filter,
           "--targets", ",".join(map(str, targets))]
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        errs = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in range(workers)]
        procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                  env=env, bufsize=1) for err in errs]
        stack.callback(lambda: [p.kill() for p in procs if p.poll() is None])

        def fail(i: int, what: str) -> RuntimeError:
            errs[i].seek(0)
            return RuntimeError(f"{' '.join(cmd)} (worker {i}) {what}:\n{errs[i].read()[-4000:]}")

        counts = []
        for i, p in enumerate(procs):
            line = p.stdout.readline()
            if not line:
                raise fail(i, f"exited with {p.wait()} before compiling")
            counts.append(json.loads(line)["cases"])
        total = counts[0]
        todo: "queue.Queue[int]" = queue.Queue()
        for k in range(total):
            todo.put(k)
        results: List[Optional[List[Result]]] = [None] * total
        failures: List[BaseException] = []
        lock = threading.Lock()
        done = [0]

        def work(i: int) -> None:
            p = procs[i]
            try:
                while not failures:
                    try:
                        k = todo.get_nowait()
                    except queue.Empty:
                        return
                    p.stdin.write(f"{k}\n")
                    p.stdin.flush()
                    got = []
                    for _ in targets:
                        line = p.stdout.readline()
                        if not line:
                            raise fail(i, f"exited with {p.wait()} on case {k}")
                        got.append(Result(**json.loads(line)))
                    results[k] = got
                    with lock:
                        for res in got:
                            done[0] += 1
                            if progress is not None:
                                progress(done[0], total * len(targets), res)
            except BaseException as err:  # reported by the caller's thread
                failures.append(err)

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                failures.append(RuntimeError(f"ganfast.kernels.aot.check: not done after {timeout:.0f} s"))
                break
        for p in procs:
            if p.poll() is None:
                p.stdin.close()
        if failures:
            raise failures[0]
        for p in procs:
            p.wait(timeout=60)
    return [r for got in results for r in got]


# -- reporting ------------------------------------------------------------------------------------


def format_table(results: Sequence[Result]) -> str:
    """One line per result: kernel, configuration, target, registers, spills, shared memory (KB), status."""
    head = ("kernel", "configuration", "target", "regs", "spills (st/ld B)", "smem KB", "status")
    rows = [head]
    for r in results:
        spills = "-" if r.spill_stores is None else f"{r.spill_stores}/{r.spill_loads}"
        smem = "-" if r.shared is None else f"{r.shared / 1024:.1f}"
        status = r.status if not r.error else f"{r.status}: {r.error.splitlines()[0][:160] if r.error else ''}"
        rows.append((r.kernel, r.config, r.target, "-" if r.registers is None else str(r.registers), spills, smem,
                     status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    lines.insert(1, "(configuration: dtype, modes and flags, then the tile (block sizes), wN = N warps, sN = N "
                    "pipeline stages, I64 = 64-bit offsets; nchw/nhwc = the layout's integer specialisation)")
    bad = problems(results)
    cpu = sum(r.cpu_seconds for r in results)
    small = sum(r.status == "small spill" for r in results)
    lines.append(f"{len(results)} compilations ({cpu:.0f} s of CPU), {len(bad)} problem(s), {small} small spill(s) "
                 f"(at most {SMALL_SPILL} B a thread below {_REGISTER_LIMIT} registers: allowed)")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m ganfast.kernels.aot``: compile and print the table (``--json``: results as JSON).

    Exits 1 when a case fails the check, 0 otherwise.
    """
    parser = argparse.ArgumentParser(prog="python -m ganfast.kernels.aot", description=__doc__.splitlines()[0])
    parser.add_argument("--level", choices=LEVELS, default="quick")
    parser.add_argument("--targets", default="90,80", help="compute capabilities, comma-separated")
    parser.add_argument("--filter", default="", help="only kernels whose '<module>.<kernel>' contains this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # check()'s workers
    args = parser.parse_args(argv)
    caps = [int(t) for t in args.targets.split(",") if t]
    targets = [t for t in TARGETS if t.capability in caps]
    if len(targets) != len(caps):
        parser.error(f"--targets: expected among {[t.capability for t in TARGETS]}, got {args.targets}")
    if _interpreting():
        print("TRITON_INTERPRET=1: unset it to compile for a GPU", file=sys.stderr)
        return 2
    selected = cases(args.level, args.filter)
    if args.serve:
        _serve(selected, targets)
        return 0
    if args.list:
        for c in selected:
            print(f"{c.kernel}  {c.config}")
        print(f"{len(selected)} cases")
        return 0
    results = compile_cases(selected, targets)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in results]))
        return 0
    print(format_table(results))
    return 1 if problems(results) else 0


if __name__ == "__main__":
    sys.exit(main())
