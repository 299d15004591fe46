"""The CUDA extension ``ganfast._C``: loaded on first use, and why it is missing.

setup.py builds the extension when it finds nvcc and CMake, and records what
happened in ``ganfast/_build_status.json`` (built, skipped or failed, and
why).  This module turns that record, or the ImportError, into an
:class:`~ganfast._errors.Availability` whose reason says how to fix it.  Only
:mod:`ganfast._backend` decides whether the ``cuda`` backend runs; the host
launchers in :mod:`ganfast.ops` call :func:`extension` and :func:`launch_args`.

Importing this module neither imports the extension nor touches the GPU.
"""

from __future__ import annotations

import importlib
import json
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional, Tuple

from ._errors import Availability, BackendUnavailable

STATUS_FILE = Path(__file__).with_name("_build_status.json")

REINSTALL = "reinstall with `GANFAST_CUDA=1 pip install --no-build-isolation -e .`"
FIX = f"to build it, install the CUDA toolkit (nvcc) and CMake >= 3.18, then {REINSTALL}"

_lock = threading.Lock()
_loaded: Optional[Tuple[Optional[ModuleType], Availability]] = None


def build_info() -> Dict[str, Any]:
    """The record setup.py left in ``_build_status.json``, or ``{}`` without one (for ``ganfast doctor``)."""
    try:
        info = json.loads(STATUS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _first_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def _missing_reason(import_error: BaseException) -> str:
    info = build_info()
    state = info.get("cuda")
    why = _first_line(info.get("reason"))
    if state == "skipped":
        return f"the CUDA extension ganfast._C was not built ({why or 'skipped at install'}); {FIX}"
    if state == "failed":
        return (
            f"the CUDA extension ganfast._C failed to build at install: {why or 'see the build log'}; "
            f"fix that (`pip install -v` shows the whole build log), then {REINSTALL}"
        )
    if state == "built":
        return f"the CUDA extension ganfast._C was built but does not import ({import_error}); {REINSTALL}"
    return f"the CUDA extension ganfast._C is not installed ({import_error}); {FIX}"


def _load() -> Tuple[Optional[ModuleType], Availability]:
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                try:
                    module = importlib.import_module("ganfast._C")
                except ImportError as err:
                    _loaded = (None, Availability(False, _missing_reason(err)))
                else:
                    problem = _driver_problem(module)
                    _loaded = (None, Availability(False, problem)) if problem else (module, Availability(True, ""))
    return _loaded


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _driver_problem(module: ModuleType) -> str:
    """Why a built extension still cannot run on this machine's driver, or "".

    The extension carries its CUDA runtime statically, and a runtime of a
    newer major version than the driver's fails every call ("CUDA driver
    version is insufficient").  Asking the versions creates no CUDA context.
    """
    try:
        driver, runtime = int(module.driver_version()), int(module.runtime_version())
    except Exception:  # noqa: BLE001 - a query that fails says nothing about usability
        return ""
    if driver and driver // 1000 < runtime // 1000:
        return (
            f"ganfast._C was built with CUDA {_cuda_version(runtime)}, but this machine's NVIDIA driver supports "
            f"CUDA {_cuda_version(driver)} at most; update the driver, or install a CUDA "
            f"{driver // 1000}.x toolkit and {REINSTALL}"
        )
    return ""


def status() -> Availability:
    """Whether ``ganfast._C`` imports (and its CUDA runtime suits the driver); if not, why and how to fix it.

    Says nothing about devices: with the extension built, a machine without
    a driver or GPU is :mod:`ganfast._backend`'s concern.  The import is
    attempted once per process.
    """
    return _load()[1]


def extension() -> ModuleType:
    """The ``ganfast._C`` module, or :class:`~ganfast._errors.BackendUnavailable` saying why not."""
    module, avail = _load()
    if module is None:
        raise BackendUnavailable(f"ganfast backend 'cuda' is unavailable: {avail.reason}")
    return module


def launch_args(t: Any) -> Tuple[int, int]:
    """``(device index, current stream handle)`` for launching on CUDA tensor ``t``'s device.

    The handle is what ``_C`` takes as ``stream`` (0 is the legacy default
    stream), so the kernels queue behind torch's work on that stream.
    """
    import torch

    if not isinstance(t, torch.Tensor) or t.device.type != "cuda":
        where = t.device if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"the cuda backend takes CUDA tensors; got {where}")
    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    return index, int(torch.cuda.current_stream(index).cuda_stream)
