"""The CUDA extension ganfast._C: build record, module surface, argument checks, kernels.

Without a GPU the kernels still run here: ``_C._bias_act_*_host`` executes the
very same kernel bodies on the host, one simulated thread after another, so
the maths, the index arithmetic and the vector/tail paths are checked against
the reference on every machine that builds the extension.  Tests marked
``gpu`` launch the real kernels.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import types

import pytest
import torch

from ganfast import _cuda, _layout
from ganfast._activations import SCALAR_SLOPE_NAMES
from ganfast.ref import bias_act as ref
from ganfast.testing import assert_close

ACTS = ["linear", "relu", "leaky_relu", "tanh", "sigmoid", "silu"]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
NAME = {v: k for k, v in DTYPES.items()}


@pytest.fixture(scope="module")
def C():
    """The extension; skipped only where it was deliberately or necessarily not built."""
    info = _cuda.build_info()
    if os.environ.get("GANFAST_CUDA", "").strip() == "0":
        pytest.skip("GANFAST_CUDA=0: the CUDA extension was not built on purpose")
    if info.get("cuda") == "skipped":
        # Only for a missing toolkit or CMake (or GANFAST_CUDA=0 at install); a failed build fails below.
        pytest.skip(f"the CUDA extension was not built here: {info.get('reason')}")
    return _cuda.extension()  # raises, with the reason, when it should be here but is not


def _no_gpu_here() -> bool:
    return not torch.cuda.is_available() and not os.path.exists("/dev/nvidiactl")


# --- build record and module surface ------------------------------------------------


def test_build_status_says_built(C):
    info = _cuda.build_info()
    assert info.get("cuda") == "built", info
    assert info.get("nvcc"), info
    assert _cuda.status().available, _cuda.status()
    assert _cuda.extension() is C


def test_archs(C):
    info = _cuda.build_info()
    if info.get("cmake_archs", "80-real;90-real;90-virtual") != "80-real;90-real;90-virtual":
        pytest.skip(f"built for GANFAST_CUDA_ARCHS={info['cmake_archs']}")
    archs = C.archs().split(";")
    assert {"sm_80", "sm_90", "compute_90"} <= set(archs), archs
    assert C.archs() == info["archs"]


def test_names_are_the_reference_tables(C):
    assert C.activations() == ACTS
    assert set(C.activations()) == set(SCALAR_SLOPE_NAMES)  # prelu (a tensor slope) runs on Triton on CUDA
    assert C.dtypes() == ["float32", "float16", "bfloat16", "float64"]


def test_versions_and_device_count_never_throw(C):
    assert C.runtime_version() >= 11080  # sm_90 needs CUDA 11.8+
    assert C.driver_version() >= 0
    n = C.device_count()
    assert n >= 0
    if _no_gpu_here():
        assert n == 0
    assert C.device_count() == n  # a failed query left no error behind


def test_launch_args_rejects_cpu_tensors():
    with pytest.raises(ValueError, match="CUDA tensors"):
        _cuda.launch_args(torch.zeros(3))


@pytest.mark.parametrize(
    "record, expect",
    [
        ({"cuda": "skipped", "reason": "GANFAST_CUDA=0 was set"}, "GANFAST_CUDA=0 was set"),
        ({"cuda": "skipped", "reason": "no nvcc found (looked in PATH)"}, "install the CUDA toolkit"),
        ({"cuda": "failed", "reason": "the CMake build failed: bias_act.cu(3): error: x\nmore"}, "error: x"),
        ({"cuda": "built"}, "was built but does not import"),
        (None, "is not installed"),
    ],
)
def test_missing_extension_reasons(tmp_path, monkeypatch, record, expect):
    status_file = tmp_path / "_build_status.json"
    if record is not None:
        status_file.write_text(json.dumps(record))
    monkeypatch.setattr(_cuda, "STATUS_FILE", status_file)
    reason = _cuda._missing_reason(ImportError("No module named 'ganfast._C'"))
    assert expect in reason
    assert "more" not in reason  # only the first line of a failure
    assert "GANFAST_CUDA=1 pip install --no-build-isolation -e ." in reason
    assert _cuda.build_info() == (record or {})


def test_driver_older_than_the_runtime_is_reported():
    fake = types.SimpleNamespace(driver_version=lambda: 12080, runtime_version=lambda: 13000)
    assert "supports CUDA 12.8 at most" in _cuda._driver_problem(fake)
    for driver in (0, 13000, 13020):  # no driver (not our concern), same major, newer minor
        fake = types.SimpleNamespace(driver_version=lambda d=driver: d, runtime_version=lambda: 13000)
        assert _cuda._driver_problem(fake) == ""


def test_extension_raises_backend_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setattr(_cuda, "_loaded", (None, _cuda.Availability(False, "because of X")))
    assert not _cuda.status()
    with pytest.raises(_cuda.BackendUnavailable, match="because of X"):
        _cuda.extension()


# --- argument checks: all before any CUDA call, so they run anywhere ----------------

GOOD = dict(
    x=16, b=0, y=16, numel=10, channels=1, channel_stride=1, dtype="float32", act="relu", alpha=0.2, gain=1.0,
    clamp=-1.0, device=0, stream=0,
)


@pytest.mark.parametrize(
    "change, argname",
    [
        (dict(act="gelu"), "act"),
        (dict(act="ReLU"), "act"),
        (dict(dtype="int8"), "dtype"),
        (dict(dtype="half"), "dtype"),
        (dict(numel=-1), "numel"),
        (dict(channels=0), "channels"),
        (dict(channel_stride=0), "channel_stride"),
        (dict(x=0), "x"),
        (dict(y=0), "y"),
        (dict(gain=math.inf), "gain"),
        (dict(gain=math.nan), "gain"),
        (dict(clamp=math.nan), "clamp"),
        (dict(device=-1), "device"),
    ],
)
def test_forward_bad_arguments_raise_value_error(C, change, argname):
    kwargs = {**GOOD, **change}
    with pytest.raises(ValueError, match=rf"\b{argname}\b") as info:
        C.bias_act_forward(**kwargs)
    assert "bias_act_forward" in str(info.value)


def test_backward_bad_arguments_raise_value_error(C):
    good = dict(g=16, x=16, b=0, dz=16, **{k: v for k, v in GOOD.items() if k not in ("x", "b", "y")})
    for change, argname in [(dict(g=0), "g"), (dict(dz=0), "dz"), (dict(act="elu"), "act"), (dict(numel=-5), "numel")]:
        with pytest.raises(ValueError, match=rf"\b{argname}\b"):
            C.bias_act_backward(**{**good, **change})


def test_unknown_name_lists_valid_values(C):
    with pytest.raises(ValueError) as info:
        C.bias_act_forward(**{**GOOD, "act": "gelu"})
    assert all(f"'{a}'" in str(info.value) for a in ACTS)
    with pytest.raises(ValueError) as info:
        C.bias_act_forward(**{**GOOD, "dtype": "int8"})
    assert all(f"'{d}'" in str(info.value) for d in DTYPES)


def test_zero_elements_launch_nothing(C):
    # numel == 0 returns before touching CUDA, so it works even without a GPU.
    assert C.bias_act_forward(**{**GOOD, "x": 0, "y": 0, "numel": 0}) is None
    assert C.bias_act_backward(0, 0, 0, 0, 0, 1, 1, "float16", "silu", 0.2, 1.0, -1.0, 0, 0) is None


@pytest.mark.skipif(not _no_gpu_here(), reason="checks the error on a machine without a GPU")
def test_launch_without_gpu_raises_runtime_error(C):
    # In a subprocess, so that a crash would be a failed test rather than a dead test run.
    code = textwrap.dedent(
        """
        import ganfast._C as C
        try:
            C.bias_act_forward(16, 0, 16, 10, 1, 1, "float32", "relu", 0.2, 1.0, -1.0, 0, 0)
        except RuntimeError as err:
            print("RuntimeError:", err)
        try:
            C.bias_act_backward(16, 16, 0, 16, 10, 1, 1, "bfloat16", "tanh", 0.2, 1.0, -1.0, 0, 0)
        except RuntimeError as err:
            print("RuntimeError:", err)
        print("device_count", C.device_count())
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout + proc.stderr
    for line in lines[:2]:
        assert line.startswith("RuntimeError: ganfast._C: no usable CUDA device"), line
        assert "CUDA" in line and "NVIDIA GPU and driver" in line
    assert lines[2] == "device_count 0"


# --- the kernels against the reference ------------------------------------------------

# (shape, dim, memory format): odd sizes, NCHW, channels_last, one channel, 1-D.
LAYOUTS = [
    ((1,), 0, None),
    ((3,), 0, None),
    ((17,), 0, None),
    ((2, 3, 5, 7), 1, None),
    ((2, 3, 5, 7), 1, torch.channels_last),
    ((3, 1, 4, 4), 1, None),
    ((4, 13, 9, 11), 1, None),
    ((4, 13, 9, 11), 1, torch.channels_last),
    ((1003, 5), 1, None),
    ((1003,), 0, None),
]


def _make(shape, dtype, memory_format, device="cpu", misalign=False, scale=3.0, gen=None):
    """Fresh random input of `shape`; `misalign` puts it one element off a 16-byte boundary."""
    numel = math.prod(shape)
    if memory_format is not None:
        x = torch.empty(shape, dtype=dtype, device=device, memory_format=memory_format)
        x.copy_(torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) * scale)
        return x
    flat = torch.empty(numel + 1, dtype=dtype, device=device)
    body = flat[1:] if misalign else flat[:numel]
    body.copy_(torch.randn(numel, generator=gen, dtype=torch.float64).to(dtype) * scale)
    return body.view(shape)


def _launch(kind, x, bias, act, alpha, gain, clamp, dim, g=None, out=None, **host):
    """Run the forward (g is None) or backward kernel on dense x: 'host' emulation or 'cuda'."""
    C = _cuda.extension()
    channels, stride = _layout.channel_geometry(x, dim)
    if bias is not None:
        bias = bias.to(ref.compute_dtype(x.dtype)).contiguous()
    out = torch.empty_like(x) if out is None else out
    tail = (x.numel(), channels, stride, NAME[x.dtype], act, alpha, gain, -1.0 if clamp is None else clamp)
    b = bias.data_ptr() if bias is not None else 0
    if kind == "host":
        if g is None:
            C._bias_act_forward_host(x.data_ptr(), b, out.data_ptr(), *tail, **host)
        else:
            C._bias_act_backward_host(g.data_ptr(), x.data_ptr(), b, out.data_ptr(), *tail, **host)
    else:
        device, stream = _cuda.launch_args(x)
        if g is None:
            C.bias_act_forward(x.data_ptr(), b, out.data_ptr(), *tail, device, stream)
        else:
            C.bias_act_backward(g.data_ptr(), x.data_ptr(), b, out.data_ptr(), *tail, device, stream)
    return out


def _check(kind, x, bias, act, clamp, dim, gain=1.4, alpha=0.2, g=None, what="", **host):
    """Forward and backward of the kernel against the float64 reference on the same values."""
    xd = x.double()
    bd = bias.double() if bias is not None else None
    y = _launch(kind, x, bias, act, alpha, gain, clamp, dim, **host)
    want = ref.bias_act(xd, bd, act, alpha, gain, clamp, dim)
    assert_close(y, want, x.dtype, 0, f"forward {what}")
    if g is None:
        g = torch.randn(x.shape, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    g = _layout.like(g, x)
    dz = _launch(kind, x, bias, act, alpha, gain, clamp, dim, g=g, **host)
    want = ref.bias_act_grad(g.double(), xd, bd, act, alpha, gain, clamp, dim)
    assert_close(dz, want, x.dtype, 1, f"backward {what}")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("act", ACTS)
def test_kernel_bodies_on_host_match_reference(C, act, dtype, gen):
    dt = DTYPES[dtype]
    case = 0
    for shape, dim, fmt in LAYOUTS:
        for misalign in ([False, True] if fmt is None else [False]):
            for with_bias in (True, False):
                for clamp in (None, 0.7):
                    x = _make(shape, dt, fmt, misalign=misalign, gen=gen)
                    bias = torch.randn(shape[dim], generator=gen) if with_bias else None
                    # Vary the simulated grid (1 thread: one thread walks everything) and the index width.
                    host = dict(num_threads=(1, 193, 4096)[case % 3], index64=bool(case % 2))
                    what = f"{shape} dim={dim} {fmt} misalign={misalign} bias={with_bias} clamp={clamp} {host}"
                    _check("host", x, bias, act, clamp, dim, what=what, **host)
                    case += 1


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("act", ACTS)
def test_special_values_on_host_match_reference(C, act, dtype):
    # NaN, inf, signed zeros, the clamp's bounds and values far into the tails.
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-30, -50.0, 50.0, 0.5, -0.5, 2.0, -2.0, 7.0, -9.0]
    dt = DTYPES[dtype]
    x = torch.tensor(values * 3, dtype=torch.float64).to(dt).view(3, len(values))
    g = torch.randn(x.shape, dtype=torch.float64).to(dt)
    g[0, :4] = torch.tensor([math.inf, -math.inf, math.nan, 0.0], dtype=dt)
    bias = torch.tensor([0.0, 0.25, -1.0])
    for clamp in (None, 0.0, 0.5, math.inf):
        for b in (None, bias):
            _check("host", x, b, act, clamp, 0, g=g, what=f"clamp={clamp} bias={b is not None}")


def test_host_emulation_checks_its_arguments(C):
    with pytest.raises(ValueError, match="num_threads"):
        C._bias_act_forward_host(16, 0, 16, 1, 1, 1, "float32", "relu", 0.2, 1.0, -1.0, num_threads=0)


# --- on the GPU --------------------------------------------------------------------------

GPU_SIZES = [((1,), 0, None), ((3,), 0, None), ((17,), 0, None), ((1000003,), 0, None),
             ((8, 19, 31, 33), 1, None), ((8, 19, 31, 33), 1, torch.channels_last), ((16, 64, 32, 32), 1, None)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("act", ACTS)
def test_cuda_kernels_match_reference(C, act, dtype, gen):
    dt = DTYPES[dtype]
    for shape, dim, fmt in GPU_SIZES:
        for misalign in ([False, True] if fmt is None else [False]):
            for clamp in (None, 0.7):
                x = _make(shape, dt, fmt, device="cuda", misalign=misalign, gen=gen)
                bias = torch.randn(shape[dim], generator=gen).cuda()
                _check("cuda", x, bias, act, clamp, dim, what=f"{shape} {fmt} misalign={misalign} clamp={clamp}")
    torch.cuda.synchronize()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cuda_special_values(C, dtype):
    dt = DTYPES[dtype]
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, -50.0, 50.0, 0.5, -0.5, 2.0]
    x = torch.tensor(values * 40, dtype=torch.float64).to(dt).view(40, len(values)).cuda()
    bias = torch.linspace(-1, 1, 40).cuda()
    for act in ACTS:
        for clamp in (None, 0.0, 0.5):
            _check("cuda", x, bias, act, clamp, 0, what=f"{act} clamp={clamp}")


@pytest.mark.gpu
def test_cuda_misaligned_output_and_gradient(C):
    # Every data pointer one element off: the scalar path, for y and dz as well as x and g.
    x = _make((5, 7, 9), torch.bfloat16, None, device="cuda", misalign=True)
    g = _make((5, 7, 9), torch.bfloat16, None, device="cuda", misalign=True)
    y = _make((5, 7, 9), torch.bfloat16, None, device="cuda", misalign=True)
    bias = torch.randn(7, device="cuda")
    _launch("cuda", x, bias, "silu", 0.2, 1.0, None, 1, out=y)
    assert_close(y, ref.bias_act(x.double(), bias.double(), "silu", 0.2, 1.0, None, 1), torch.bfloat16, 0, "y")
    dz = _launch("cuda", x, bias, "silu", 0.2, 1.0, None, 1, g=g, out=y)
    want = ref.bias_act_grad(g.double(), x.double(), bias.double(), "silu", 0.2, 1.0, None, 1)
    assert_close(dz, want, torch.bfloat16, 1, "dz")


@pytest.mark.gpu
def test_cuda_runs_on_the_current_stream_and_keeps_the_device(C):
    x = torch.randn(4, 32, 64, 64, device="cuda", dtype=torch.float16)
    bias = torch.randn(32, device="cuda")
    before = torch.cuda.current_device()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        device, handle = _cuda.launch_args(x)
        assert handle == stream.cuda_stream
        y = _launch("cuda", x, bias, "leaky_relu", 0.2, math.sqrt(2), 256.0, 1)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.cuda.current_device() == before
    assert_close(y, ref.bias_act(x.double(), bias.double(), "leaky_relu", 0.2, math.sqrt(2), 256.0, 1),
                 torch.float16, 0, "y on a side stream")


@pytest.mark.gpu
def test_cuda_64bit_indexing(C):
    # More than 2**31 elements: the 64-bit path, checked on the last channels of the last sample.
    n, c, h, w = 2, 16, 8192, 8200  # 2.15e9 elements, 4.3 GB in bfloat16
    free, _ = torch.cuda.mem_get_info()
    if free < 12 * 2**30:
        pytest.skip("needs 12 GB of free GPU memory")
    x = torch.randn(n, c, h, w, device="cuda", dtype=torch.bfloat16)
    assert x.numel() > 2**31
    bias = torch.randn(c, device="cuda")
    y = _launch("cuda", x, bias, "leaky_relu", 0.2, 1.0, None, 1)
    tail = (slice(n - 1, n), slice(c - 2, c))
    want = ref.bias_act(x[tail].double(), bias[c - 2:].double(), "leaky_relu", 0.2, 1.0, None, 1)
    assert_close(y[tail], want, torch.bfloat16, 0, "last channels")
    del x, y
    torch.cuda.empty_cache()
