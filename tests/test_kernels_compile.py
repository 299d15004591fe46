"""Every Triton kernel compiles for the GPU, sm_90 and sm_80, proven on a machine without one.

The CPU interpreter that runs the kernel tests executes a kernel as Python:
it never type-checks a constexpr branch, lowers a ``tl.dot``, allocates
shared memory or runs ``ptxas``.  Triton's compiler needs no device, so
:mod:`ganfast.kernels.aot` compiles every kernel of ``kernels/`` in the
specialisations its launchers choose (dtypes, modes, optional features,
64-bit indexing, the integer specialisations of a dense NCHW or channels-last
launch, and block configurations taken from the launchers' own ``_config``
functions) for sm_90 and sm_80, in processes where ``TRITON_INTERPRET`` is
unset.  A case fails on a compile error, on a register spill (``ptxas
-v``), on shared memory above the target's per-block maximum (227 KB on
sm_90, 163 KB on sm_80: the CUDA C++ Programming Guide's table of technical
specifications per compute capability).  Spills of at most
``aot.SMALL_SPILL`` (16) bytes a thread by a kernel below the 255-register
limit are allowed and shown as "small spill": ptxas's scheduling choice, not
register pressure (see ``SMALL_SPILL``); any spill at the limit fails.  ``ganfast doctor --kernels`` prints
the same compilations as a table (tests/test_doctor_kernels.py).

Which cases, and what is left out (see the ``ganfast.kernels.aot`` docstring
for the rules):

* Every kernel, every dtype its launcher accepts, every mode and every
  feature flag, with every pair of values of any two of those axes in some
  case, on the kernel's smallest block configuration.
* Block configurations: ``GANFAST_AOT_LEVEL`` (default ``quick``) chooses.
  ``quick`` (410 cases, 820 compilations, triton 3.9, 2026-12-02; 546
  cases before the smallest tile went to the covering rows only) compiles,
  for each combination of dtype and mode (and layout for conv2d and
  self_attention2d), the largest configuration the launcher can return,
  with every optional feature on, and the smallest in the pairwise rows,
  with every value of every axis and every pair of them.  The
  configurations in between are left out of the default run for time: a
  tile no larger in any dimension with the same warps and stages needs no
  more registers or shared memory, except where the launcher lowers the
  warps with the tile (conv2d's 128x64 tiles run 4 warps, the 128x128 one
  8), which ``extremes`` (1802 cases) adds: the maximal configuration of
  every (warps, stages) pair, and the smallest, each with every combination
  of dtype and mode.  ``full`` compiles every configuration: hours of CPU.
* Values without a bound in the ops are sampled: conv2d kernel sizes (1, 3,
  4, 7, 1x7 of 1..7: they only enter integer tap arithmetic),
  minibatch_discrimination's kernel_dim (5 with every configuration; 1, 2,
  3, 8, 16 on the smallest tile: larger values only lengthen the unrolled
  distance loop),
  minibatch_stddev's group size (up to 64), self_attention2d's query/key
  width (up to 128).
* Integer arguments are specialised as a dense launch specialises them
  (unit strides become the constant 1, multiples of 16 are marked, pointers
  are 16-byte aligned).  A launch on an arbitrary strided view compiles an
  unspecialised variant that is not checked here.
"""

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ganfast.kernels import aot

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (90, 80)


def _env():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _need_compiler():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    import triton.backends.nvidia as nvidia

    if not (Path(nvidia.__file__).parent / "bin" / "ptxas").exists():
        pytest.skip("this Triton ships no ptxas to compile for a GPU")


def _source_kernels():
    """``<module>.<name>`` of every ``@triton.jit`` function named ``*_kernel`` in kernels/*.py, from the source."""
    names = set()
    for path in (ROOT / "kernels").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_kernel") and any(
                    "jit" in ast.unparse(d) for d in node.decorator_list):
                names.add(f"{path.stem}.{node.name}")
    return names


def test_covering_rows_hold_every_pair():
    axes = {"a": (1, 2, 3), "b": ("x", "y"), "c": (True, False), "d": (0.5, 1.5, 2.5, 3.5)}
    seeds = [{"a": 1, "b": "x", "c": True, "d": 0.5}]
    rows = aot._covering(axes, seeds)
    for (n1, v1s), (n2, v2s) in [(p, q) for i, p in enumerate(axes.items()) for q in list(axes.items())[i + 1:]]:
        for v1 in v1s:
            for v2 in v2s:
                assert any(r[n1] == v1 and r[n2] == v2 for r in rows + seeds), (n1, v1, n2, v2)
    assert len(rows) < 3 * 2 * 2 * 4  # far fewer than the product
    assert rows == aot._covering(axes, seeds)  # deterministic


def test_extremes_keep_the_smallest_and_the_maximal_configurations():
    def cfg(m, n, warps):
        return {"M": m, "N": n, "num_warps": warps, "num_stages": 3}

    configs = [cfg(m, n, 8 if m * n >= 128 * 128 else 4) for m in (16, 32, 64, 128) for n in (16, 32, 64, 128)]
    kept = {(c["M"], c["N"], c["num_warps"]) for c in aot._extremes(configs, ["M", "N"])}
    assert kept == {(16, 16, 4), (128, 64, 4), (64, 128, 4), (128, 128, 8)}


def test_every_kernel_has_cases():
    """Every @triton.jit *_kernel of kernels/ is enumerated (cases() raises on one without a specification)."""
    _need_compiler()
    proc = subprocess.run([sys.executable, "-m", "ganfast.kernels.aot", "--list", "--level", "quick"], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    listed = {ln.split()[0] for ln in proc.stdout.splitlines()[:-1]}
    assert listed == _source_kernels()


def test_status_fails_pressure_spills_and_shared_memory_and_allows_small_spills():
    sm90, sm80 = aot.TARGETS
    assert aot._status(96, 0, 0, 48 * 1024, sm90) == "ok"
    assert aot._status(96, 4, 4, 48 * 1024, sm90) == "small spill"  # ptxas's choice, well below the limit
    assert aot._status(168, aot.SMALL_SPILL, 8, 0, sm90) == "small spill"
    assert aot._status(168, aot.SMALL_SPILL + 4, 8, 0, sm90) == "spills"  # more than the allowance
    assert aot._status(255, 4, 4, 0, sm90) == "spills"  # at the register limit: pressure
    assert aot._status(128, 0, 0, 200 * 1024, sm90) == "ok" and aot._status(128, 0, 0, 200 * 1024, sm80) == \
        "shared memory"  # 200 KB fits a Hopper block, not an Ampere one
    assert aot._status(255, 64, 64, 300 * 1024, sm90) == "spills, shared memory"
    results = [aot.Result("k", "c", "sm_90", 96, s, s, 0, aot._status(96, s, s, 0, sm90)) for s in (0, 4, 64)]
    assert [r.spill_stores for r in aot.problems(results)] == [64]


def test_refuses_to_compile_under_the_interpreter():
    """ganfast.kernels decided at import to interpret (conftest sets TRITON_INTERPRET=1 here without a GPU)."""
    from ganfast import kernels

    if not kernels.INTERPRET:
        pytest.skip("this process compiles for real: nothing to refuse")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        aot.cases("quick")


@pytest.mark.parametrize("bad, match", [(dict(level="most"), "level"), (dict(targets=(75,)), "targets"),
                                        (dict(workers=0), "workers")])
def test_check_rejects_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        aot.check(**bad)


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90_and_sm80():
    _need_compiler()
    level = os.environ.get("GANFAST_AOT_LEVEL", "quick")
    results = aot.check(level, TARGETS, workers=2)
    kernels = {r.kernel for r in results}
    assert kernels == _source_kernels()
    assert {r.target for r in results} == {"sm_90", "sm_80"}
    bad = aot.problems(results)
    cpu = sum(r.cpu_seconds for r in results)
    assert not bad, (f"{len(bad)} of {len(results)} compilations ({cpu:.0f} s of CPU) fail the check:\n"
                     + aot.format_table(bad))


@pytest.mark.slow
def test_an_unknown_activation_fails_to_compile():
    """bias_act's activation switch rejects a name it does not know at compile time instead of computing another."""
    _need_compiler()
    script = textwrap.dedent("""
        import dataclasses
        from ganfast.kernels import aot
        case = next(c for c in aot.cases("quick", "bias_act") if dict(c.constexprs)["ACT"] == "linear")
        bad = dataclasses.replace(case, constexprs=tuple((k, "gelu" if k == "ACT" else v) for k, v in case.constexprs))
        res = aot.compile_case(bad, aot.TARGETS[0])
        print(res.status, res.error)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.startswith("error") and "unknown activation" in proc.stdout, proc.stdout[-2000:]
