"""The one place that decides which implementation of an op runs.

Every op is a row of :data:`OPS` (its backends and the order ``auto`` tries
them in); its module in :mod:`ganfast.ops` registers one implementation per
backend when ``ganfast.ops`` imports it, and asks :func:`select` for one at
call time.  This module never imports ``ganfast.ops``: what it knows about an
op is the row, so availability can be reported before any op is loaded.
Nothing else in the package tests for CUDA, Triton or the extension on its own.

Backends (see DESIGN.md):

``torch``
    the plain-PyTorch reference; runs on any device and defines correctness.
``aten``
    ATen's own ops composed the way ``torch.nn`` composes them
    (``F.conv2d`` -> ``F.batch_norm`` -> in-place ``F.leaky_relu_``, or the
    reference's own expression) under plain autograd, with no registered op
    in between: the fast eager path where no kernel of ours beats ATen (the
    CPU).  Any device; derivatives of every order are autograd's.
``triton``
    Triton kernels from ``ganfast.kernels``; on CUDA tensors, or on CPU
    tensors when the kernels were defined under ``TRITON_INTERPRET=1``.
``cuda``
    CUDA C++ from the ``ganfast._C`` extension; CUDA tensors only, and only
    when the extension was built.

The requested backend comes from, in order: the ``backend=`` argument of an
op, :func:`use_backend`, the ``GANFAST_BACKEND`` environment variable (read
when ganfast is imported), and finally ``"auto"``.  ``auto`` takes, per op
and device, the first available backend of the op's preference order (its
row in :data:`OPS`): ``auto_order`` on CUDA tensors, ``cpu_order`` on CPU
tensors (and any other non-CUDA device).

The choice is a plain module global rather than a context variable on
purpose: the autograd engine runs backward passes on its own threads, which
do not see a caller's context variables, and ``torch.compile`` can read (and
guard on) a module global but not a ``ContextVar``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from . import _cuda
from ._checks import TypeOrValueError, check_choice
from ._errors import Availability, BackendUnavailable

BACKENDS: Tuple[str, ...] = ("torch", "aten", "triton", "cuda")
CHOICES: Tuple[str, ...] = ("auto",) + BACKENDS

__all__ = [
    "BACKENDS", "CHOICES", "OPS", "Availability", "BackendUnavailable", "OpSpec", "available_backends",
    "backend_status", "check_backend", "current_backend", "implemented", "ops", "register", "register_op",
    "requested",
    "resolve", "select", "spec", "status", "use_backend",
]


def check_backend(name: Any, argname: str = "backend") -> str:
    """``name`` if it is one of :data:`CHOICES` (``"auto"`` or a backend name).

    Raises:
        ValueError: it is not (a ``TypeOrValueError`` for a non-string, which
            earlier releases reported as a ``ValueError``).
    """
    return check_choice(name, argname, CHOICES, type_error=TypeOrValueError)



def requested(backend: Optional[str]) -> str:
    """The backend a call asks for: its ``backend=`` argument, or :func:`current_backend` for None."""
    if backend is None:
        return _default
    return backend if type(backend) is str and backend in CHOICES else check_backend(backend)


def _env_default() -> str:
    raw = os.environ.get("GANFAST_BACKEND", "").strip().lower()
    if not raw:
        return "auto"
    try:
        return check_backend(raw, "GANFAST_BACKEND")
    except ValueError as err:
        raise ValueError(f"environment variable {err}") from None


_default: str = _env_default()


def current_backend() -> str:
    """The backend an op uses when its call does not name one."""
    return _default


class use_backend:
    """Choose the backend for ops called without ``backend=``.

    As a plain call it sets the default for the rest of the process::

        ganfast.use_backend("triton")

    As a context manager it restores the previous choice on exit::

        with ganfast.use_backend("torch"):
            y = ganfast.ops.bias_act(x, b)
    """

    def __init__(self, name: str) -> None:
        global _default
        self.name = check_backend(name)
        self._previous = _default
        _default = self.name

    def __enter__(self) -> "use_backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        global _default
        _default = self._previous

    def __repr__(self) -> str:
        return f"use_backend({self.name!r})"


_OK = Availability(True, "")


# --- backend-level availability ------------------------------------------


def _interpreting() -> bool:
    """Whether Triton kernels run (or will run) under the CPU interpreter.

    The interpreter is chosen when a kernel is defined, so once
    ``ganfast.kernels`` is imported its own record wins over the current
    environment.
    """
    mod = sys.modules.get("ganfast.kernels")
    if mod is not None and hasattr(mod, "INTERPRET"):
        return bool(mod.INTERPRET)
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_status(device_type: str) -> Availability:
    if importlib.util.find_spec("triton") is None:
        return Availability(False, "triton is not installed; `pip install triton` (Linux x86-64 only)")
    if device_type == "cuda":
        if not torch.cuda.is_available():
            return Availability(False, "no CUDA device is visible to torch")
        return _OK
    if device_type == "cpu":
        if _interpreting():
            return _OK
        return Availability(
            False,
            "Triton kernels run on CPU tensors only under the interpreter; set TRITON_INTERPRET=1 "
            "before importing ganfast (slow: for testing), or move the tensors to a CUDA device",
        )
    return Availability(False, f"triton kernels do not run on {device_type!r} tensors")


def _cuda_status(device_type: str) -> Availability:
    # _cuda.status() imports the extension on first call, not _cuda's import:
    # `import ganfast` stays free of it.
    built = _cuda.status()
    if not built:
        return built
    if device_type != "cuda":
        return Availability(False, f"the cuda backend runs on CUDA tensors only, not {device_type!r} tensors")
    if not torch.cuda.is_available():
        return Availability(False, "no CUDA device is visible to torch")
    return _OK


def backend_status(backend: str, device_type: str) -> Availability:
    """Can ``backend`` run on tensors of ``device_type`` here (any op)?"""
    if backend in ("torch", "aten"):
        return _OK
    if backend == "triton":
        return _triton_status(device_type)
    if backend == "cuda":
        return _cuda_status(device_type)
    raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")


# --- op registry -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One op as the dispatcher knows it, before any of its code is imported.

    ``backends`` are the implementations the op has; ``auto_order`` is the
    order ``auto`` tries them in on CUDA tensors, ``cpu_order`` the order on
    CPU (and other non-CUDA) tensors; ``module`` registers the
    implementations (imported by ``ganfast.ops``, never by this module);
    ``why`` and ``cpu_why`` say what each order rests on (a measurement, with
    where it is recorded, or the reasoning until one exists).
    """

    name: str
    module: str
    backends: Tuple[str, ...]
    auto_order: Tuple[str, ...]
    why: str = ""
    cpu_order: Tuple[str, ...] = ("torch",)
    cpu_why: str = ""


#: CPU measurements behind the ``cpu_order`` column (2026-12-01, the 2-core CPU
#: machine, float32, forward + backward, median of the rounds, providers timed
#: interleaved; bench/RESULTS.md, "CPU" section): ``python bench/cpu_table.py``
#: (eager, torch.compile and every backend, 2 threads) and an interleaved
#: torch-vs-aten loop on one thread (36 rounds each).
_CPU = "CPU fwd+bwd fp32, interleaved: "
_CPU_WHY = {
    "bias_act": _CPU + ("aten 1.43 ms vs torch 26.0 ms at 32x128x16x16 (the registered op's closed-form backward is "
                         "an element-wise chain); aten = eager at 4x64x16x16"),
    "bias_act_pixel_norm": _CPU + ("aten 3.81 ms, eager (ProGAN's expression) 4.22, torch 7.35 at 16x256x16x16; "
                                    "aten 19.8, eager 19.8, torch 32.5 at 8x128x64x64 (2 threads, 30 rounds)"),
    "batch_norm_act": _CPU + ("as conv_bn_act: ATen's native batch_norm kernels, forward and backward, against the "
                               "reference's element-wise chain"),
    "conv_affine_act": _CPU + ("the conv blocks' eval path: ATen's conv + one fused affine pass, no registered op "
                                "around it"),
    "conv_bn_act": _CPU + ("aten 543 ms, eager torch.nn 555, torch 816 at dcgan64 L3 train 128x128x16x16"),
    "conv_transpose2d": _CPU + ("the transposed conv blocks' convolution: F.conv_transpose2d itself, as torch.nn runs "
                                 "it"),
    "conv_transpose_bn_act": _CPU + ("aten 220 ms, eager torch.nn 228, torch 472 at dcgan64 L1 train 128x100x1x1"),
    "feature_stats": _CPU + ("one implementation runs on the CPU (the reference's float64 GEMM; Triton only under the "
                              "interpreter)"),
    "instance_norm_act": _CPU + ("aten 4.6 ms, eager (F.instance_norm + relu) 5.5, torch 27.8 at 4x64x64x64 with "
                                  "affine; aten 2.5, eager 2.2, torch 15.9 at 1x128x64x64 (2 threads, 15 rounds)"),
    "minibatch_discrimination": _CPU + ("aten 265 ms vs torch 313 ms at 64x8192, K=100, D=5 (no recompute in the "
                                         "backward)"),
    "minibatch_stddev": _CPU + ("torch 1.19 ms vs aten 1.29 ms at 16x512x4x4, 51.2 vs 55.4 ms at 64x256x8x8 (the "
                                 "closed-form backward wins)"),
    "modulated_conv2d": _CPU + ("aten (input/output scales on the shared weight) 45.4 ms vs torch (per-sample weights, "
                                 "grouped conv, the backward recomputing the reference) 72.5 at 8x128x32x32 3x3; 45.9 "
                                 "vs 70.7 at 8x128x16x16 up 2; 21.4 vs 27.6 at 4x64x64x64 (2 threads, 16 rounds)"),
    "upfirdn2d": _CPU + ("downsample2d 8x64x64x64: aten 10.7-13.7 ms, torch 13.3-18.0, eager (a user's depthwise "
                          "conv) 16.9-21.3; upsample2d 8x64x32x32: torch 12.6-15.0, aten 17.1-19.3, eager 17.6-20.6 "
                          "(2 threads, 40 rounds, two runs): aten's backward is ATen's conv backward, the registered "
                          "op's is its adjoint (cheaper after upsampling, dearer after downsampling); aten first"),
    "self_attention2d": _CPU + ("aten 53.5 ms vs torch 80.0 ms at 8 x (32, 32, 256) x 256 positions (no recompute of "
                                 "the attention in the backward)"),
}

#: Every op of ganfast.  Each row is the op's whole dispatch contract: adding
#: an op (docs/adding-an-op.md) adds a row here, and its module registers one
#: implementation per listed backend.  The CUDA orders (``auto_order``) are
#: reasoned, not yet measured (no GPU has been lent: bench/RESULTS.md); the
#: CPU orders (``cpu_order``) rest on the measurement each row's ``cpu_why``
#: quotes.  A measurement that disagrees changes the row.
OPS: Tuple[OpSpec, ...] = (
    OpSpec("bias_act", "ganfast.ops.bias_act", ("torch", "aten", "triton", "cuda"), ("cuda", "triton", "torch"),
           "the CUDA kernel is hand-vectorised for bandwidth; Triton next",
           ("aten", "torch"), _CPU_WHY["bias_act"]),
    OpSpec("bias_act_pixel_norm", "ganfast.ops.bias_act_pixel_norm", ("torch", "aten", "triton"), ("triton", "torch"),
           "one pass (x read once, y written once) instead of eager's five over the activation",
           ("aten", "torch"), _CPU_WHY["bias_act_pixel_norm"]),
    OpSpec("batch_norm_act", "ganfast.ops.batch_norm_act", ("torch", "aten", "triton"), ("triton", "torch"),
           "two passes instead of eager's five",
           ("aten", "torch"), _CPU_WHY["batch_norm_act"]),
    OpSpec("conv_affine_act", "ganfast.ops.conv_affine_act", ("torch", "aten", "triton"), ("torch", "triton"),
           "cuDNN (TF32) until a measurement shows the implicit GEMM ahead",
           ("aten", "torch"), _CPU_WHY["conv_affine_act"]),
    OpSpec("conv_bn_act", "ganfast.ops.conv_bn_act", ("torch", "aten", "triton"), ("triton", "torch"),
           "batch_norm_act's kernels after cuDNN's convolution",
           ("aten", "torch"), _CPU_WHY["conv_bn_act"]),
    OpSpec("conv_transpose2d", "ganfast.ops.conv_transpose2d", ("torch", "aten", "triton"), ("torch", "triton"),
           "cuDNN until a measurement shows the sub-pixel kernel ahead",
           ("aten", "torch"), _CPU_WHY["conv_transpose2d"]),
    OpSpec("conv_transpose_bn_act", "ganfast.ops.conv_transpose_bn_act", ("torch", "aten", "triton"),
           ("triton", "torch"), "batch_norm_act's kernels after the transposed convolution",
           ("aten", "torch"), _CPU_WHY["conv_transpose_bn_act"]),
    OpSpec("feature_stats", "ganfast.ops.feature_stats", ("torch", "triton"), ("torch", "triton"),
           "cuBLAS DGEMM until the fused kernel is measured against it",
           ("torch",), _CPU_WHY["feature_stats"]),
    OpSpec("instance_norm_act", "ganfast.ops.instance_norm_act", ("torch", "aten", "triton"), ("triton", "torch"),
           "batch_norm_act's kernels on the (1, N*C, *) view: two passes instead of eager's five; reasoned, not "
           "measured",
           ("aten", "torch"), _CPU_WHY["instance_norm_act"]),
    OpSpec("minibatch_discrimination", "ganfast.ops.minibatch_discrimination", ("torch", "aten", "triton"),
           ("triton", "torch"), "the reference materialises (B, B, K, D)",
           ("aten", "torch"), _CPU_WHY["minibatch_discrimination"]),
    OpSpec("minibatch_stddev", "ganfast.ops.minibatch_stddev", ("torch", "aten", "triton"), ("triton", "torch"),
           "two passes instead of eager's seven",
           ("torch", "aten"), _CPU_WHY["minibatch_stddev"]),
    OpSpec("self_attention2d", "ganfast.ops.self_attention2d", ("torch", "aten", "triton"), ("triton", "torch"),
           "the reference stores the (B, N, N) attention matrix",
           ("aten", "torch"), _CPU_WHY["self_attention2d"]),
    OpSpec("modulated_conv2d", "ganfast.ops.modulated_conv2d", ("torch", "aten", "triton"), ("triton", "torch"),
           "the implicit GEMM with the style scale in its prologue and the demodulation and noise in its epilogue: "
           "no per-sample weights (the grouped form's (N, O, I, k, k) tensor) and no extra passes over x or y "
           "(the scaled form's x * s, y * d, + noise); reasoned, not measured",
           ("aten", "torch"), _CPU_WHY["modulated_conv2d"]),
    OpSpec("upfirdn2d", "ganfast.ops.upfirdn2d", ("torch", "aten", "triton"), ("triton", "torch"),
           "one pass computing each kept output from x, against eager's zero-stuffed, padded and fully convolved "
           "copies",
           ("aten", "torch"), _CPU_WHY["upfirdn2d"]),
    OpSpec("sqrtm", "ganfast.ops.sqrtm", ("torch",), ("torch",), "LAPACK / cuSOLVER factorizations",
           ("torch",), "LAPACK; one implementation"),
    OpSpec("sqrtm_trace", "ganfast.ops.sqrtm", ("torch",), ("torch",), "LAPACK / cuSOLVER factorizations",
           ("torch",), "LAPACK; one implementation"),
)

_specs: Dict[str, OpSpec] = {}
_loaders: Dict[Tuple[str, str], Callable[[], Any]] = {}
_loaded: Dict[Tuple[str, str], Any] = {}
_lock = threading.Lock()


def register_op(
    op: str,
    auto_order: Tuple[str, ...] = ("cuda", "triton", "torch"),
    backends: Optional[Tuple[str, ...]] = None,
    module: str = "",
    why: str = "",
    cpu_order: Optional[Tuple[str, ...]] = None,
    cpu_why: str = "",
) -> OpSpec:
    """Declare ``op``: its backends and the orders ``auto`` tries them in.

    ganfast's own ops are the rows of :data:`OPS`, declared through this
    function when this module is imported; an op defined elsewhere (a
    plugin, a test's toy op) declares itself the same way before it calls
    :func:`register`.  ``backends`` defaults to ``auto_order``'s;
    ``cpu_order`` (the order on CPU tensors) defaults to ``("torch",)``.

    Raises:
        ValueError: a backend name is not one of :data:`BACKENDS`, or an
            order names a backend the op does not have.
    """
    backends = tuple(auto_order) if backends is None else tuple(backends)
    cpu_order = ("torch",) if cpu_order is None else tuple(cpu_order)
    for b in backends + tuple(auto_order) + cpu_order:
        if b not in BACKENDS:
            raise ValueError(f"backends and auto_order entries must be in {BACKENDS}; got {b!r}")
    for name, order in (("auto_order", auto_order), ("cpu_order", cpu_order)):
        missing = [b for b in order if b not in backends]
        if missing:
            raise ValueError(f"{name} names {missing} that op {op!r} does not have (backends={backends})")
    entry = OpSpec(op, module, backends, tuple(auto_order), why, cpu_order, cpu_why)
    _specs[op] = entry
    return entry


for _row in OPS:
    register_op(_row.name, _row.auto_order, _row.backends, _row.module, _row.why, _row.cpu_order, _row.cpu_why)
del _row


def register(op: str, backend: str, loader: Callable[[], Any]) -> None:
    """Register ``op``'s implementation for ``backend``.

    ``loader`` is called once, on first use, and returns the implementation
    (an object whose attributes are the op's host functions).  Loading lazily
    keeps Triton and the extension out of ``import ganfast``.

    Raises:
        ValueError: ``op`` is not declared (:data:`OPS`, :func:`register_op`)
            or does not list ``backend``.
    """
    entry = spec(op)
    if backend not in entry.backends:
        raise ValueError(
            f"op {op!r} does not declare a {backend!r} backend (it has {entry.backends}); "
            f"add it to its row in ganfast._backend.OPS"
        )
    _loaders[(op, backend)] = loader
    _loaded.pop((op, backend), None)


def unregister_op(op: str) -> None:
    """Remove ``op`` declared by :func:`register_op` and its implementations.

    For plugins and tests that declare a toy op and must leave the registry
    as they found it; ganfast's own ops (:data:`OPS`) cannot be removed.

    Raises:
        ValueError: ``op`` is one of ganfast's own ops or is not declared.
    """
    if any(row.name == op for row in OPS):
        raise ValueError(f"op {op!r} is one of ganfast's own ops (ganfast._backend.OPS) and cannot be removed")
    if op not in _specs:
        raise ValueError(f"op must be a declared op; got {op!r}")
    with _lock:
        del _specs[op]
        for key in [k for k in _loaders if k[0] == op]:
            del _loaders[key]
        for key in [k for k in _loaded if k[0] == op]:
            del _loaded[key]


def ops() -> Tuple[str, ...]:
    """Names of the declared ops."""
    return tuple(sorted(_specs))


def implemented(op: str) -> Tuple[str, ...]:
    """The backends of ``op`` whose implementation is registered (in :data:`BACKENDS` order)."""
    return tuple(b for b in spec(op).backends if (op, b) in _loaders)


def spec(op: str) -> OpSpec:
    """The :class:`OpSpec` of ``op``.

    Raises:
        ValueError: no such op.
    """
    try:
        return _specs[op]
    except (KeyError, TypeError):
        raise ValueError(f"op must be one of {sorted(_specs)}; got {op!r}") from None


def status(op: str, backend: str, device_type: str) -> Availability:
    """Can ``op`` run with ``backend`` on tensors of ``device_type`` here?"""
    if backend not in spec(op).backends:
        return Availability(False, f"op {op!r} has no {backend} implementation")
    return backend_status(backend, device_type)


def _here() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def available_backends(op: Optional[str] = None, device: Any = None) -> Dict[str, Availability]:
    """What can run here, and why the rest cannot.

    Returns ``{backend: Availability}`` for every backend.  With ``op``, also
    accounts for which implementations that op has.  ``device`` (a
    ``torch.device`` or string) defaults to the CUDA device when one is
    visible, else the CPU.

    Raises:
        ValueError: ``op`` is not an op's name.
    """
    device_type = torch.device(device).type if device is not None else _here()
    if op is None:
        return {b: backend_status(b, device_type) for b in BACKENDS}
    return {b: status(op, b, device_type) for b in BACKENDS}


def _load(op: str, backend: str) -> Any:
    key = (op, backend)
    impl = _loaded.get(key)
    if impl is None:
        with _lock:
            impl = _loaded.get(key)
            if impl is None:
                loader = _loaders.get(key)
                if loader is None:
                    where = spec(op).module or "the op's module"
                    raise BackendUnavailable(
                        f"op {op!r} lists a {backend} backend but no implementation was registered; "
                        f"importing {where} registers it"
                    )
                impl = loader()
                _loaded[key] = impl
    return impl


def resolve(op: str, requested_backend: Optional[str], device: torch.device) -> str:
    """The backend name that runs ``op`` on ``device`` for this request.

    Raises:
        BackendUnavailable: a backend named explicitly cannot run here (the
            message says why and how to fix it).
        ValueError: the name is not a backend's, or ``op`` is not an op's.
    """
    want = requested(requested_backend)
    entry = spec(op)
    device_type = device.type
    if want == "auto":
        for b in entry.auto_order if device_type == "cuda" else entry.cpu_order:
            if backend_status(b, device_type):
                return b
        return "torch"
    st = status(op, want, device_type)
    if not st:
        raise BackendUnavailable(
            f"ganfast backend {want!r} cannot run op {op!r} on {device_type} tensors: {st.reason}. "
            f"Use backend='auto' (or ganfast.use_backend('auto')) to fall back to what is available; "
            f"`ganfast doctor` lists what is available here."
        )
    return want


def select(op: str, requested_backend: Optional[str], device: torch.device) -> Tuple[str, Any]:
    """``(backend name, implementation)`` for one call of ``op``."""
    name = resolve(op, requested_backend, device)
    return name, _load(op, name)
