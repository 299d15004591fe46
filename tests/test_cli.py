"""The ``ganfast`` command: ``--version``, ``doctor``, argument errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganfast
from ganfast import cli

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ganfast", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_version():
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ganfast {ganfast.__version__}"


def test_doctor():
    proc = _run("doctor", env_extra={"GANFAST_BACKEND": "torch"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert torch.__version__ in out
    lines = out.splitlines()

    def line(label):
        hits = [ln for ln in lines if ln.strip().startswith(label)]
        assert hits, f"no {label!r} line in:\n{out}"
        return hits[0]

    assert "torch" in line("current backend")  # GANFAST_BACKEND=torch is honoured and reported
    assert "torch" in line("GANFAST_BACKEND")
    line("TRITON_INTERPRET")
    line("triton")
    line("nvcc")
    line("CUDA runtime")
    # per op and device, a line for every backend; the torch backend always runs on a CPU
    assert any(ln.split()[:4] == ["bias_act", "cpu", "torch", "available"] for ln in lines), out
    for backend in ("triton", "cuda"):
        assert any(ln.split()[:3] == ["bias_act", "cpu", backend] for ln in lines), out
    if not torch.cuda.is_available():
        cuda_line = next(ln for ln in lines if ln.split()[:3] == ["bias_act", "cpu", "cuda"])
        assert "available" not in cuda_line.split()[3:4]  # says unavailable/unknown, with a reason
        assert "none visible to torch" in out


def test_no_command_is_a_usage_error():
    proc = _run()
    assert proc.returncode == 2
    assert "doctor" in proc.stderr and "bench" in proc.stderr


def test_bad_dtype_and_device(capsys):
    assert cli.main(["bench", "--dtype", "int8", "--quick"]) == 2
    assert "bf16" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(["bench", "--device", "cuda", "--quick"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_unknown_op_in_process(capsys):
    assert cli.main(["bench", "--op", "bias_act", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "bias_act" in err


@pytest.mark.gpu
def test_bench_quick_on_gpu(tmp_path):
    out = tmp_path / "b.json"
    proc = _run("bench", "--op", "bias_act", "--quick", "--device", "cuda", "--json", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CPU TIMINGS" not in proc.stdout
    import json

    doc = json.loads(out.read_text())
    assert doc["meta"]["device"]["type"] == "cuda"
    assert doc["peaks"]["bandwidth_gbps"] > 100
    assert {r["provider"] for r in doc["rows"] if r["status"] == "ok"} >= {"eager", "ganfast-torch"}
