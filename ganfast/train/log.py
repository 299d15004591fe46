"""Training metrics: one row per logged step in a CSV or JSON-lines file, plus a loss-curve PNG (matplotlib).

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
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .checkpoint import write_atomically
from .evaluate import BEST_DIRECTION  # the evaluator's columns: fid, kid, modes_covered, high_quality

__all__ = ["MetricsLogger", "Panel", "plot_layout", "plot_losses", "read_metrics"]

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

# Name parts that mark a column as bookkeeping (rates, clocks, counters,
# schedules, memory), not a quantity of the training dynamics: left out of
# the plot unless asked for by name.  images_per_s is one of them.
_BOOKKEEPING = {
    "time", "sec", "secs", "seconds", "s", "ms", "per", "fps", "throughput", "epoch", "kimg", "nimg", "lr",
    "mem", "memory", "gpu", "cpu", "steps",
}  # fmt: skip
# Evaluation scores: the evaluator's columns, plus name parts of scores a
# user may log themselves.  Each gets its own panel (their scales differ).
_EVALUATION_PARTS = {"fid", "kid", "is", "inception"}
# Regularisers and auxiliary objectives (gradient penalties, InfoGAN's
# mutual information term, AC-GAN's class losses, feature matching).
_PENALTY_PARTS = {"gp", "r1", "r2", "penalty", "reg", "info", "class", "feature", "matching"}
# What D says about real and fake data (mean scores, their gap, accuracy).
_OUTPUT_PARTS = {"real", "fake", "distance", "acc"}
# A panel is log-scaled when its values are all positive and span more than this ratio (two decades).
_LOG_SPAN = 100.0


@dataclass(frozen=True)
class Panel:
    """One panel of the loss-curve figure.

    ``kind`` is ``"train"`` (one value per logged row: a faint raw line
    and a smoothed line) or ``"eval"`` (scores at the rows that have them:
    points joined by a line, not smoothed).  ``log``: the y axis is
    logarithmic.
    """

    title: str
    keys: Tuple[str, ...]
    kind: str
    log: bool


def _parts(key: str) -> set:
    return set(re.split(r"[^a-z0-9]+", key.lower()))


def _group(key: str) -> str:
    """The panel group of a column: evaluation, bookkeeping, penalties, outputs or losses."""
    parts = _parts(key)
    if key in BEST_DIRECTION or parts & _EVALUATION_PARTS:
        return "evaluation"
    if parts & _BOOKKEEPING:
        return "bookkeeping"
    if parts & _PENALTY_PARTS:
        return "penalties"
    if "loss" not in parts and parts & _OUTPUT_PARTS:
        return "outputs"
    return "losses"


def _log_scale(values: Iterable[float]) -> bool:
    """Log when every finite value is positive and they span more than two decades; linear otherwise."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0:
        return False  # crossing or touching zero (a Wasserstein estimate, a count of 0): linear
    return max(finite) / min(finite) > _LOG_SPAN


_TRAIN_GROUPS = (
    ("losses", "losses"),
    ("outputs", "D outputs"),
    ("penalties", "penalties and auxiliary terms"),
)


def plot_layout(rows: Sequence[Dict[str, Any]], keys: Optional[Sequence[str]] = None) -> List[Panel]:
    """Decide the panels of :func:`plot_losses` from the metrics rows (no drawing).

    Columns are grouped by name: the GAN losses (``d_loss``, ``g_loss``, and
    any column no rule below claims) on one panel; D's outputs (``d_real``,
    ``d_fake``, ``w_distance``, accuracies) on a second; penalties and
    auxiliary terms (``gp``, ``r1``, ``r2``, ``info``, ``d_class``, feature
    matching) on a third; then one panel per evaluation score (``fid``,
    ``kid``, ``modes_covered``, ``high_quality``).  Bookkeeping columns
    (``images_per_s``, times, learning rates) are left out unless ``keys``
    names them; each then gets a panel of its own.  A panel's y axis is
    logarithmic when all its values are positive and span more than two
    decades.  Panels without a finite value are dropped; no rows give no
    panels.
    """
    present: List[str] = []
    for row in rows:
        present.extend(k for k in row if k != "step" and k not in present)
    chosen = present if keys is None else [k for k in keys if k in present]
    groups: Dict[str, List[str]] = {}
    for key in chosen:
        groups.setdefault(_group(key), []).append(key)

    def values(names: Sequence[str]) -> List[float]:
        return [row[k] for row in rows for k in names if k in row]

    panels = []
    for group, title in _TRAIN_GROUPS:
        names = groups.get(group, [])
        if any(math.isfinite(v) for v in values(names)):
            panels.append(Panel(title, tuple(names), "train", _log_scale(values(names))))
    if keys is not None:
        for key in groups.get("bookkeeping", []):
            if any(math.isfinite(v) for v in values([key])):
                panels.append(Panel(key, (key,), "train", _log_scale(values([key]))))
    for key in groups.get("evaluation", []):
        if any(math.isfinite(v) for v in values([key])):
            panels.append(Panel(key, (key,), "eval", _log_scale(values([key]))))
    return panels


def _smoothed(values: Sequence[float], weight: float) -> List[float]:
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


def _isolated(values: Sequence[float]) -> List[int]:
    """Indices of finite values whose neighbours are not: a line through them draws nothing."""
    n = len(values)
    return [i for i, v in enumerate(values) if math.isfinite(v)
            and (i == 0 or not math.isfinite(values[i - 1]))
            and (i == n - 1 or not math.isfinite(values[i + 1]))]


def _grid_shape(n: int) -> Tuple[int, int]:
    cols = {1: 1, 2: 2, 3: 3, 4: 2}.get(n, 3)
    return -(-n // cols), cols


def plot_losses(
    metrics_path: str,
    png_path: str,
    keys: Optional[Sequence[str]] = None,
    smooth: Optional[float] = None,
    size: Optional[Tuple[int, int]] = None,
) -> None:
    """Draw the metrics file's curves into a PNG with matplotlib (panels chosen by :func:`plot_layout`).

    x is the training step, shared by every panel.  Training quantities are
    drawn raw (faint) and smoothed with TensorBoard's debiased exponential
    moving average of weight ``smooth`` in [0, 1) (0: the raw series only,
    in full colour; None: ``1 - 20 / rows``, a window of about a twentieth
    of the run, so a short log is not smeared over a third of its length),
    taken over the logarithms on a log-scaled panel; a
    non-finite value is a gap.  Evaluation
    scores are points at the steps that have them, joined by a line, with
    the last value in the panel's title.  ``keys`` picks the columns
    (default: every column but bookkeeping ones such as ``images_per_s``).
    ``size`` is the image's (width, height) in pixels; by default 800x480
    for one panel, 440x300 per panel otherwise.  The PNG is written
    atomically, so a viewer never sees half an image.  Uses matplotlib's Agg
    canvas directly: the process's pyplot backend is left alone.
    """
    if smooth is not None and not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must lie in [0, 1) or be None, got {smooth}")
    rows = sorted(read_metrics(metrics_path), key=lambda r: r["step"])
    if smooth is None:
        smooth = max(0.0, 1.0 - 20.0 / max(len(rows), 1))
    if keys is not None:
        keys = list(keys)
        present = {k for row in rows for k in row}
        missing = [k for k in keys if k not in present]
        if missing:
            raise ValueError(f"{metrics_path} has no column {missing}; it has {sorted(present - {'step'})}")
    panels = plot_layout(rows, keys)
    nrows, ncols = _grid_shape(max(1, len(panels)))
    if size is None:
        size = (800, 480) if len(panels) <= 1 else (440 * ncols, 300 * nrows)
    width, height = int(size[0]), int(size[1])
    if width < 200 or height < 150:
        raise ValueError(f"size must be at least (200, 150), got {size}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)  # Agg for this figure only; pyplot's global backend is never touched
    if not panels:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("step")
    else:
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            ax.remove()
        for i, (ax, panel) in enumerate(zip(axes, panels)):
            _draw_panel(ax, panel, rows, smooth)
            # With a shared x axis, only the lowest panel of each column labels the steps.
            if i + ncols >= len(panels):
                ax.set_xlabel("step")
                ax.tick_params(labelbottom=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)

    write_atomically(png_path, write)


def _draw_panel(ax, panel: Panel, rows: Sequence[Dict[str, Any]], smooth: float) -> None:
    from matplotlib.ticker import MaxNLocator

    title = panel.title
    for j, key in enumerate(panel.keys):
        colour = f"C{j % 10}"
        logged = [r for r in rows if key in r]  # a row that did not log the key is skipped, not a gap
        steps = [r["step"] for r in logged]
        raw = [r[key] for r in logged]
        if panel.kind == "eval":
            pts = [(s, v) for s, v in zip(steps, raw) if math.isfinite(v)]
            ax.plot([s for s, _ in pts], [v for _, v in pts], "o-", color=colour, ms=4, lw=1.2, label=key)
            title = f"{key}: {pts[-1][1]:.4g} at step {pts[-1][0]}"
            if not panel.log and min(v for _, v in pts) >= 0:
                # Scores and counts start at 0: show it (an all-zero series would otherwise centre on 0).
                top = max(v for _, v in pts) or 1.0
                ax.set_ylim(-0.05 * top, 1.08 * top)
            if all(float(v).is_integer() for _, v in pts):  # a count such as modes_covered
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            continue
        if smooth > 0:
            ax.plot(steps, raw, color=colour, alpha=0.25, lw=0.8)
            if panel.log:
                # On a log axis, average the logarithms: a linear average of a series falling by
                # decades is held up by its oldest values and floats far above the raw curve.
                line = [10.0**v for v in _smoothed([math.log10(v) if v > 0 else math.nan for v in raw], smooth)]
            else:
                line = _smoothed(raw, smooth)
        else:
            line = raw
        ax.plot(steps, line, color=colour, lw=1.5, label=key)
        lone = _isolated(raw)
        if lone:  # a point between gaps draws no line segment: mark it
            ax.plot([steps[k] for k in lone], [line[k] for k in lone], "o", color=colour, ms=3)
    if panel.log:
        ax.set_yscale("log")
    elif ax.get_ylim()[0] < 0 < ax.get_ylim()[1]:
        ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    ax.set_title(title, fontsize="medium")
    ax.grid(True, color="0.9", lw=0.6)
    if panel.kind == "train" and panel.keys != (panel.title,):
        ax.legend(loc="best", fontsize="small", framealpha=0.8)
