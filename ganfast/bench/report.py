"""What is written beside every number: device, versions, commit, date; the table; the JSON."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from .case import SHORT
from .runner import Row

CPU_WARNING = (
    "CPU TIMINGS: these numbers are measured on the CPU and say NOTHING about GPU speed. "
    "They say what each provider costs on this CPU (timed interleaved, so load slows all alike); "
    "run `ganfast bench` on a CUDA device for GPU numbers."
)


def cpu_banner() -> str:
    width = 78
    lines = [
        "CPU TIMINGS -- THEY SAY NOTHING ABOUT GPU SPEED",
        "Every number below was measured on the CPU (no CUDA device was used):",
        "what each provider costs on this CPU, timed interleaved. Quote them as",
        "CPU numbers only; run `ganfast bench` on a CUDA device for GPU speed.",
    ]
    bar = "#" * width
    body = [f"##  {line:<{width - 8}}  ##" for line in lines]
    return "\n".join([bar, *body, bar])


def _run(cmd: Sequence[str], cwd: Optional[str] = None, timeout: float = 10.0) -> Optional[str]:
    try:
        out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip()


def git_commit() -> Optional[str]:
    """The commit of the checkout ganfast is imported from, ``+dirty`` if it has changes."""
    root = str(Path(__file__).resolve().parents[2])
    if shutil.which("git") is None:
        return None
    sha = _run(["git", "rev-parse", "HEAD"], cwd=root)
    if not sha:
        return None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return sha + ("+dirty" if dirty else "")


def triton_version() -> Optional[str]:
    try:
        import triton
    except Exception:
        return None
    return getattr(triton, "__version__", "unknown")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> Dict[str, Any]:
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        info = {
            "type": "cuda",
            "index": idx,
            "name": p.name,
            "capability": f"{p.major}.{p.minor}",
            "sm_count": p.multi_processor_count,
            "memory_gib": round(p.total_memory / 2**30, 1),
        }
        # Read-only query of the clocks the card runs at (never set them).
        q = _run(["nvidia-smi", f"--id={idx}", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,clocks.mem,"
                  "temperature.gpu,power.draw,power.limit", "--format=csv,noheader"])
        if q:
            info["nvidia_smi"] = "driver, sm clock, max sm clock, mem clock, temp, power, power limit: " + q
        return info
    return {"type": "cpu", "name": cpu_name(), "threads": torch.get_num_threads(), "cores": os.cpu_count()}


def collect_meta(device: torch.device, argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    from .._version import __version__

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "triton": triton_version(),
        "triton_interpret": os.environ.get("TRITON_INTERPRET"),
        "ganfast": __version__,
        "commit": git_commit(),
        "command": " ".join(["ganfast", *argv]) if argv is not None else None,
    }


def header_lines(meta: Dict[str, Any], peaks: Any, timing: str) -> List[str]:
    d = meta["device"]
    if d["type"] == "cuda":
        dev = f"{d['name']} (cuda:{d['index']}, sm_{d['capability'].replace('.', '')}, {d['sm_count']} SMs, {d['memory_gib']} GiB)"
    else:
        dev = f"CPU: {d['name']} ({d['threads']} torch threads, {d['cores']} cores)"
    lines = [
        f"ganfast bench  {meta['date']}  commit {meta['commit'] or 'unknown (not a git checkout)'}",
        f"device: {dev}",
        f"python {meta['python']} | torch {meta['torch']} (CUDA runtime {meta['cuda_runtime'] or 'none'}) | "
        f"triton {meta['triton'] or 'not installed'} | ganfast {meta['ganfast']}"
        + (f" | TRITON_INTERPRET={meta['triton_interpret']}" if meta.get("triton_interpret") else ""),
    ]
    if "nvidia_smi" in d:
        lines.append(f"nvidia-smi: {d['nvidia_smi']}")
    if peaks is not None:
        lines.append(f"peak (measured now): {peaks.describe()}")
    lines.append(f"timing: {timing}")
    if meta.get("command"):
        lines.append(f"command: {meta['command']}")
    return lines


def _fmt_ms(r: Row) -> str:
    if r.median_ms is None:
        return "-"
    return f"{r.median_ms:.4f} ({r.p20_ms:.4f}-{r.p80_ms:.4f})"


def _sig(x: Optional[float], suffix: str = "") -> str:
    """Three significant figures: 1,234 / 12.3 / 0.0123 / 2.17e-05."""
    if x is None:
        return "-"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.2e}{suffix}"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}{suffix}"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}{suffix}"


# "rel err": ||out - ref|| / ||ref|| against the float64 eager reference (outputs and gradients, the worst).
COLUMNS = ("case", "shape", "dtype", "pass", "provider", "median ms (p20-p80)", "vs eager", "vs compile",
           "GB/s", "TFLOP/s", "%peak BW", "%peak FLOP", "rel err", "note")


def table_rows(rows: Sequence[Row]) -> List[List[str]]:
    out = []
    for r in rows:
        note = "" if r.status == "ok" else f"{r.status}: {r.reason}"
        out.append([
            f"{r.op} {r.case}",
            "x".join(map(str, r.shape)),
            SHORT.get(r.dtype, r.dtype),
            r.pass_,
            r.provider,
            _fmt_ms(r),
            _sig(r.speedup_vs_eager, "x"),
            _sig(r.speedup_vs_compile, "x"),
            _sig(r.gbps),
            _sig(r.tflops),
            _sig(r.pct_peak_bw, "%"),
            _sig(r.pct_peak_flops, "%"),
            _sig(r.rel_err),
            note,
        ])
    return out


def format_table(rows: Sequence[Row], max_note: int = 90) -> str:
    body = table_rows(rows)
    for cells in body:
        if len(cells[-1]) > max_note:
            cells[-1] = cells[-1][: max_note - 3] + "..."
    widths = [max([len(c)] + [len(cells[i]) for cells in body]) for i, c in enumerate(COLUMNS)]
    right = {5, 6, 7, 8, 9, 10, 11, 12}

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), sep, *(line(c) for c in body)])


def write_json(path: str, meta: Dict[str, Any], peaks: Any, rows: Sequence[Row], warnings: Sequence[str],
               unavailable: Dict[str, Dict[str, str]], timing: str, steps: Sequence[Dict[str, Any]] = ()) -> None:
    doc = {
        "schema": 1,
        "meta": meta,
        "timing": timing,
        "peaks": peaks.as_dict() if peaks is not None else None,
        "warnings": list(warnings),
        "not_timed": unavailable,
        "rows": [r.as_dict() for r in rows],
        "steps": list(steps),
    }
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
