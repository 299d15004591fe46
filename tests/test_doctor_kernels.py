"""``ganfast doctor --kernels``: the compile table of the Triton kernels for sm_90 and sm_80."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganfast import cli
from ganfast.kernels import aot

ROOT = Path(__file__).resolve().parents[1]


def test_kernel_options_parse():
    args = cli.build_parser().parse_args(["doctor", "--kernels", "--kernels-level", "extremes", "--kernels-filter",
                                          "conv2d", "--kernels-targets", "90", "--kernels-workers", "1"])
    assert (args.kernels, args.kernels_level, args.kernels_filter, args.kernels_targets, args.kernels_workers) == (
        True, "extremes", "conv2d", "90", 1)
    assert cli.build_parser().parse_args(["doctor"]).kernels is False
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["doctor", "--kernels-level", "everything"])


@pytest.mark.slow
def test_doctor_prints_the_kernel_table():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    env = dict(os.environ, GANFAST_BACKEND="torch")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    # One small kernel (a float64 tl.dot among its cases): a few dozen seconds on two cores.
    proc = subprocess.run([sys.executable, "-m", "ganfast", "doctor", "--kernels", "--kernels-filter",
                           "feature_stats"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "failed:" not in out, out[-3000:]
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["kernel", "configuration", "target"])
    assert lines[head].split()[3:] == ["regs", "spills", "(st/ld", "B)", "smem", "KB", "status"]
    rows = [ln.split() for ln in lines[head + 1:] if ln.startswith("feature_stats._feature_stats_kernel")]
    assert rows, out[-3000:]
    targets = {r[r.index("sm_90") if "sm_90" in r else r.index("sm_80")] for r in rows}
    assert targets == {"sm_90", "sm_80"}
    for r in rows:
        t = r.index("sm_90") if "sm_90" in r else r.index("sm_80")
        regs, spills, smem, status = r[t + 1], r[t + 2], r[t + 3], " ".join(r[t + 4:])
        assert status in ("ok", "small spill", "spills", "shared memory", "spills, shared memory") or \
            status.startswith("error:"), r
        if not status.startswith("error"):
            assert 0 < int(regs) <= 255
            stores, loads = (int(v) for v in spills.split("/"))
            assert float(smem) >= 0
            small = int(regs) < 255 and 0 < max(stores, loads) <= aot.SMALL_SPILL
            assert (status == "small spill") == small, r
            assert status.startswith("spills") == (stores + loads > 0 and not small), r
    assert any("problem(s)" in ln and ln.split()[:2] == [str(len(rows)), "compilations"] for ln in lines), \
        out[-3000:]
