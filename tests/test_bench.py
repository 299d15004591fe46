"""``ganfast bench``: statistics, arithmetic, case table, runner, and the command end to end."""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ganfast.bench import UnknownOp, all_cases, bench_ops, check_ops, load_cases
from ganfast.bench.bias_act import BiasActCase, cases
from ganfast.bench.case import FWD, FWD_BWD, dtype_name, rel_err
from ganfast.bench.report import format_table
from ganfast.bench.runner import EAGER, BenchConfig, Runner, ganfast_provider
from ganfast.bench.timing import Stats, TimerConfig, gbps, quantile, tflops

ROOT = Path(__file__).resolve().parents[1]


# --- statistics and arithmetic ------------------------------------------------


def test_quantiles_of_a_known_list():
    xs = [7.0, 1.0, 10.0, 4.0, 2.0, 9.0, 3.0, 6.0, 8.0, 5.0]  # 1..10, unsorted
    s = Stats.of(xs)
    assert s.median == pytest.approx(5.5)
    assert s.p20 == pytest.approx(2.8)  # position 0.2 * 9 = 1.8: 2 + 0.8 * (3 - 2)
    assert s.p80 == pytest.approx(8.2)
    assert s.n == 10
    assert Stats.of([3.0, 1.0, 2.0]).median == 2.0
    assert Stats.of([4.0]) == Stats(4.0, 4.0, 4.0, 1)


def test_quantile_agrees_with_numpy():
    rng = random.Random(3)
    xs = [rng.expovariate(1.0) for _ in range(37)]
    for q in (0.0, 0.2, 0.5, 0.8, 1.0):
        assert quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


def test_quantile_rejects_bad_input():
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_bandwidth_and_rate_arithmetic():
    assert gbps(1e9, 1.0) == pytest.approx(1000.0)  # 1 GB in 1 ms is 1 TB/s
    assert gbps(3 * 2**30, 2.0) == pytest.approx(3 * 2**30 / 2e-3 / 1e9)
    assert tflops(2e12, 1000.0) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        gbps(1e9, 0.0)


def test_bias_act_bytes_and_flops():
    c = BiasActCase(op="bias_act", name="t", shape=(2, 3, 4, 5), params={"act": "leaky_relu", "gain": 2.0, "dim": 1})
    n, ch = 120, 3
    # forward: read x, write y, read bias
    assert c.bytes_moved(torch.float32, FWD) == 2 * n * 4 + ch * 4 == 972
    # + backward: read g and x, write dx; reduction reads dx, writes db
    assert c.bytes_moved(torch.float32, FWD_BWD) == 972 + 3 * n * 4 + n * 4 + ch * 4
    assert c.bytes_moved(torch.bfloat16, FWD) == 972 // 2
    # bias add + leaky_relu (2) + gain
    assert c.flops(FWD) == n * 4
    assert c.flops(FWD_BWD) > c.flops(FWD)
    flat = BiasActCase(op="bias_act", name="t", shape=(64, 1024, 1024), params={"act": "linear", "dim": 1})
    assert flat.channels == 1024
    assert flat.bytes_moved(torch.bfloat16, FWD) == 2 * 2 * 64 * 2**20 + 2 * 1024


def test_rel_err():
    ref = torch.tensor([3.0, 4.0])
    assert rel_err(ref, ref) == 0.0
    assert rel_err(torch.tensor([3.0, 4.5]), ref) == pytest.approx(0.1)
    assert rel_err(torch.tensor([3.0, float("nan")]), ref) == math.inf


def test_dtype_names():
    assert dtype_name("bf16") == "bfloat16"
    assert dtype_name("FP32") == "float32"
    with pytest.raises(ValueError, match="bf16"):
        dtype_name("int8")


# --- the case table -------------------------------------------------------------


def test_case_registry():
    assert "bias_act" in bench_ops()
    assert check_ops(["bias_act", "bias_act"]) == ["bias_act"]
    with pytest.raises(UnknownOp, match="bias_act"):
        check_ops(["bias_act", "no_such_op"])
    quick, full = load_cases("bias_act", quick=True), load_cases("bias_act", quick=False)
    assert quick and full and len(quick) + len(full) == len(all_cases("bias_act"))
    assert all(c.numel <= 1 << 17 for c in quick)  # small enough for the Triton interpreter
    # the issue target: 64M elements in bf16
    assert any(c.numel == 64 * 2**20 and "bfloat16" in c.dtypes for c in full)


@pytest.mark.parametrize("case", [c for c in cases() if c.quick] + [
    BiasActCase(op="bias_act", name=a, shape=(3, 5, 7), params={"act": a, "gain": 1.5, "clamp": 0.9, "dim": 1})
    for a in ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "silu")
], ids=lambda c: f"{c.name}-{c.shape_str}")
def test_eager_baseline_computes_the_reference_function(case):
    """The eager baseline is plain user code, but it must compute what ganfast.ref defines."""
    from ganfast.ref.bias_act import bias_act as ref

    inputs = case.make_inputs(torch.float64, torch.device("cpu"), requires_grad=False)
    x, b = inputs.args
    kw = case._kwargs()
    torch.testing.assert_close(case.eager()(x, b), ref(x, b, **kw), rtol=1e-12, atol=1e-12)


# --- the runner -----------------------------------------------------------------


class _NoCompileRunner(Runner):
    """Eager and ganfast-torch only: torch.compile costs tens of seconds on a CPU."""

    def providers(self, op):
        return [EAGER, ganfast_provider("torch")]


class _WrongCase(BiasActCase):
    def ganfast(self, x, b, backend=None):
        return super().ganfast(x, b, backend=backend) * 1.5


def _runner():
    cfg = BenchConfig(device=torch.device("cpu"), quick=True,
                      timer=TimerConfig(warmup=1, min_reps=3, max_reps=3, rep_ms=0.0, flush_l2=False))
    return Runner(cfg)


def test_runner_rows():
    case = BiasActCase(op="bias_act", name="t", shape=(2, 8, 5, 5), params={"act": "leaky_relu", "gain": 2.0})
    rows = _NoCompileRunner(_runner().config).run_one(case, "float32", FWD_BWD)
    by = {r.provider: r for r in rows}
    assert set(by) == {"eager", "ganfast-torch"}
    for r in rows:
        assert r.status == "ok", r.reason
        assert r.reps == 3 and r.median_ms > 0 and r.p20_ms <= r.median_ms <= r.p80_ms
        assert r.gbps == pytest.approx(r.bytes / (r.median_ms * 1e-3) / 1e9)
        assert r.rel_err < 1e-5
    assert by["eager"].speedup_vs_eager == pytest.approx(1.0)
    assert by["ganfast-torch"].speedup_vs_eager == pytest.approx(by["eager"].median_ms / by["ganfast-torch"].median_ms)


def test_runner_flags_a_wrong_provider():
    case = _WrongCase(op="bias_act", name="wrong", shape=(2, 8, 5, 5), params={"act": "relu"})
    rows = {r.provider: r for r in _NoCompileRunner(_runner().config).run_one(case, "float32", FWD)}
    assert rows["eager"].status == "ok"
    assert rows["ganfast-torch"].status == "mismatch"
    assert "exceeds" in rows["ganfast-torch"].reason


def test_runner_skips_large_cases_on_cpu():
    case = BiasActCase(op="bias_act", name="big", shape=(64, 1024, 1024), params={"act": "linear"})
    (row,) = _runner().run_one(case, "bfloat16", FWD)
    assert row.status == "skipped" and "too large for a CPU run" in row.reason
    table = format_table([row])
    assert "median ms (p20-p80)" in table and "skipped: " in table


# --- the command ------------------------------------------------------------------


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    # Triton under the interpreter is tested in test_bias_act; here it would only add time.
    env.pop("TRITON_INTERPRET", None)
    return env


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ganfast", "bench", "--op", "bias_act", "--quick", "--device", "cpu", "--json", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    return proc, out


def test_bench_quick_exits_0(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CPU TIMINGS" in proc.stdout
    assert "median ms (p20-p80)" in proc.stdout
    assert f"torch {torch.__version__}" in proc.stdout


def test_bench_quick_json(quick_run):
    proc, path = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(path.read_text())
    assert any("CPU TIMINGS" in w for w in doc["warnings"])
    meta = doc["meta"]
    assert meta["torch"] == torch.__version__ and meta["device"]["type"] == "cpu" and meta["date"]
    assert doc["peaks"]["bandwidth_gbps"] > 0 and doc["peaks"]["flops_tflops"] > 0
    rows = doc["rows"]
    for provider in ("eager", "ganfast-torch"):
        for pass_ in ("fwd", "fwd+bwd"):
            mine = [r for r in rows if r["provider"] == provider and r["pass"] == pass_]
            assert mine, (provider, pass_)
            for r in mine:
                assert r["status"] == "ok", r
                assert r["median_ms"] > 0 and r["gbps"] > 0 and r["bytes"] > 0
                assert r["op"] == "bias_act" and r["dtype"] == "float32"
    # compile either ran or says why not
    for r in rows:
        if r["provider"] == "compile":
            assert r["status"] == "ok" or r["reason"].startswith("torch.compile failed")
    # without TRITON_INTERPRET, triton is not timed on a CPU, and the reason says how to change that
    assert "TRITON_INTERPRET" in doc["not_timed"]["bias_act"]["ganfast-triton"]


def test_bench_unknown_op():
    proc = subprocess.run(
        [sys.executable, "-m", "ganfast", "bench", "--op", "no_such_op", "--quick"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "no_such_op" in proc.stderr and "bias_act" in proc.stderr


def test_fid_alias_expands_to_its_ops():
    assert check_ops(["fid"]) == ["sqrtm_trace", "feature_stats"]
    assert check_ops(["fid", "sqrtm_trace", "bias_act"]) == ["sqrtm_trace", "feature_stats", "bias_act"]
    assert "fid" not in bench_ops()


def test_dcgan_step_script_runs_on_the_cpu(tmp_path):
    """bench/dcgan_step.py (issue 7's GPU target) runs end to end; its CPU timings are not checked."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "dcgan_step.py"
    out = tmp_path / "step.json"
    for model in ("ganfast", "examples"):
        p = subprocess.run([sys.executable, str(script), "--quick", "--amp", "none", "--model", model, "--providers",
                            "torch.nn", "ganfast", "--json", str(out)], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        res = json.loads(out.read_text())
        assert res["model"] == model and set(res["rows"]) == {"ganfast", "torch.nn"}
        assert all(r["median_ms"] > 0 and r["rounds"] == 3 for r in res["rows"].values())
        assert "speed vs torch.nn" in p.stdout and res["meta"]["commit"]


def test_large_resolution_script_runs_on_the_cpu(tmp_path):
    """bench/large_resolution.py (issue 14's memory benchmark) runs end to end on tiny ProGAN networks: one row per
    resolution with and without checkpointing, positive times and memory; the numbers themselves are not checked."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "large_resolution.py"
    out = tmp_path / "large.json"
    p = subprocess.run([sys.executable, str(script), "--resolutions", "16", "--batch", "4", "--amp", "none",
                        "--iters", "1", "--warmup", "1", "--fmap-base", "32", "--fmap-max", "8", "--threads", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [(r["resolution"], r["checkpoint_blocks"]) for r in rows] == [(16, False), (16, True)]
    assert all(r["median_s"] > 0 and r["peak_bytes"] >= 0 and r["device"] == "cpu" for r in rows)
    assert "of without" in p.stdout


def test_stylegan2_step_script_runs_on_the_cpu(tmp_path):
    """bench/stylegan2_step.py (issue 15's training-iteration benchmark) runs end to end on a tiny StyleGAN2: both
    providers, positive times; the numbers themselves are not checked."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "stylegan2_step.py"
    out = tmp_path / "step.json"
    p = subprocess.run([sys.executable, str(script), "--resolution", "8", "--batch", "4", "--channel-base", "32",
                        "--channel-max", "4", "--mapping-layers", "1", "--iters", "1", "--warmup", "1", "--amp", "bf16",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["provider"] for r in rows] == ["reference", "ganfast"]
    assert all(r["median_s"] > 0 and r["device"] == "cpu" for r in rows)
    assert "x the reference ops" in p.stdout


def test_cyclegan_step_script_runs_on_the_cpu(tmp_path):
    """bench/cyclegan_step.py (issue 16's fused-against-torch.nn iteration) runs end to end on a tiny CycleGAN: both
    providers, positive times; the numbers themselves are not checked."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "cyclegan_step.py"
    out = tmp_path / "step.json"
    p = subprocess.run([sys.executable, str(script), "--resolution", "16", "--ngf", "4", "--ndf", "4", "--n-layers-d",
                        "1", "--iters", "1", "--warmup", "1", "--amp", "none", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["provider"] for r in rows] == ["torch.nn", "ganfast"]
    assert all(r["median_s"] > 0 and r["device"] == "cpu" and r["n_blocks"] == 6 for r in rows)
    assert "x the torch.nn layers" in p.stdout
