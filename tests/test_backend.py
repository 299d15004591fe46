"""Backend dispatch: selection order, availability reports, errors."""

import os
import subprocess
import sys

import pytest
import torch

import ganfast
from ganfast import _backend

from conftest import HAS_CUDA


@pytest.fixture(autouse=True)
def _restore_default():
    before = ganfast.current_backend()
    yield
    ganfast.use_backend(before)


def test_public_names():
    assert isinstance(ganfast.__version__, str) and ganfast.__version__.count(".") >= 1
    assert issubclass(ganfast.BackendUnavailable, RuntimeError)
    assert "bias_act" in _backend.ops()
    assert callable(ganfast.ops.bias_act) and issubclass(ganfast.nn.BiasAct, torch.nn.Module)


def test_use_backend_as_context_manager_restores():
    assert ganfast.current_backend() == "auto"
    with ganfast.use_backend("torch") as choice:
        assert ganfast.current_backend() == "torch"
        assert choice.name == "torch"
        with ganfast.use_backend("triton"):
            assert ganfast.current_backend() == "triton"
        assert ganfast.current_backend() == "torch"
    assert ganfast.current_backend() == "auto"


def test_use_backend_as_plain_call_sets_default():
    ganfast.use_backend("triton")
    assert ganfast.current_backend() == "triton"
    ganfast.use_backend("auto")
    assert ganfast.current_backend() == "auto"


@pytest.mark.parametrize("bad", ["", "Torch", "cudnn", None, 3])
def test_use_backend_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'torch', 'aten', 'triton', 'cuda'"):
        ganfast.use_backend(bad)


def test_auto_on_cpu_follows_the_cpu_order():
    """On CPU tensors auto takes each op's cpu_order (the measured table in _backend.OPS), never the CUDA order."""
    for row in _backend.OPS:
        want = row.cpu_order[0]
        assert want in ("torch", "aten"), row
        assert _backend.resolve(row.name, "auto", torch.device("cpu")) == want
        assert _backend.resolve(row.name, None, torch.device("cpu")) == want
        assert row.cpu_why, f"{row.name}'s cpu_order has no measurement or reason"
    assert _backend.resolve("bias_act", "auto", torch.device("cpu")) == "aten"
    assert _backend.resolve("sqrtm", "auto", torch.device("cpu")) == "torch"


def test_register_op_checks_the_cpu_order(monkeypatch):
    monkeypatch.setattr(_backend, "_specs", dict(_backend._specs))  # the toy ops leave no trace
    with pytest.raises(ValueError, match="cpu_order names"):
        _backend.register_op("_test_only_cpu_order", auto_order=("torch",), cpu_order=("aten",))
    entry = _backend.register_op("_test_only_cpu_default", auto_order=("torch",))
    assert entry.cpu_order == ("torch",)
    assert _backend.resolve("_test_only_cpu_default", "auto", torch.device("cpu")) == "torch"


def test_precedence_argument_over_context(monkeypatch):
    """A per-call backend= wins over use_backend; use_backend wins over the environment's default."""
    calls = []
    name, impl = _backend.select("bias_act", "triton", torch.device("cpu"))
    assert name == "triton"
    real = impl.forward
    monkeypatch.setattr(impl, "forward", lambda *a: calls.append("triton") or real(*a))
    x, b = torch.randn(2, 3, 4), torch.randn(3)
    with ganfast.use_backend("triton"):
        ganfast.ops.bias_act(x, b)
        assert calls == ["triton"]
        ganfast.ops.bias_act(x, b, backend="torch")
        assert calls == ["triton"]
    ganfast.ops.bias_act(x, b)
    assert calls == ["triton"]


def test_backward_uses_the_forward_backend(monkeypatch):
    """The backend chosen at forward time also runs the backward, whatever the default is then."""
    _, impl = _backend.select("bias_act", "triton", torch.device("cpu"))
    calls = []
    real = impl.backward
    monkeypatch.setattr(impl, "backward", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, 3, 4, requires_grad=True)
    with ganfast.use_backend("triton"):
        y = ganfast.ops.bias_act(x, torch.randn(3))
    y.sum().backward()
    assert calls == [1]


def test_available_backends_reports_reasons():
    report = ganfast.available_backends()
    assert set(report) == {"torch", "aten", "triton", "cuda"}
    assert report["torch"].available and bool(report["torch"])
    for name, st in report.items():
        assert st.available or st.reason, f"{name} is unavailable without a reason"
    per_op = ganfast.available_backends("bias_act", device="cpu")
    assert per_op["torch"] and per_op["triton"]  # the test session runs Triton under the interpreter
    assert not per_op["cuda"]
    assert "CUDA tensors" in per_op["cuda"].reason or "not built" in per_op["cuda"].reason.lower()
    with pytest.raises(ValueError, match="op must be one of"):
        ganfast.available_backends("no_such_op")


def test_op_without_an_implementation_is_reported():
    _backend.register_op("_test_only_op", auto_order=("torch",))
    try:
        _backend.register("_test_only_op", "torch", lambda: object())
        st = ganfast.available_backends("_test_only_op", device="cpu")
        assert st["torch"] and not st["triton"]
        assert "has no triton implementation" in st["triton"].reason
        with pytest.raises(ganfast.BackendUnavailable, match="has no triton implementation"):
            _backend.resolve("_test_only_op", "triton", torch.device("cpu"))
    finally:
        _backend.unregister_op("_test_only_op")
    # the toy op leaves the registry as it found it; ganfast's own ops stay
    assert "_test_only_op" not in _backend.ops()
    with pytest.raises(ValueError, match="own ops"):
        _backend.unregister_op("bias_act")


@pytest.mark.skipif(HAS_CUDA, reason="checks the messages given where no GPU is present")
def test_unavailable_backend_message_says_how_to_fix():
    with pytest.raises(ganfast.BackendUnavailable) as info:
        _backend.resolve("bias_act", "cuda", torch.device("cpu"))
    msg = str(info.value)
    assert "cuda" in msg and "bias_act" in msg and "ganfast doctor" in msg


def _run(code, **env):
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_environment_variable_sets_default():
    out = _run("import ganfast; print(ganfast.current_backend())", GANFAST_BACKEND="torch")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torch"
    bad = _run("import ganfast", GANFAST_BACKEND="fastest")
    assert bad.returncode != 0
    assert "GANFAST_BACKEND must be one of" in bad.stderr


def test_triton_on_cpu_needs_the_interpreter():
    code = (
        "import ganfast, torch\n"
        "st = ganfast.available_backends('bias_act', device='cpu')['triton']\n"
        "print(st.available, st.reason)\n"
        "try:\n"
        "    ganfast.ops.bias_act(torch.randn(2, 3), torch.randn(3), backend='triton')\n"
        "except ganfast.BackendUnavailable as e:\n"
        "    print('raised', e)\n"
    )
    out = _run(code, TRITON_INTERPRET="0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False")
    assert "TRITON_INTERPRET=1" in out.stdout and "raised" in out.stdout


def test_import_is_lazy():
    """`import ganfast` loads neither Triton nor the extension."""
    out = _run("import sys, ganfast; print('triton' in sys.modules, 'ganfast._C' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
