"""The one place that decides which implementation of an op runs.

Every op in :mod:`ganfast.ops` registers its implementations here, one per
backend, and asks :func:`select` for one at call time.  Nothing else in the
package tests for CUDA, Triton or the extension on its own.

Backends (see DESIGN.md):

``torch``
    the plain-PyTorch reference; runs on any device and defines correctness.
``triton``
    Triton kernels from ``ganfast.kernels``; on CUDA tensors, or on CPU
    tensors when the kernels were defined under ``TRITON_INTERPRET=1``.
``cuda``
    CUDA C++ from the ``ganfast._C`` extension; CUDA tensors only, and only
    when the extension was built.

The requested backend comes from, in order: the ``backend=`` argument of an
op, :func:`use_backend`, the ``GANFAST_BACKEND`` environment variable (read
when ganfast is imported), and finally ``"auto"``.  ``auto`` takes, per op
and device, the first available backend of the op's measured preference
order; on CPU tensors that is always ``torch``.

The choice is a plain module global rather than a context variable on
purpose: the autograd engine runs backward passes on its own threads, which
do not see a caller's context variables, and ``torch.compile`` can read (and
guard on) a module global but not a ``ContextVar``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple

import torch

BACKENDS: Tuple[str, ...] = ("torch", "triton", "cuda")
CHOICES: Tuple[str, ...] = ("auto",) + BACKENDS


class BackendUnavailable(RuntimeError):
    """A backend was asked for explicitly but cannot run here.

    The message says why, and how to make it available.
    """


def _check_name(name: Any, argname: str = "backend") -> str:
    if not isinstance(name, str) or name not in CHOICES:
        raise ValueError(f"{argname} must be one of {', '.join(repr(c) for c in CHOICES)}; got {name!r}")
    return name


def _env_default() -> str:
    raw = os.environ.get("GANFAST_BACKEND", "").strip().lower()
    if not raw:
        return "auto"
    try:
        return _check_name(raw, "GANFAST_BACKEND")
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
        self.name = _check_name(name)
        self._previous = _default
        _default = self.name

    def __enter__(self) -> "use_backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        global _default
        _default = self._previous

    def __repr__(self) -> str:
        return f"use_backend({self.name!r})"


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend can run, and if not, why and how to fix it."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available

    def __str__(self) -> str:
        return "available" if self.available else f"unavailable: {self.reason}"


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
    from . import _cuda  # local: keeps `import ganfast` free of the extension

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
    if backend == "torch":
        return _OK
    if backend == "triton":
        return _triton_status(device_type)
    if backend == "cuda":
        return _cuda_status(device_type)
    raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")


# --- op registry -----------------------------------------------------------


@dataclasses.dataclass
class _OpEntry:
    auto_order: Tuple[str, ...]
    loaders: Dict[str, Callable[[], Any]] = dataclasses.field(default_factory=dict)
    loaded: Dict[str, Any] = dataclasses.field(default_factory=dict)


_ops: Dict[str, _OpEntry] = {}
_lock = threading.Lock()


def register_op(op: str, auto_order: Tuple[str, ...] = ("cuda", "triton", "torch")) -> None:
    """Declare an op and the order ``auto`` tries its backends in on CUDA.

    The order is a measured fact about the op (bench/RESULTS.md); on CPU
    tensors ``auto`` always means ``torch``.
    """
    for b in auto_order:
        if b not in BACKENDS:
            raise ValueError(f"auto_order entries must be in {BACKENDS}; got {b!r}")
    if op in _ops:
        _ops[op].auto_order = tuple(auto_order)
    else:
        _ops[op] = _OpEntry(tuple(auto_order))


def register(op: str, backend: str, loader: Callable[[], Any]) -> None:
    """Register ``op``'s implementation for ``backend``.

    ``loader`` is called once, on first use, and returns the implementation
    (an object whose attributes are the op's host functions).  Loading lazily
    keeps Triton and the extension out of ``import ganfast``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if op not in _ops:
        register_op(op)
    _ops[op].loaders[backend] = loader


def ops() -> Tuple[str, ...]:
    """Names of the registered ops."""
    _import_ops()
    return tuple(sorted(_ops))


def _import_ops() -> None:
    importlib.import_module("ganfast.ops")


def _entry(op: str) -> _OpEntry:
    if op not in _ops:
        _import_ops()
    try:
        return _ops[op]
    except KeyError:
        raise ValueError(f"op must be one of {sorted(_ops)}; got {op!r}") from None


def status(op: str, backend: str, device_type: str) -> Availability:
    """Can ``op`` run with ``backend`` on tensors of ``device_type`` here?"""
    entry = _entry(op)
    if backend not in entry.loaders:
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
    """
    device_type = torch.device(device).type if device is not None else _here()
    if op is None:
        return {b: backend_status(b, device_type) for b in BACKENDS}
    return {b: status(op, b, device_type) for b in BACKENDS}


def _load(op: str, backend: str) -> Any:
    entry = _ops[op]
    impl = entry.loaded.get(backend)
    if impl is None:
        with _lock:
            impl = entry.loaded.get(backend)
            if impl is None:
                impl = entry.loaders[backend]()
                entry.loaded[backend] = impl
    return impl


def resolve(op: str, requested: Optional[str], device: torch.device) -> str:
    """The backend name that runs ``op`` on ``device`` for this request."""
    requested = current_backend() if requested is None else _check_name(requested)
    entry = _entry(op)
    device_type = device.type
    if requested == "auto":
        if device_type == "cpu":
            return "torch"
        for b in entry.auto_order:
            if b in entry.loaders and backend_status(b, device_type):
                return b
        return "torch"
    st = status(op, requested, device_type)
    if not st:
        raise BackendUnavailable(
            f"ganfast backend {requested!r} cannot run op {op!r} on {device_type} tensors: {st.reason}. "
            f"Use backend='auto' (or ganfast.use_backend('auto')) to fall back to what is available; "
            f"`ganfast doctor` lists what is available here."
        )
    return requested


def select(op: str, requested: Optional[str], device: torch.device) -> Tuple[str, Any]:
    """``(backend name, implementation)`` for one call of ``op``."""
    name = resolve(op, requested, device)
    return name, _load(op, name)
