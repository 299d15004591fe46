"""bench/gpu_check.sh fits its lease, and its parts work, tested on the CPU (issue 13).

The script's control flow runs here with fake stage commands (its
GPU_CHECK_CMD_<STAGE> / GPU_CHECK_BUDGET_<STAGE> hooks): a failing stage and
a stage that outlives its budget do not stop the others, and the stage table
comes last.  Its two Python stages run here too: the correctness smoke on
tiny shapes (the triton backend under the interpreter), the benchmark on
``--quick`` cases, stopped by SIGTERM as ``timeout`` stops it.
"""

import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganfast import _backend

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
STAGES = ["nvidia-smi", "build", "doctor", "smoke", "gpu-tests", "bench", "dcgan-step"]
LIMIT_S = 420  # the issue: at most 7 minutes on an H200


def _load(name):
    """bench/<name>.py as a module (the bench scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is being made
    spec.loader.exec_module(module)
    return module


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    env.update(extra)
    return env


def _dry_run(tmp_path):
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=120, env=_env(), cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    stages = re.findall(r"^stage (\S+)\s+budget\s+(\d+) s\s+log (\S+)\s+(.*)$", out.stdout, re.MULTILINE)
    return out.stdout, [(name, int(budget), log, cmd) for name, budget, log, cmd in stages]


def test_dry_run_lists_every_stage_within_the_lease(tmp_path):
    text, stages = _dry_run(tmp_path)
    assert [s[0] for s in stages] == STAGES
    budgets = {name: budget for name, budget, _, _ in stages}
    grace = int(re.search(r"budgets \+ (\d+) s grace each = (\d+) s", text).group(1))
    total = sum(budgets.values()) + grace * len(stages)
    assert total <= LIMIT_S
    assert f"= {total} s (limit {LIMIT_S} s)" in text
    # The CUDA correctness check (smoke + the gpu-marked tests): under 2 minutes.
    assert budgets["smoke"] + budgets["gpu-tests"] <= 120
    assert not (tmp_path / "out").exists(), "a dry run writes nothing"
    cmds = {name: cmd for name, _, _, cmd in stages}
    assert "pip install --no-build-isolation --no-deps" in cmds["build"] and "GANFAST_CUDA=1" in cmds["build"]
    assert "gpu_smoke.py --device cuda" in cmds["smoke"] and "--strict" in cmds["smoke"]
    assert "-m gpu" in cmds["gpu-tests"]
    assert "gpu_bench.py --json" in cmds["bench"]
    assert "dcgan_step.py" in cmds["dcgan-step"]
    # The bench stage's counted work fits its budget.
    est, budget = re.search(r"^estimate: (\d+) s .*; budget (\d+) s$", text, re.MULTILINE).groups()
    assert int(budget) == budgets["bench"] and int(est) <= int(budget)


def test_the_header_states_each_stage_budget_and_estimate(tmp_path):
    """The script's header table says the same budgets as the stages it runs, with an estimate for each."""
    text, stages = _dry_run(tmp_path)
    header = SCRIPT.read_text(encoding="utf-8").split("\nset -uo pipefail", 1)[0]
    estimates = {}
    for name, budget, _, _ in stages:
        m = re.search(rf"^# {re.escape(name)}\s+(\d+) s\s+~(\d+) s", header, re.MULTILINE)
        assert m, f"no '# {name}  <budget> s  ~<estimate> s' line in the header"
        assert int(m.group(1)) == budget
        assert int(m.group(2)) <= budget, f"{name}: the estimate exceeds the budget"
        estimates[name] = int(m.group(2))
    # The bench stage's estimate is the one its plan computes from the counted work.
    planned = int(re.search(r"^estimate: (\d+) s", text, re.MULTILINE).group(1))
    assert abs(estimates["bench"] - planned) <= 5, (estimates["bench"], planned)


def _fake_run(tmp_path, timeout=60, **cmds):
    env = _env(**{f"GPU_CHECK_CMD_{k}": v for k, v in cmds.items() if not k.startswith("BUDGET_")},
               **{f"GPU_CHECK_{k}": v for k, v in cmds.items() if k.startswith("BUDGET_")})
    start = time.monotonic()
    out = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=str(ROOT))
    return out, time.monotonic() - start


def test_a_failing_or_slow_stage_does_not_stop_the_others(tmp_path):
    out, wall = _fake_run(
        tmp_path,
        NVIDIA_SMI="echo smi",
        BUILD="echo compiling; exit 1",                      # fails
        DOCTOR="echo doctor",
        SMOKE="echo smoke started; sleep 60", BUDGET_SMOKE="1",          # outlives its budget: SIGTERM
        GPU_TESTS="trap '' TERM; sleep 60", BUDGET_GPU_TESTS="1",        # ignores SIGTERM: SIGKILL after the grace
        BENCH='echo "bench row 1.23 ms" > "$OUT/bench_summary.txt"; echo full table',
        DCGAN_STEP="echo speedup of ganfast over torch.nn: 1.50x",
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert wall < 30, f"the timeouts did not cut the slow stages ({wall:.0f} s)"
    lines = out.stdout.rstrip("\n").splitlines()
    # The stage table is the last thing printed, then the verdict.
    assert lines[-1] == "gpu_check: FAILED stages: build smoke gpu-tests"
    table = lines[-(len(STAGES) + 4):-1]  # header, rule, one row per stage, total
    assert table[0].split()[:4] == ["stage", "status", "seconds", "budget"]
    status = {row.split()[0]: row.split()[1] for row in table[2:2 + len(STAGES)]}
    assert status == {"nvidia-smi": "ok", "build": "FAILED(1)", "doctor": "ok", "smoke": "TIMEOUT",
                      "gpu-tests": "TIMEOUT", "bench": "ok", "dcgan-step": "ok"}
    assert table[-1].startswith("total")
    # The later stages ran and their results are in the output, before the stage table.
    assert "bench row 1.23 ms" in out.stdout and "speedup of ganfast over torch.nn: 1.50x" in out.stdout
    assert out.stdout.index("bench row 1.23 ms") < out.stdout.index("gpu_check stages")
    outdir = tmp_path / "out"
    assert (outdir / "smoke.log").read_text() == "smoke started\n"
    assert (outdir / "bench.txt").read_text() == "full table\n"
    doc = json.loads((outdir / "gpu_check.json").read_text())
    assert [s["stage"] for s in doc["stages"]] == STAGES and doc["failed"] == 3
    assert {s["stage"]: s["status"] for s in doc["stages"]} == status
    assert (outdir / "gpu_check.txt").read_text().splitlines() == table


def test_all_stages_passing_exits_zero(tmp_path):
    out, _ = _fake_run(tmp_path, **{s.upper().replace("-", "_"): "true" for s in STAGES})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().splitlines()[-1] == "gpu_check: all stages passed"


def test_usage_errors():
    for args in ([], ["--dry-run"], ["a", "b"]):
        out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, env=_env())
        assert out.returncode == 2 and "usage:" in out.stderr


# -- the correctness smoke ------------------------------------------------------------------------


def test_smoke_has_a_case_for_every_registered_op():
    assert set(_load("gpu_smoke").cases()) == set(_backend.ops())


def test_smoke_judges_with_the_project_tables():
    """A wrong kernel fails: norm-wise in float32 (NORM_TOLERANCES), per element in float64 (TOLERANCES)."""
    smoke = _load("gpu_smoke")
    case = smoke.cases()["minibatch_stddev"]
    cpu = torch.device("cpu")
    assert smoke.check(case, "torch", torch.float32, cpu, True, 0)["failures"] == []
    for dtype, scale in ((torch.float32, 1 + 1e-3), (torch.float64, 1 + 1e-9)):
        wrong = dataclasses.replace(case, fast=lambda x, backend, s=scale: case.fast(x, backend=backend) * s)
        res = smoke.check(wrong, "torch", dtype, cpu, True, 0)
        assert any(f.startswith("forward") for f in res["failures"]), (dtype, res)
        assert any(f.startswith("gradient 0") for f in res["failures"]), (dtype, res)
    # An output element that is never written reads NaN on the GPU (poisoned memory): NaN never passes.
    nan = dataclasses.replace(case, fast=lambda x, backend: case.fast(x, backend=backend)
                              .index_fill(0, torch.tensor([0]), float("nan")))
    assert smoke.check(nan, "torch", torch.bfloat16, cpu, True, 0)["failures"]


@pytest.mark.slow
def test_smoke_runs_every_op_backend_and_dtype_on_the_cpu(tmp_path):
    """The smoke on tiny shapes: torch and aten, triton under the interpreter; cuda reports why it cannot."""
    report = tmp_path / "smoke.json"
    # The interpreter is chosen when a kernel is defined: set before the subprocess imports ganfast.
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_smoke.py"), "--device", "cpu", "--tiny",
                          "--json", str(report)], capture_output=True, text=True, timeout=600,
                         env=_env(TRITON_INTERPRET="1"), cwd=str(ROOT))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    records = json.loads(report.read_text())["records"]
    want = {(op, b, d) for op in _backend.ops() for b in _backend.spec(op).backends
            for d in ("float16", "bfloat16", "float32", "float64")}
    assert {(r["op"], r["backend"], r["dtype"]) for r in records} == want
    for r in records:
        if r["backend"] == "cuda":
            assert r["status"] == "skip" and "CUDA tensors only" in r["message"]
        else:
            assert r["status"] == "ok", r
    assert len(out.stdout.splitlines()) == len(records) + 2  # a header line, one per case, a summary
    assert re.search(rf"gpu_smoke: {len(records)} cases \(\d+ ok, \d+ skip\)", out.stdout)


# -- the benchmark --------------------------------------------------------------------------------


def test_bench_times_every_op_with_benchmark_cases_at_one_issue_shape():
    from ganfast.bench import bench_ops

    bench = _load("gpu_bench")
    selected = bench.select(quick=False, ops=None)  # raises unless each row matches exactly one case
    assert {case.op for _, case, _, _ in selected} == set(bench_ops())
    for row, case, dtype, passes in selected:
        assert dtype == ("bfloat16" if "bfloat16" in case.dtypes else case.dtypes[0]), row
        assert set(passes) <= set(case.passes) and "cuda" in case.devices


def _bench_cpu(tmp_path, *ops):
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--device", "cpu", "--quick", "--op", *ops,
           "--provider", "eager", "ganfast-torch", "--json", str(tmp_path / "bench.json"),
           "--summary", str(tmp_path / "summary.txt")]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=_env(TRITON_INTERPRET="1"))


@pytest.mark.slow
def test_bench_runs_on_the_cpu(tmp_path):
    proc = _bench_cpu(tmp_path, "minibatch_stddev")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["issue_cases"] == {"run": 1, "selected": 1, "interrupted": False, "not_run": []}
    assert {r["provider"] for r in doc["rows"]} == {"eager", "ganfast-torch"}
    assert all(r["status"] == "ok" for r in doc["rows"])
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert summary[0].split()[:3] == ["case", "pass", "provider"] and len(summary) == 2 + len(doc["rows"])


@pytest.mark.slow
def test_bench_stopped_by_sigterm_keeps_the_rows_done(tmp_path):
    """`timeout` sends SIGTERM: the table and JSON of what ran are still written, and the exit status is 124."""
    proc = _bench_cpu(tmp_path, "minibatch_stddev", "bias_act")
    for line in proc.stderr:  # wait until the first case is being timed
        if line.startswith("time "):
            break
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 124, stdout[-3000:]
    assert "STOPPED by SIGTERM" in stdout
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["issue_cases"]["interrupted"] is True
    assert doc["issue_cases"]["run"] < doc["issue_cases"]["selected"]
    assert doc["issue_cases"]["not_run"]
