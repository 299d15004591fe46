"""The training loop: one object that turns a model and a dataset into a trained GAN.

:class:`Trainer` wraps a :class:`ganfast.models.GANModel`'s iteration with
everything around it: device placement, mixed precision (bf16 autocast, or
fp16 autocast with one gradient scaler per optimiser), an EMA of the
generator used for every sample, a progress bar, metrics to CSV/JSON-lines
(+ a loss-curve PNG, + TensorBoard when installed), sample grids from a fixed
latent batch, atomic checkpoints, exact resume, a clean stop on Ctrl-C, and
multi-process training under ``torchrun``.

Exact resume: a checkpoint is taken between iterations and holds everything
that decides the next iteration: parameters and buffers, optimiser and
scaler states, the EMA, the historical-averaging state, every rank's RNG
states and the data position.  Nothing outside the iteration draws from the
global RNG (sample grids use their own generator), so a resumed run
reproduces the uninterrupted run's losses bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

from .. import _backend
from ..models import GANModel, StepContext, build
from . import distributed as D
from .checkpoint import CheckpointManager, load_checkpoint, rng_state, set_rng_state
from .ema import EMA
from .loader import ShardedBatches

CHECKPOINT_FORMAT = "ganfast-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Everything ``ganfast train`` takes; stored in every checkpoint."""

    model: str = "dcgan"
    data: str = "digits"
    steps: Optional[int] = None            # generator steps; None: the model's recommendation for the data
    batch_size: Optional[int] = None       # per process; None: 64 for images, 256 for points
    out: Optional[str] = None              # None: runs/<model>-<data>
    image_size: Optional[int] = None       # images are resized to this (digits default: 32)
    num_samples: Optional[int] = None      # points drawn for the 2-D mixtures
    amp: Optional[str] = None              # None | "bf16" | "fp16"
    backend: str = "auto"
    device: Optional[str] = None           # None: cuda when available, else cpu
    seed: int = 0
    ema_decay: Optional[float] = None      # None: the model's recommendation (0.999); 0 disables the EMA
    sample_every: Optional[int] = None     # None: 10 grids over the run
    checkpoint_every: Optional[int] = None # None: 4 checkpoints over the run (and one at the end)
    log_every: int = 10
    keep: int = 3
    grid_size: Optional[int] = None        # samples in the grid; None: 64 (100 for 10 classes)
    metrics_format: str = "csv"            # "csv" | "jsonl"
    tensorboard: bool = False
    num_workers: int = 0
    progress: bool = True
    threads: Optional[int] = None          # torch CPU threads; None: leave torch's default
    lr_schedule: Optional[str] = None      # None: the model's recommendation; "constant" | "linear" (to 0 at the end)
    model_options: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; valid: {sorted(names)}")
        return cls(**d)

    def validate(self) -> None:
        def pos_int(name: str, v: Any, allow_none: bool = True) -> None:
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        for name in ("steps", "batch_size", "image_size", "num_samples", "sample_every", "checkpoint_every",
                     "grid_size", "threads"):
            pos_int(name, getattr(self, name))
        pos_int("log_every", self.log_every, allow_none=False)
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 0:
            raise ValueError(f"keep must be an int >= 0 (0 keeps every checkpoint); got {self.keep!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16'; got {self.amp!r}")
        if self.ema_decay is not None and not (isinstance(self.ema_decay, (int, float)) and 0 <= self.ema_decay < 1):
            raise ValueError(f"ema_decay must be in [0, 1) (0 disables the EMA); got {self.ema_decay!r}")
        if self.lr_schedule not in (None, "constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear'; got {self.lr_schedule!r}")
        if self.metrics_format not in ("csv", "jsonl"):
            raise ValueError(f"metrics_format must be 'csv' or 'jsonl'; got {self.metrics_format!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0; got {self.seed!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0; got {self.num_workers!r}")
        _backend._check_name(self.backend)


def recommended(model: Any, kind: str) -> Dict[str, Any]:
    """What trains ``model`` (a GANModel class or instance) well on ``kind`` data in minutes on a CPU.

    ``{"steps", "batch_size", "lr_schedule", "options"}``: ``options`` are
    model options applied unless the user set them (see each method's
    ``recommended`` table in :mod:`ganfast.models.variants`).
    """
    cls = model if isinstance(model, type) else type(model)
    table = getattr(cls, "recommended", {}) or {}
    rec = {"steps": 4000 if kind == "points" else 2000, "batch_size": 256 if kind == "points" else 64,
           "lr_schedule": "constant", "ema_decay": 0.999, "options": {}}
    rec.update(table.get(kind, {}))
    return rec


class _Context(StepContext):
    def __init__(self, device: torch.device, amp: Optional[str], scalers: Dict[str, Any]) -> None:
        self.device = device
        self.amp = amp
        self.scalers = scalers

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def scaler(self, name: str):
        return self.scalers.get(name)

    def reduce_gradients(self, params) -> None:
        D.all_reduce_gradients(params)


class _StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a flag checked between iterations.

    Stopping mid-iteration would leave D updated and G not, and the RNG
    advanced: a checkpoint of that state could not resume exactly.  The
    second Ctrl-C stops at once (the default handler is back by then).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopRequest":
        import threading
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
        print("\nganfast: stopping after this iteration and saving a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Train a GAN.

    Args:
        config: a :class:`TrainConfig` (or a dict of its fields).
        model: a built model; default: ``ganfast.models.build(config.model, dataset=..., **config.model_options)``.
        dataset: a :class:`ganfast.data.GANDataset`; default: ``ganfast.data.load(config.data, ...)``.

    ``fit()`` trains to ``config.steps`` generator steps (resuming first when
    asked) and returns a summary dict.  Files in ``config.out``:
    ``checkpoints/`` (atomic, the newest ``keep``), ``metrics.csv`` (or
    ``.jsonl``), ``losses.png``, ``samples/step-XXXXXXXX.png`` (images) or
    ``samples/step-XXXXXXXX.png`` scatter plots (points), ``config.json``.
    """

    def __init__(self, config: Any = None, *, model: Optional[GANModel] = None, dataset: Any = None) -> None:
        if config is None:
            config = TrainConfig()
        elif isinstance(config, dict):
            config = TrainConfig.from_dict(config)
        elif not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig or a dict; got {type(config).__name__}")
        config.validate()
        self.config = cfg = config
        self.dist = D.env_info()
        if cfg.device is None:
            device = torch.device("cuda", self.dist.local_rank) if torch.cuda.is_available() else torch.device("cpu")
        else:
            device = torch.device(cfg.device)
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", self.dist.local_rank)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
        self.device = device
        if cfg.amp == "fp16" and device.type == "cpu":
            warnings.warn("fp16 autocast on the CPU is slow and rarely useful; bf16 is the CPU's half type")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if dataset is None:
            from .. import data as gd
            kw: Dict[str, Any] = {"seed": cfg.seed}
            if cfg.image_size is not None:
                kw["image_size"] = cfg.image_size
            if cfg.num_samples is not None:
                kw["num_samples"] = cfg.num_samples
            dataset = gd.load(cfg.data, **kw)
        self.dataset = dataset
        if model is None:
            # initial weights are a function of the seed alone (and the same on every rank),
            # drawn without touching the caller's global RNG
            from ..models import REGISTRY
            if cfg.model not in REGISTRY:
                raise ValueError(f"unknown model {cfg.model!r}; choose one of {list(REGISTRY)}")
            options = {**recommended(REGISTRY[cfg.model], dataset.kind)["options"], **cfg.model_options}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = build(cfg.model, dataset=dataset, **options)
        else:
            if tuple(model.sample_shape) != tuple(dataset.sample_shape):
                raise ValueError(f"the model makes samples of shape {tuple(model.sample_shape)} but the dataset's"
                                 f" are {tuple(dataset.sample_shape)}")
            if model.conditional:
                dataset.require_labels(model.name)
        self.model = model
        rec = recommended(model, dataset.kind)
        self.steps = cfg.steps or rec["steps"]
        self.batch_size = cfg.batch_size or rec["batch_size"]
        self.lr_schedule = cfg.lr_schedule or rec["lr_schedule"]
        self.ema_decay = float(cfg.ema_decay if cfg.ema_decay is not None else rec["ema_decay"])
        self.out = cfg.out or os.path.join("runs", f"{model.name}-{_slug(cfg.data)}")
        self.sample_every = cfg.sample_every or max(1, self.steps // 10)
        self.checkpoint_every = cfg.checkpoint_every or max(1, self.steps // 4)
        self.step = 0
        self._setup_done = False
        self._resumed = False  # a checkpoint was loaded: the metrics file is continued, not replaced
        self.history: List[Dict[str, float]] = []  # the logged rows of this process's run

    # -- setup ---------------------------------------------------------------------------------

    def _setup(self) -> None:
        cfg = self.config
        self.dist = D.setup(self.device.type)
        torch.manual_seed(cfg.seed + self.dist.rank)
        model = self.model.to(self.device)
        D.broadcast_module(model)
        self.optimizers = model.make_optimizers()
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
        use_scaler = cfg.amp == "fp16"
        self.scalers = {k: torch.amp.GradScaler(self.device.type) for k in self.optimizers} if use_scaler else {}
        self.ema = EMA(model.generator, decay=self.ema_decay) if self.ema_decay > 0 else None
        self.batches = ShardedBatches(self.dataset, self.batch_size, rank=self.dist.rank,
                                      world_size=self.dist.world_size, seed=cfg.seed, device=self.device,
                                      num_workers=cfg.num_workers)
        self.ctx = _Context(self.device, cfg.amp, self.scalers)
        self.checkpoints = CheckpointManager(os.path.join(self.out, "checkpoints"), keep=cfg.keep or None)
        # the fixed latent batch of the sample grids: its own generator, so drawing it
        # never moves the training RNG
        g = torch.Generator()
        g.manual_seed(cfg.seed + 12345)
        n = self.grid_size()
        self.grid_z = model.sample_latent(n, generator=g).to(self.device)
        if model.generator_classes() > 0:
            self.grid_y = (torch.arange(n) % model.num_classes).to(self.device)
        else:
            self.grid_y = None
        self._setup_done = True

    def grid_size(self) -> int:
        if self.config.grid_size:
            return self.config.grid_size
        if self.model.kind == "points":
            return 2500
        k = self.model.num_classes if self.model.generator_classes() > 0 else 0
        return k * k if 8 <= k <= 12 else 64

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly (collective under torchrun: every rank calls it)."""
        rngs = D.gather_objects(rng_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "config": {"train": _jsonable(self.config.to_dict()), "model": {"name": self.model.name, **_jsonable(self.model.config)}},
            "model": self.model.state_dict(),
            "model_extra": self.model.extra_state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": rngs,
            "data": self.batches.state_dict(),
            "world_size": self.dist.world_size,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        check_checkpoint(state)
        saved = state["config"]["model"]
        if saved["name"] != self.model.name:
            raise ValueError(f"the checkpoint is of model {saved['name']!r}, this run trains {self.model.name!r}")
        self.model.load_state_dict(state["model"])
        self.model.load_extra_state_dict(state.get("model_extra") or {})
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:
            self.ema = EMA(self.model.generator, decay=self.ema_decay)
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.scalers.items():
            if k in state.get("scalers", {}):
                s.load_state_dict(state["scalers"][k])
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            warnings.warn(f"the checkpoint was written by {len(rngs)} process(es), this run has "
                          f"{self.dist.world_size}: random streams restart from the seed (the run continues,"
                          " but not bit for bit)")
            torch.manual_seed(self.config.seed + self.dist.rank + 7919 * int(state["step"]))
        self.batches.load_state_dict(state["data"])
        self.step = int(state["step"])
        self._resumed = True

    def save_checkpoint(self) -> Optional[str]:
        state = self.state_dict()  # collective: every rank
        path = None
        if self.dist.is_main:
            path = self.checkpoints.save(self.step, state)
        D.barrier()
        return path

    def resume(self, path: Optional[str] = None) -> bool:
        """Load ``path`` (default: the newest checkpoint in ``out``); False when there is none."""
        if not self._setup_done:
            self._setup()
        if path is None:
            path = self.checkpoints.latest()
            if path is None:
                return False
        state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state)
        return True

    # -- sampling --------------------------------------------------------------------------------

    def sample_generator(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model.generator

    @torch.no_grad()
    def sample(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        g = self.sample_generator()
        was = g.training
        g.eval()
        try:
            return self.model.generate(z, y, generator=g).float()
        finally:
            g.train(was)

    def write_samples(self) -> str:
        from .grid import save_image_grid, save_points_png
        x = self.sample(self.grid_z, self.grid_y).cpu()
        path = os.path.join(self.out, "samples", f"step-{self.step:08d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.model.kind == "image":
            nrow = self.model.num_classes if self.grid_y is not None and self.model.num_classes >= 8 else None
            save_image_grid(x[:, : 3] if x.shape[1] > 3 else x, path, nrow=nrow)
        elif x.shape[1] == 2:
            modes = getattr(self.dataset, "modes", None)
            save_points_png(x, path, reference=modes)
        else:
            return ""
        return path

    # -- the loop --------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> Dict[str, Any]:
        cfg = self.config
        with _backend.use_backend(cfg.backend):
            if not self._setup_done:
                self._setup()
            if resume:
                self.resume()
            resumed = self._resumed
            main = self.dist.is_main
            if main:
                os.makedirs(self.out, exist_ok=True)
                _write_json(os.path.join(self.out, "config.json"), {
                    "train": _jsonable(cfg.to_dict()), "model": {"name": self.model.name, **_jsonable(self.model.config)},
                    "resolved": {"steps": self.steps, "batch_size": self.batch_size, "lr_schedule": self.lr_schedule,
                                 "ema_decay": self.ema_decay, "device": str(self.device),
                                 "world_size": self.dist.world_size}})
            logger = None
            if main:
                from .log import MetricsLogger
                ext = "csv" if cfg.metrics_format == "csv" else "jsonl"
                tb = os.path.join(self.out, "tensorboard") if cfg.tensorboard else None
                logger = MetricsLogger(os.path.join(self.out, f"metrics.{ext}"),
                                       resume_step=self.step if resumed else None, tensorboard_dir=tb)
            bar = self._progress(main)
            stopped = False
            t_last, step_last = time.perf_counter(), self.step
            images_per_step = self.batch_size * self.model.n_critic * self.dist.world_size
            try:
                with _StopRequest() as stop:
                    while self.step < self.steps:
                        self.ctx.iteration = self.step
                        self._set_learning_rates()
                        self.model.train()
                        logs = self.model.train_step(self.batches, self.optimizers, self.ctx)
                        if self.ema is not None:
                            self.ema.update(self.model.generator)
                        self.step += 1
                        if self.step % cfg.log_every == 0 or self.step == self.steps:
                            vals = {k: float(v) for k, v in D.mean_over_ranks(logs).items()}
                            now = time.perf_counter()
                            vals["images_per_s"] = images_per_step * (self.step - step_last) / max(now - t_last, 1e-9)
                            t_last, step_last = now, self.step
                            _check_finite(vals, self.step)
                            self.history.append({"step": self.step, **vals})
                            if logger is not None:
                                logger.log(self.step, vals)
                            if bar is not None:
                                bar.set_postfix_str(_postfix(vals), refresh=False)
                        if bar is not None:
                            bar.update(1)
                        if main and (self.step % self.sample_every == 0 or self.step == self.steps):
                            self.write_samples()
                        if self.step % self.checkpoint_every == 0 and self.step < self.steps:
                            self.save_checkpoint()
                        if D.any_rank(stop.requested, self.device if self.device.type == "cuda" else "cpu"):
                            stopped = True
                            break
            finally:
                if bar is not None:
                    bar.close()
            D.check_in_sync(self.model)
            path = self.save_checkpoint()
            if logger is not None:
                logger.close()
                from .log import plot_losses
                try:
                    plot_losses(logger.path, os.path.join(self.out, "losses.png"))
                except Exception as err:  # a plot must never cost the run
                    warnings.warn(f"could not draw the loss curves: {err}")
            if stopped and main:
                print(f"ganfast: stopped at step {self.step}; checkpoint {path}; continue with --resume",
                      file=sys.stderr, flush=True)
            return {"step": self.step, "stopped": stopped, "checkpoint": path, "out": self.out,
                    "last": self.history[-1] if self.history else {}}

    def _set_learning_rates(self) -> None:
        """The schedule is a pure function of the step (nothing to checkpoint, exact on resume)."""
        if self.lr_schedule == "constant":
            return
        factor = 1.0 - self.step / self.steps  # "linear": from the initial rate down to 0 at the last step
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def _progress(self, main: bool):
        if not (main and self.config.progress):
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=self.steps, initial=self.step, desc=f"{self.model.name}", unit="step",
                    dynamic_ncols=True, mininterval=1.0, file=sys.stderr)


# -- helpers ---------------------------------------------------------------------------------------


def check_checkpoint(state: Any) -> None:
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not a ganfast training checkpoint (no 'format': 'ganfast-checkpoint' entry)")
    if int(state.get("version", 0)) > CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint version {state.get('version')} is newer than this ganfast reads"
                         f" ({CHECKPOINT_VERSION}); upgrade ganfast")


def model_from_checkpoint(state: Dict[str, Any], *, ema: bool = True) -> GANModel:
    """Rebuild the model a checkpoint was trained with; its generator is the EMA one when present."""
    check_checkpoint(state)
    cfg = dict(state["config"]["model"])
    name = cfg.pop("name")
    model = build(name, **cfg)
    model.load_state_dict(state["model"])
    if ema and state.get("ema") is not None:
        model.generator.load_state_dict(state["ema"]["module"])
    return model


def _check_finite(vals: Dict[str, float], step: int) -> None:
    bad = [k for k, v in vals.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"training diverged at step {step}: {', '.join(bad)} became non-finite; lower the learning rates,"
            " try --amp bf16 instead of fp16, or resume from an earlier checkpoint")


def _postfix(vals: Dict[str, float]) -> str:
    parts = []
    for k, v in vals.items():
        if k == "images_per_s":
            parts.append(f"{v:,.0f} img/s")
        elif k in ("d_loss", "g_loss", "gp", "w_distance", "info", "d_class"):
            parts.append(f"{k}={v:.3f}")
    return " ".join(parts)


def _slug(s: str) -> str:
    base = os.path.basename(os.path.normpath(s)) or "data"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base)


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, (int, float, str, bool)) or d is None:
        return d
    return str(d)


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
