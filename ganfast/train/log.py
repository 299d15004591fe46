"""Training metrics: one row per logged step in a CSV or JSON-lines file, plus a loss-curve PNG.

The file is flushed after every row, so a run killed at any moment keeps
everything it logged.  Resuming from a checkpoint at step ``s`` drops the
rows after ``s`` (they belong to the lost stretch of the run, which will be
trained and logged again) instead of leaving two interleaved histories.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .checkpoint import write_atomically
from .grid import _pillow, _save_png

__all__ = ["MetricsLogger", "plot_losses", "read_metrics"]

_FORMATS = (".csv", ".jsonl")
_tensorboard_warned = False


def _format_of(path: str) -> str:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in _FORMATS:
        raise ValueError(f"metrics file {path} must end with .csv or .jsonl, not {ext or 'no extension'!r}")
    return ext


def _number(key: str, value: Any):
    """A metric as a plain int or float (0-d tensors and numpy scalars included)."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__} {value!r}")
    try:
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, (bool, int)):
            return int(value)
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}") from None


def _csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


def _cell(value) -> str:
    # repr keeps every digit of a float (str() did not before Python 3.2 and
    # numpy's does not); nan and inf come out as 'nan' and 'inf'.
    return repr(value) if isinstance(value, float) else str(value)


# -- reading -----------------------------------------------------------------------------------


def _complete_lines(text: str) -> List[str]:
    """Lines of ``text``, without a last line the writer never finished (no newline: killed mid-write)."""
    lines = text.split("\n")
    lines.pop()  # either '' after the final newline, or the unfinished line
    return [ln for ln in lines if ln.strip()]


def _read_csv(path: str, text: str) -> Tuple[List[str], List[Dict[str, Any]]]:
    lines = _complete_lines(text)
    if not lines:
        return [], []
    reader = csv.reader(lines)
    header = next(reader)
    rows = []
    for lineno, cells in enumerate(reader, start=2):
        row: Dict[str, Any] = {}
        for key, cell in zip(header, cells):
            if cell == "":
                continue  # a metric this row did not log
            try:
                row[key] = int(cell) if key == "step" else float(cell)
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: {key}={cell!r} is not a number") from None
        if "step" not in row:
            raise ValueError(f"{path}, line {lineno}: the row has no step")
        rows.append(row)
    return header, rows


def _read_jsonl(path: str, text: str) -> List[Dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(_complete_lines(text), start=1):
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {lineno}: not JSON ({e})") from None
        if not isinstance(raw, dict) or "step" not in raw:
            raise ValueError(f"{path}, line {lineno}: expected an object with a step")
        row = {"step": int(raw["step"])}
        for key, value in raw.items():
            if key != "step":
                row[key] = float("nan") if value is None else float(value)
        rows.append(row)
    return rows


def read_metrics(path: str) -> List[Dict[str, Any]]:
    """Rows of a metrics file (either format): ``step`` as int, every other value as float.

    A metric a row did not log is absent from that row's dict.  A final line
    cut short by a killed run is ignored.
    """
    ext = _format_of(path)
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if ext == ".csv":
        return _read_csv(path, text)[1]
    return _read_jsonl(path, text)


# -- writing -----------------------------------------------------------------------------------


class MetricsLogger:
    """Append ``{"step": step, **metrics}`` rows to a ``.csv`` or ``.jsonl`` file.

    Without ``resume_step`` an existing file is replaced.  With it, rows
    after ``resume_step`` are dropped (atomically) and logging appends.

    A CSV's header comes from the first row; a row with new keys rewrites
    the file with the widened header, earlier rows getting empty cells.
    JSON lines hold non-finite values as ``NaN`` / ``Infinity`` (Python's
    and pandas' reading of JSON accepts them).

    ``tensorboard_dir`` also sends every metric to TensorBoard when
    ``torch.utils.tensorboard`` can be imported; when it cannot, a warning
    is given once and the file logging goes on.
    """

    def __init__(self, path: str, *, resume_step: Optional[int] = None, tensorboard_dir: Optional[str] = None) -> None:
        self.path = os.fspath(path)
        self._ext = _format_of(self.path)
        self._fieldnames: List[str] = []
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        if resume_step is not None and os.path.exists(self.path):
            self._truncate_after(int(resume_step))
            self._file = open(self.path, "a", encoding="utf-8", newline="")
        else:
            self._file = open(self.path, "w", encoding="utf-8", newline="")
        self._writer = self._open_tensorboard(tensorboard_dir, resume_step)

    def _truncate_after(self, step: int) -> None:
        with open(self.path, encoding="utf-8", newline="") as f:
            text = f.read()
        if self._ext == ".csv":
            header, rows = _read_csv(self.path, text)
            self._fieldnames = list(header)
        else:
            rows = _read_jsonl(self.path, text)
        kept = [r for r in rows if r["step"] <= step]
        # Rewritten even when nothing is dropped: it also removes a half
        # line left by a kill, which appending after would corrupt.
        self._rewrite(kept)

    def _render(self, rows: Iterable[Dict[str, Any]]) -> str:
        if self._ext == ".jsonl":
            return "".join(json.dumps(row) + "\n" for row in rows)
        if not self._fieldnames:
            return ""
        lines = [_csv_line(self._fieldnames)]
        lines += [_csv_line([_cell(row[k]) if k in row else "" for k in self._fieldnames]) for row in rows]
        return "".join(lines)

    def _rewrite(self, rows: List[Dict[str, Any]]) -> None:
        content = self._render(rows)

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(content)

        write_atomically(self.path, write)

    def _open_tensorboard(self, directory: Optional[str], resume_step: Optional[int]):
        global _tensorboard_warned
        if directory is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as e:  # ImportError, or a broken protobuf/tensorboard install
            if not _tensorboard_warned:
                _tensorboard_warned = True
                warnings.warn(
                    f"TensorBoard logging is off: torch.utils.tensorboard does not import ({e}); "
                    "metrics still go to the metrics file. pip install tensorboard to enable it.",
                    stacklevel=3,
                )
            return None
        # purge_step hides events a previous attempt logged after the resume point.
        purge = None if resume_step is None else int(resume_step) + 1
        return SummaryWriter(log_dir=os.fspath(directory), purge_step=purge)

    def log(self, step: int, metrics: Dict[str, Any]) -> None:
        """Write one row and flush it."""
        if self._file is None:
            raise ValueError(f"MetricsLogger for {self.path} is closed")
        if "step" in metrics:
            raise ValueError("'step' is the row key; pass it as the step argument, not as a metric")
        row: Dict[str, Any] = {"step": int(step)}
        for key, value in metrics.items():
            row[str(key)] = _number(str(key), value)
        if self._ext == ".csv":
            new = [k for k in row if k not in self._fieldnames]
            if new:
                self._widen(new, row)
            else:
                self._file.write(_csv_line([_cell(row[k]) if k in row else "" for k in self._fieldnames]))
        else:
            self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in row.items():
                if key != "step":
                    self._writer.add_scalar(key, value, global_step=row["step"])
            self._writer.flush()

    def _widen(self, new_keys: List[str], row: Dict[str, Any]) -> None:
        self._file.flush()
        with open(self.path, encoding="utf-8", newline="") as f:
            _, rows = _read_csv(self.path, f.read())
        self._file.close()
        self._fieldnames += new_keys
        try:
            self._rewrite(rows + [row])
        except BaseException:
            # The file still has its old header (the rewrite is atomic): keep
            # logging to it rather than losing every later row too.
            del self._fieldnames[-len(new_keys) :]
            raise
        finally:
            self._file = open(self.path, "a", encoding="utf-8", newline="")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


# -- loss curves -------------------------------------------------------------------------------

# Name parts that mark a column as bookkeeping (rates, clocks, schedules,
# evaluation scores on another scale), not a loss to plot.
_NOT_LOSS = {
    "time", "sec", "secs", "seconds", "s", "ms", "per", "fps", "throughput", "epoch", "kimg", "lr",
    "mem", "memory", "gpu", "cpu", "fid", "kid", "is", "inception",
}  # fmt: skip
_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def _default_keys(rows: Sequence[Dict[str, Any]]) -> List[str]:
    keys: List[str] = []
    for row in rows:
        for key in row:
            if key != "step" and key not in keys:
                parts = set(re.split(r"[^a-z0-9]+", key.lower()))
                if not parts & _NOT_LOSS:
                    keys.append(key)
    return keys


def _smoothed(values: List[float], weight: float) -> List[float]:
    """TensorBoard-style debiased exponential smoothing; non-finite points stay gaps and are skipped."""
    out, acc, count = [], 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(float("nan"))
            continue
        acc = acc * weight + (1.0 - weight) * v
        count += 1
        # Dividing by 1 - w^n removes the pull towards the zero start.
        out.append(acc / (1.0 - weight**count))
    return out


def _nice_ticks(lo: float, hi: float, target: int = 5) -> List[float]:
    span = hi - lo
    raw = span / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t = first + len(ticks) * step
    return ticks


def _tick_label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.2g}"
    return f"{value:.6g}"


def _finite_range(values: Iterable[float]) -> Optional[Tuple[float, float]]:
    finite = [v for v in values if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else None


def plot_losses(
    metrics_path: str,
    png_path: str,
    keys: Optional[Sequence[str]] = None,
    smooth: float = 0.9,
    size: Tuple[int, int] = (800, 480),
) -> None:
    """Draw the metrics file's loss curves into a PNG (Pillow only).

    ``keys`` picks the columns; by default every column except ``step`` and
    bookkeeping ones (times, rates such as ``images_per_s``, learning rates,
    FID/KID/IS).  ``smooth`` in [0, 1) is the exponential smoothing weight of
    the drawn line, the raw series shown faintly behind it; 0 draws the raw
    series only.  Missing and non-finite values are gaps.  The PNG is
    written atomically, so a viewer never sees half an image.
    """
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must lie in [0, 1), got {smooth}")
    width, height = int(size[0]), int(size[1])
    if width < 200 or height < 150:
        raise ValueError(f"size must be at least (200, 150), got {size}")
    Image, ImageDraw, ImageFont = _pillow()
    rows = sorted(read_metrics(metrics_path), key=lambda r: r["step"])
    if keys is None:
        keys = _default_keys(rows)
    else:
        keys = list(keys)
        present = {k for row in rows for k in row}
        missing = [k for k in keys if k not in present]
        if missing:
            raise ValueError(f"{metrics_path} has no column {missing}; it has {sorted(present - {'step'})}")

    steps = [float(r["step"]) for r in rows]
    series = {k: [r.get(k, float("nan")) for r in rows] for k in keys}
    lines = {k: _smoothed(v, smooth) if smooth > 0 else v for k, v in series.items()}

    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 64, width - 16, 16, height - 40

    y_range = _finite_range(v for vals in series.values() for v in vals)
    x_range = _finite_range(s for s, *vals in zip(steps, *series.values()) if any(map(math.isfinite, vals)))
    if y_range is None or x_range is None:
        draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
        draw.text((left + 10, top + 10), "no data yet", fill=(0, 0, 0), font=font)
        _save_png(image, png_path)
        return

    def widen(lo: float, hi: float, margin: float) -> Tuple[float, float]:
        if hi == lo:  # a single point or a constant series: centre it
            pad = abs(lo) * 0.1 or 1.0
            return lo - pad, hi + pad
        pad = (hi - lo) * margin
        return lo - pad, hi + pad

    x0, x1 = widen(*x_range, 0.0)
    y0, y1 = widen(*y_range, 0.05)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    grid, ink = (225, 225, 225), (0, 0, 0)
    for t in _nice_ticks(y0, y1):
        y = py(t)
        draw.line([(left, y), (right, y)], fill=grid)
        label = _tick_label(t)
        w = draw.textbbox((0, 0), label, font=font)[2]
        draw.text((left - 6 - w, y - 5), label, fill=ink, font=font)
    for t in _nice_ticks(x0, x1):
        x = px(t)
        draw.line([(x, top), (x, bottom)], fill=grid)
        label = _tick_label(t)
        w = draw.textbbox((0, 0), label, font=font)[2]
        draw.text((x - w / 2, bottom + 6), label, fill=ink, font=font)
    draw.rectangle([left, top, right, bottom], outline=ink)
    w = draw.textbbox((0, 0), "step", font=font)[2]
    draw.text(((left + right - w) / 2, bottom + 22), "step", fill=ink, font=font)

    def polyline(values: List[float], color, width_px: int) -> None:
        run: List[Tuple[float, float]] = []
        for s, v in zip(steps + [math.nan], values + [math.nan]):
            if math.isfinite(s) and math.isfinite(v):
                run.append((px(s), py(v)))
                continue
            if len(run) == 1:  # an isolated point would otherwise vanish
                x, y = run[0]
                r = width_px + 1
                draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
            elif run:
                draw.line(run, fill=color, width=width_px, joint="curve")
            run = []

    for i, key in enumerate(keys):
        color = _PALETTE[i % len(_PALETTE)]
        if smooth > 0:
            faint = tuple(int(255 - (255 - c) * 0.3) for c in color)
            polyline(series[key], faint, 1)
        polyline(lines[key], color, 2)

    # Legend in the top-right corner, on a white box so curves do not hide it.
    entries = [(key, _PALETTE[i % len(_PALETTE)]) for i, key in enumerate(keys)]
    text_w = max(draw.textbbox((0, 0), k, font=font)[2] for k, _ in entries)
    box_w, line_h = text_w + 36, 14
    bx1, by0 = right - 6, top + 6
    bx0, by1 = bx1 - box_w, by0 + line_h * len(entries) + 6
    draw.rectangle([bx0, by0, bx1, by1], fill=(255, 255, 255), outline=(160, 160, 160))
    for j, (key, color) in enumerate(entries):
        y = by0 + 4 + j * line_h + 5
        draw.line([(bx0 + 6, y), (bx0 + 24, y)], fill=color, width=3)
        draw.text((bx0 + 30, y - 6), key, fill=ink, font=font)
    _save_png(image, png_path)
