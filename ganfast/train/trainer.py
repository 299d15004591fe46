"""The training loop: one object that turns a method and a dataset into a trained GAN.

:class:`Trainer` runs a :class:`ganfast.models.Method`'s phases
(:meth:`~ganfast.models.Method.train_step`) with everything around them:
device placement, mixed precision (bf16 autocast, or fp16 autocast with one
gradient scaler per optimiser), the method's schedules evaluated at every
step, EMA copies of the networks the method names (used for every sample),
a progress bar, metrics to CSV/JSON-lines (+ a loss-curve PNG, +
TensorBoard when installed), sample grids from fixed inputs, evaluation
(FID, KID, mode coverage) with a best checkpoint, atomic checkpoints, exact
resume, a clean stop on Ctrl-C, multi-process training under ``torchrun``,
and optionally ``torch.compile`` of the networks (:mod:`ganfast.train.compile`).

Exact resume: a checkpoint is taken between iterations and holds everything
that decides the next iteration: parameters and buffers, optimiser and
scaler states, the EMAs, the method's extra state, the schedules' values,
every rank's RNG states and the data position.  Nothing outside the iteration draws from the
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
from ..models import Method, StepContext, build
from ..models.schedules import Linear, evaluate
from . import distributed as D
from .checkpoint import (CheckpointManager, load_checkpoint, load_newest_intact, remove_stale_temporaries, rng_state,
                         save_checkpoint, set_rng_state)
from .compile import CompilePlan, compile_networks, eager, explained, normalize_mode, plan, step_begin
from .ema import EMA
from .loader import ShardedBatches

CHECKPOINT_FORMAT = "ganfast-checkpoint"
#: 2: named networks, optimisers and EMAs (``G``, ``D``, ...), schedule values.  1: the first trainer's
#: ``generator``/``discriminator`` modules and ``g``/``d`` optimisers (upgraded on load, see ``upgrade_checkpoint``)
CHECKPOINT_VERSION = 2


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
    split: Optional[str] = None            # dataset split (fashion-mnist: train | test; folders with train/ val/ test/)
    data_layout: Optional[str] = None      # None: the method's, else the dataset's (see ganfast.data.LAYOUTS)
    channels: Optional[int] = None         # convert every image to 1 (gray), 3 (RGB) or 4 (RGBA); None: as stored
    frames_per_sample: Optional[int] = None  # frames per sample of frames data (None: the loader's default, 3)
    eval_every: Optional[int] = None       # steps between evaluations (None: no evaluation)
    eval_metrics: Optional[List[str]] = None  # None: coverage on 2-D mixtures, fid + kid on images
    eval_samples: Optional[int] = None     # real and generated samples per evaluation (None: 2500 points, 5000 images)
    eval_features: Optional[str] = None    # FID/KID features: a TorchScript file or the Inception weights file
    best_metric: Optional[str] = None      # column whose best value keeps checkpoints/best.pt (None: the first)
    compile: Any = None                    # torch.compile the networks: None/"off", True/"default", or a mode

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
                     "grid_size", "threads", "eval_every", "eval_samples", "frames_per_sample"):
            pos_int(name, getattr(self, name))
        pos_int("log_every", self.log_every, allow_none=False)
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 0:
            raise ValueError(f"keep must be an int >= 0 (0 keeps every checkpoint); got {self.keep!r}")
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels not in (1, 3, 4)):
            raise ValueError(f"channels must be 1 (gray), 3 (RGB) or 4 (RGBA); got {self.channels!r}")
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
        _backend.check_backend(self.backend)
        normalize_mode(self.compile)
        if self.eval_metrics is not None:
            from .evaluate import METRICS
            if isinstance(self.eval_metrics, str) or not all(m in METRICS for m in self.eval_metrics):
                raise ValueError(f"eval_metrics must be a list of {list(METRICS)}; got {self.eval_metrics!r}")
        if self.best_metric is not None:
            from .evaluate import BEST_DIRECTION
            if self.best_metric not in BEST_DIRECTION:
                raise ValueError(f"best_metric must be one of {list(BEST_DIRECTION)}; got {self.best_metric!r}")


def recommended(model: Any, kind: str) -> Dict[str, Any]:
    """What trains ``model`` (a Method class or instance) well on ``kind`` data in minutes on a CPU.

    ``{"steps", "batch_size", "lr_schedule", "ema_decay", "options"}``:
    ``options`` are model options applied unless the user set them (see
    each method's ``recommended`` table, in its file in :mod:`ganfast.models`).
    """
    cls = model if isinstance(model, type) else type(model)
    table = getattr(cls, "recommended", {}) or {}
    rec = {"steps": 4000 if kind == "points" else 2000, "batch_size": 256 if kind == "points" else 64,
           "lr_schedule": "constant", "ema_decay": 0.999, "options": {}}
    rec.update(table.get(kind, {}))
    return rec


class _Context(StepContext):
    def __init__(self, device: torch.device, amp: Optional[str], scalers: Dict[str, Any]) -> None:
        super().__init__()
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
    """Train a GAN method.

    Args:
        config: a :class:`TrainConfig` (or a dict of its fields).
        model: a built method; default: ``ganfast.models.build(config.model, dataset=..., **config.model_options)``.
        dataset: a :class:`ganfast.data.BatchDataset`; default: ``ganfast.data.load(config.data, ...)``.
        feature_extractor: for evaluation's FID/KID: an ``nn.Module`` or function mapping images in [0, 1]
            to ``(N, d)`` features (overrides ``config.eval_features``).

    ``fit()`` trains to ``config.steps`` steps (resuming first when asked) and
    returns a summary dict.  Files in ``config.out``: ``checkpoints/``
    (atomic, the newest ``keep``, and ``best.pt`` when evaluating),
    ``metrics.csv`` (or ``.jsonl``), ``losses.png``,
    ``samples/step-XXXXXXXX.png`` (image grids or scatter plots), ``config.json``.

    Raises:
        ValueError: a bad config, a model the dataset cannot feed (missing
            labels or batch fields), a sample shape that differs from the data's.
    """

    def __init__(self, config: Any = None, *, model: Optional[Method] = None, dataset: Any = None,
                 feature_extractor: Any = None) -> None:
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
            try:
                device = torch.device(cfg.device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"device must be cpu, cuda or cuda:N; got {cfg.device!r}") from err
            if device.type not in ("cpu", "cuda"):
                raise ValueError(f"device must be cpu, cuda or cuda:N; got {cfg.device!r}")
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", self.dist.local_rank)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r} was asked for but torch sees no CUDA device")
        if cfg.backend != "auto":  # before anything is written: a backend that cannot run here fails the first step
            status = _backend.backend_status(cfg.backend, device.type)
            if not status.available:
                raise ValueError(f"--backend {cfg.backend} cannot run on {device.type}: {status.reason}")
        self.device = device
        if cfg.amp == "fp16" and device.type == "cpu":
            warnings.warn("fp16 autocast on the CPU is slow and rarely useful; bf16 is the CPU's half type")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        from ..models import get
        method_cls = type(model) if model is not None else get(cfg.model)
        if dataset is None:
            from .. import data as gd
            kw: Dict[str, Any] = {"seed": cfg.seed}
            for key in ("image_size", "num_samples", "split", "channels", "frames_per_sample"):
                if getattr(cfg, key) is not None:
                    kw[key] = getattr(cfg, key)
            layout = cfg.data_layout or method_cls.layout
            if layout is not None:
                kw["layout"] = layout
            dataset = gd.load(cfg.data, **kw)
        self.dataset = dataset
        if model is None:
            # initial weights are a function of the seed alone (and the same on every rank),
            # drawn without touching the caller's global RNG
            options = {**recommended(method_cls, dataset.kind)["options"], **cfg.model_options}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = build(cfg.model, dataset=dataset, **options)
        else:
            shape = getattr(model, "sample_shape", None)
            if shape is not None and tuple(shape) != tuple(dataset.sample_shape):
                raise ValueError(f"the model makes samples of shape {tuple(shape)} but the dataset's"
                                 f" are {tuple(dataset.sample_shape)}")
            if "label" in model.requires:
                dataset.require_labels(model.name)
            if hasattr(dataset, "require_fields"):
                dataset.require_fields([f for f in model.requires if f != "label"], f"model {model.name!r}")
        self.model = model
        mode = normalize_mode(cfg.compile)
        #: what --compile compiles (None: eager); the networks compile in place when fit() starts
        self.compile_plan: Optional[CompilePlan] = plan(model, mode) if mode is not None else None
        self._compiled = False
        #: with --compile: wall time of the first iteration, which traces and compiles every graph
        self.first_step_seconds: Optional[float] = None
        rec = recommended(model, dataset.kind)
        self.steps = cfg.steps or rec["steps"]
        self.batch_size = cfg.batch_size or rec["batch_size"]
        self.lr_schedule = cfg.lr_schedule or rec["lr_schedule"]
        self.ema_decay = float(cfg.ema_decay if cfg.ema_decay is not None else rec["ema_decay"])
        self.out = cfg.out or os.path.join("runs", f"{model.name}-{data_slug(cfg.data)}")
        self.sample_every = cfg.sample_every or max(1, self.steps // 10)
        self.checkpoint_every = cfg.checkpoint_every or max(1, self.steps // 4)
        self.schedules = dict(model.schedules())
        if self.lr_schedule == "linear":
            self.schedules["lr"] = Linear(1.0, 0.0)  # from the initial rates down to 0 at the last step
        self.evaluator = None
        if cfg.eval_every:
            from .evaluate import Evaluator, default_metrics
            metrics = cfg.eval_metrics or default_metrics(dataset)
            n = cfg.eval_samples or (2500 if dataset.kind == "points" else 5000)
            self.evaluator = Evaluator(metrics, dataset, num_samples=n, device=device, seed=cfg.seed,
                                       features=feature_extractor if feature_extractor is not None
                                       else cfg.eval_features)
            self.best_metric = cfg.best_metric or self.evaluator.columns()[0]
            if self.best_metric not in self.evaluator.columns():
                raise ValueError(f"best_metric {self.best_metric!r} is not among the evaluated columns "
                                 f"{self.evaluator.columns()}")
        if self.batch_size > len(self.dataset):
            raise ValueError(f"batch_size {self.batch_size} is larger than the dataset ({len(self.dataset)} samples); "
                             f"use a smaller --batch-size")
        check_batches = getattr(self.model, "check_batch_sizes", None)
        if check_batches is not None:  # a method whose layers constrain the batch (minibatch stddev groups)
            check_batches(self.batch_size, len(self.dataset))
        self.best: Optional[Dict[str, Any]] = None
        self.step = 0
        self._setup_done = False
        self._resumed = False  # a checkpoint was loaded: the metrics file is continued, not replaced
        # --resume was asked for: a folder holding a run without any checkpoint (killed before its first)
        # is started afresh rather than refused
        self.resume_requested = False
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
        self.emas = self._make_emas()
        self.batches = ShardedBatches(self.dataset, self.batch_size, rank=self.dist.rank,
                                      world_size=self.dist.world_size, seed=cfg.seed, device=self.device,
                                      num_workers=cfg.num_workers)
        self.ctx = _Context(self.device, cfg.amp, self.scalers)
        self.ctx.total_steps = self.steps
        self.checkpoints = CheckpointManager(os.path.join(self.out, "checkpoints"), keep=cfg.keep or None)
        # the fixed inputs of the sample grids: their own generator, so drawing them
        # never moves the training RNG
        g = torch.Generator()
        g.manual_seed(cfg.seed + 12345)
        n = self.grid_size()
        grid_batch = self.grid_batch = self._first_batch(n)
        self.grid_inputs = {k: (v.to(self.device) if isinstance(v, Tensor) else v)
                            for k, v in model.sample_inputs(n, generator=g, batch=grid_batch).items()}
        self._setup_done = True

    def _make_emas(self) -> Dict[str, EMA]:
        if self.ema_decay <= 0:
            return {}
        out = {}
        for name, spec in self.model.ema_networks().items():
            decay = spec.decay if spec.decay is not None else self.ema_decay
            out[name] = EMA(self.model.net(name), decay=decay, warmup=spec.warmup, rampup=spec.rampup)
        return out

    @property
    def ema(self) -> Optional[EMA]:
        """The EMA of ``G`` (or of the only EMA'd network), or None."""
        if "G" in self.emas:
            return self.emas["G"]
        return next(iter(self.emas.values())) if len(self.emas) == 1 else None

    def _first_batch(self, n: int):
        """The dataset's first ``n`` samples as a Batch (conditions for the grids), without the training stream."""
        from ..data.batch import Batch
        idx = self.model.grid_indices(n, len(self.dataset))
        if hasattr(self.dataset, "batch"):
            return self.dataset.batch(idx, 0).to(self.device)
        return Batch.from_any(torch.utils.data.default_collate([self.dataset[int(i)] for i in idx])).to(self.device)

    def grid_size(self) -> int:
        return self.config.grid_size or self.model.grid_size()

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly (collective under torchrun: every rank calls it)."""
        rngs = D.gather_objects(rng_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "config": {"train": _jsonable(self.config.to_dict()),
                       "model": {"name": self.model.name, **_jsonable(self.model.config)}},
            "model": self.model.state_dict(),
            "model_extra": self.model.extra_state_dict(),
            "ema": {k: e.state_dict() for k, e in self.emas.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "amp_skips": {"skipped": dict(self.ctx.skipped_steps), "consecutive": dict(self.ctx.consecutive_skips)},
            "schedules": evaluate(self.schedules, self.step, self.steps),
            "best": dict(self.best) if self.best is not None else None,
            "rng": rngs,
            "data": self.batches.state_dict(),
            "world_size": self.dist.world_size,
        }

    def _warn_on_skip_streaks(self, main: bool) -> None:
        """Warn once per streak when a scaler has skipped SKIP_STREAK_WARNING or more steps in a row."""
        warned = self.__dict__.setdefault("_skip_warned", set())
        for k, sc in self.scalers.items():
            streak = self.ctx.consecutive_skips.get(k, 0)
            if streak < SKIP_STREAK_WARNING:
                warned.discard(k)
            elif k not in warned:
                warned.add(k)
                if main:
                    warnings.warn(_skip_streak_message(k, streak, sc.get_scale()), RuntimeWarning, stacklevel=2)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        state = upgrade_checkpoint(state)
        saved = state["config"]["model"]
        if saved["name"] != self.model.name:
            raise ValueError(f"the checkpoint is of model {saved['name']!r}, this run trains {self.model.name!r}")
        self.model.load_state_dict(state["model"])
        self.model.load_extra_state_dict(state.get("model_extra") or {})
        saved_emas = state.get("ema") or {}
        for k in list(self.emas):
            if k in saved_emas:
                self.emas[k].load_state_dict(saved_emas[k])
            else:  # trained without an EMA so far: start one from the loaded weights
                self.emas[k] = EMA(self.model.net(k), decay=self.emas[k].decay, warmup=self.emas[k].warmup,
                                   rampup=self.emas[k].rampup)
        missing = sorted(set(self.optimizers) - set(state["optimizers"]))
        if missing:
            raise ValueError(f"the checkpoint has no state for optimiser(s) {missing} (it has "
                             f"{sorted(state['optimizers'])})")
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.scalers.items():
            if k in state.get("scalers", {}):
                s.load_state_dict(state["scalers"][k])
        skips = state.get("amp_skips") or {}
        self.ctx.skipped_steps = dict(skips.get("skipped") or {})
        self.ctx.consecutive_skips = dict(skips.get("consecutive") or {})
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
        self.best = state.get("best")
        self._check_schedules(state.get("schedules") or {})
        self._resumed = True

    def _check_schedules(self, saved: Dict[str, float]) -> None:
        now = evaluate(self.schedules, self.step, self.steps)
        changed = {k: (saved[k], now[k]) for k in now if k in saved and saved[k] != now[k]}
        if changed:
            shown = ", ".join(f"{k} {a:.6g} -> {b:.6g}" for k, (a, b) in changed.items())
            warnings.warn(f"at step {self.step} the schedules differ from the checkpoint's ({shown}): the run's "
                          f"length or settings changed, so it continues on the new schedule")

    def save_checkpoint(self, path: Optional[str] = None) -> Optional[str]:
        """Save a checkpoint (in the rotation, or to ``path``); collective under torchrun."""
        state = self.state_dict()  # collective: every rank
        if self.dist.is_main:
            if path is None:
                path = self.checkpoints.save(self.step, state)
            else:
                save_checkpoint(path, state)
        D.barrier()
        return path

    def resume(self, path: Optional[str] = None) -> bool:
        """Load ``path`` (default: the newest checkpoint in ``out``); False when there is none."""
        if not self._setup_done:
            self._setup()
        if path is None:  # the newest that passes its checksums; newer damaged ones are named and passed over
            found = load_newest_intact(self.checkpoints.directory, map_location=self.device)
            if found is None:
                return False
            path, state, refused = found
            for bad, why in refused:
                warnings.warn(f"passing over {bad}: {why}")
        else:
            state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state)
        return True

    # -- sampling --------------------------------------------------------------------------------

    def sample_networks(self) -> Dict[str, nn.Module]:
        """The networks samples come from: the EMA copies where there are some."""
        return {k: e.module for k, e in self.emas.items()}

    @torch.no_grad()
    def sample(self, **inputs: Any) -> Tensor:
        """``model.sample(**inputs)`` with the EMA networks, every network in eval mode; float32."""
        nets = {**self.model.networks(), **self.sample_networks()}
        modes = {k: m.training for k, m in nets.items()}
        for m in nets.values():
            m.eval()
        try:
            with self._eager():
                return self.model.sample(networks=nets, **inputs).float()
        finally:
            for k, m in nets.items():
                m.train(modes[k])

    def _eager(self):
        """Compiled networks run eagerly inside (a sample grid or an evaluation would recompile them for eval mode)."""
        return eager() if self.compile_plan is not None else contextlib.nullcontext()

    def write_samples(self) -> str:
        from .grid import save_image_grid, save_points_png
        x = self.sample(**self.grid_inputs).cpu()
        path = os.path.join(self.out, "samples", f"step-{self.step:08d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if x.dim() == 5:  # frames (N, T, C, H, W): one row per sample
            nrow = x.shape[1]
            x = x.flatten(0, 1)
        elif x.dim() == 4:
            x, nrow = self.model.grid_images(x, self.grid_inputs, self.grid_batch.to("cpu"))
        if x.dim() == 4:
            save_image_grid(x[:, :3] if x.shape[1] > 3 else x, path, nrow=nrow)
        elif x.dim() == 2 and x.shape[1] == 2:
            save_points_png(x, path, reference=getattr(self.dataset, "modes", None))
        else:
            return ""
        return path

    # -- evaluation --------------------------------------------------------------------------------

    def evaluate(self) -> Dict[str, float]:
        """The evaluator's metrics on the current EMA networks (main process only)."""
        nets = {**self.model.networks(), **self.sample_networks()}
        modes = {k: m.training for k, m in nets.items()}
        for m in nets.values():
            m.eval()
        try:
            with self._eager():
                return self.evaluator(self.model, nets)
        finally:
            for k, m in nets.items():
                m.train(modes[k])

    def _improves(self, vals: Dict[str, float]) -> bool:
        from .evaluate import BEST_DIRECTION
        key = self.best_metric
        if key not in vals:
            return False
        if self.best is None:
            return True
        return BEST_DIRECTION[key] * (vals[key] - self.best["value"]) > 0

    # -- the loop --------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> Dict[str, Any]:
        cfg = self.config
        with _backend.use_backend(cfg.backend):
            if not self._setup_done:
                self._setup()
            if resume:
                self.resume()
            if self.compile_plan is not None and not self._compiled:
                compile_networks(self.model, self.compile_plan, self.device)
                self._compiled = True
            resumed = self._resumed
            main = self.dist.is_main
            if main and not resumed and not (resume or self.resume_requested):
                _refuse_existing_run(self.out)
            if main:  # what a killed run of this folder left half-written
                for sub in ("", "checkpoints", "samples"):
                    remove_stale_temporaries(os.path.join(self.out, sub))
            if main:
                os.makedirs(self.out, exist_ok=True)
                _write_json(os.path.join(self.out, "config.json"), {
                    "train": _jsonable(cfg.to_dict()),
                    "model": {"name": self.model.name, **_jsonable(self.model.config)},
                    "resolved": {"steps": self.steps, "batch_size": self.batch_size, "lr_schedule": self.lr_schedule,
                                 "ema_decay": self.ema_decay, "device": str(self.device),
                                 "world_size": self.dist.world_size,
                                 "networks": {k: type(m).__name__ for k, m in self.model.networks().items()},
                                 "phases": [p.name for p in self.model.phases()],
                                 "schedules": sorted(self.schedules),
                                 "compile": None if self.compile_plan is None else {
                                     "mode": self.compile_plan.mode, "compiled": list(self.compile_plan.compiled),
                                     "eager": dict(self.compile_plan.eager)}}})
            logger = None
            if main:
                from .log import MetricsLogger
                ext = "csv" if cfg.metrics_format == "csv" else "jsonl"
                tb = os.path.join(self.out, "tensorboard") if cfg.tensorboard else None
                logger = MetricsLogger(os.path.join(self.out, f"metrics.{ext}"),
                                       resume_step=self.step if resumed else None, tensorboard_dir=tb)
            bar = self._progress(main)
            stopped = False
            t_last, drawn_last = time.perf_counter(), self.batches.delivered_samples
            pending: Dict[str, float] = {}  # evaluation results waiting for the next logged row
            try:
                with _StopRequest() as stop:
                    while self.step < self.steps:
                        self.ctx.step = self.step
                        self.ctx.schedule = evaluate(self.schedules, self.step, self.steps)
                        self._set_learning_rates(self.ctx.schedule)
                        self.model.train()
                        step_begin(self.compile_plan, self.device)
                        t_step = time.perf_counter()
                        logged = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == self.steps
                        # fp16: the scales before a logged step tell whether the scaler skipped it (an overflow)
                        scales = {k: sc.get_scale() for k, sc in self.scalers.items()} if logged else {}
                        with explained(self.compile_plan):
                            logs = self.model.train_step(self.batches, self.optimizers, self.ctx)
                        if self.compile_plan is not None and self.first_step_seconds is None:
                            self.first_step_seconds = time.perf_counter() - t_step
                        for k, ema in self.emas.items():
                            ema.update(self.model.net(k))
                        self.step += 1
                        if self.scalers:
                            self._warn_on_skip_streaks(main)
                        if self.evaluator is not None and (self.step % cfg.eval_every == 0
                                                           or self.step == self.steps):
                            pending.update(self._evaluate_and_keep_best(main))
                        if self.step % cfg.log_every == 0 or self.step == self.steps:
                            vals = {k: float(v) for k, v in D.mean_over_ranks(logs).items()}
                            now = time.perf_counter()
                            images = self.dist.world_size * (self.batches.delivered_samples - drawn_last)
                            vals["images_per_s"] = images / max(now - t_last, 1e-9)
                            t_last, drawn_last = now, self.batches.delivered_samples
                            skipped = {k: sc.get_scale() for k, sc in self.scalers.items()
                                       if k in scales and sc.get_scale() < scales[k]}
                            _check_finite(vals, self.step, skipped)
                            for k in self.scalers:  # fp16: how many of each optimiser's steps were skipped so far
                                vals[f"skipped_steps_{k}"] = float(self.ctx.skipped_steps.get(k, 0))
                            vals.update(pending)
                            pending = {}
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
                    "last": self.history[-1] if self.history else {}, "best": self.best}

    def _evaluate_and_keep_best(self, main: bool) -> Dict[str, float]:
        vals = self.evaluate() if main else {}
        improved = D.any_rank(main and self._improves(vals), self.device if self.device.type == "cuda" else "cpu")
        if improved:
            if main:
                self.best = {"metric": self.best_metric, "value": vals[self.best_metric], "step": self.step}
            self.save_checkpoint(os.path.join(self.out, "checkpoints", "best.pt"))
        return vals

    def _set_learning_rates(self, values: Dict[str, float]) -> None:
        """Schedules ``lr`` (every optimiser) and ``lr/<name>`` (one) scale the initial learning rates."""
        for name, opt in self.optimizers.items():
            factor = None
            for key in ("lr", f"lr/{name}"):
                if key in values:
                    factor = values[key] if factor is None else factor * values[key]
            if factor is None:
                continue
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


# -- checkpoints ----------------------------------------------------------------------------------

#: version-1 checkpoints (the first trainer, eleven methods): module and optimiser names then -> now
_V1_MODULES = {"generator": "G", "discriminator": "D", "classifier": "C", "q_head": "Q"}
_V1_OPTIMIZERS = {"g": "G", "d": "D"}


def check_checkpoint(state: Any) -> None:
    """Raise ValueError unless ``state`` is a ganfast training checkpoint this version reads."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not a ganfast training checkpoint (no 'format': 'ganfast-checkpoint' entry)")
    version = int(state.get("version", 0))
    if version > CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint version {state.get('version')} is newer than this ganfast reads"
                         f" ({CHECKPOINT_VERSION}); upgrade ganfast")
    if version < 1:
        raise ValueError(f"checkpoint version {state.get('version')!r} is not one ganfast ever wrote")


def upgrade_checkpoint(state: Dict[str, Any]) -> Dict[str, Any]:
    """A checkpoint in the current format (a new dict; ``state`` is not changed).

    Version 1 (written before methods named their networks) kept the
    networks as ``generator.*`` / ``discriminator.*`` (+ ``classifier.*`` for
    AC-GAN, ``q_head.*`` for InfoGAN), optimisers ``g`` / ``d``, one EMA of
    the generator and historical averages under ``g`` / ``d``; they are
    renamed to ``G``, ``D``, ``C``, ``Q`` and the EMA becomes ``{"G": ...}``.
    Nothing else changed, so a version-1 run resumes exactly.

    Raises:
        ValueError: not a checkpoint, a newer version, or a version-1 entry
            this upgrade does not know (the message names it).
    """
    check_checkpoint(state)
    if int(state["version"]) == CHECKPOINT_VERSION:
        return state
    out = dict(state)

    def rename(key: str) -> str:
        head, _, rest = key.partition(".")
        if head not in _V1_MODULES:
            raise ValueError(f"cannot upgrade this version-1 checkpoint: unknown module {head!r} in key {key!r}")
        return f"{_V1_MODULES[head]}.{rest}"

    out["model"] = {rename(k): v for k, v in state["model"].items()}
    out["optimizers"] = {_V1_OPTIMIZERS.get(k, k): v for k, v in state["optimizers"].items()}
    out["scalers"] = {_V1_OPTIMIZERS.get(k, k): v for k, v in (state.get("scalers") or {}).items()}
    out["ema"] = {"G": state["ema"]} if state.get("ema") is not None else {}
    extra = dict(state.get("model_extra") or {})
    if "historical_averaging" in extra:
        extra["historical_averaging"] = {_V1_OPTIMIZERS.get(k, k): v
                                         for k, v in extra["historical_averaging"].items()}
    out["model_extra"] = extra
    out["schedules"] = {}
    out["version"] = CHECKPOINT_VERSION
    return out


def model_from_checkpoint(state: Dict[str, Any], *, ema: bool = True) -> Method:
    """Rebuild the method a checkpoint was trained with; its networks are the EMA copies where there are some."""
    state = upgrade_checkpoint(state)
    cfg = dict(state["config"]["model"])
    name = cfg.pop("name")
    model = build(name, **cfg)
    model.load_state_dict(state["model"])
    if ema:
        for k, e in (state.get("ema") or {}).items():
            model.net(k).load_state_dict(e["module"])
    return model


def _refuse_existing_run(out: str) -> None:
    """Raise FileExistsError when ``out`` already holds a run (a fresh run would overwrite its metrics and
    config and mix its checkpoints and grids with the new ones)."""
    found = [name for name in ("config.json", "metrics.csv", "metrics.jsonl")
             if os.path.isfile(os.path.join(out, name))]
    ckpts = CheckpointManager(os.path.join(out, "checkpoints")).list()
    if ckpts:
        found.append(f"{len(ckpts)} checkpoint(s) up to {os.path.basename(ckpts[-1])}")
    if found:
        raise FileExistsError(f"{out} already holds a run ({', '.join(found)}): continue it with --resume, "
                              f"or write the new run elsewhere with --out; nothing was overwritten")


# Consecutive float16 steps a gradient scaler may skip before the trainer warns: a
# healthy run skips a few while the scale settles (65536 halves to its working
# value), never ten in a row once it has.
SKIP_STREAK_WARNING = 10


def _skip_streak_message(name: str, streak: int, scale: float) -> str:
    return (f"the float16 gradient scaler of optimiser {name!r} skipped its last {streak} steps (scale now "
            f"{scale:g}): {name} is not being updated although the logged losses look finite. Try --amp bf16; "
            "BatchNorm in a discriminator with R1 / gradient penalties is known to overflow in float16")


def _check_finite(vals: Dict[str, float], step: int, skipped: Optional[Dict[str, float]] = None) -> None:
    """Raise FloatingPointError when a logged value is non-finite, except on an fp16 step its gradient scaler skipped.

    ``skipped``: the scalers whose scale fell during the step, with their new
    scale.  Overflowing fp16 gradients (a gradient penalty's scaled input
    gradient often does in the first steps) make the logged losses inf/NaN;
    the scaler then skips the optimiser step and halves its scale (PyTorch's
    AMP recipe), so the weights stay finite and training goes on.  When the
    scale has fallen below 1 (16 halvings from 65536), the overflow is not
    the scale's fault: that is divergence.
    """
    bad = [k for k, v in vals.items() if not math.isfinite(v)]
    if bad and skipped and min(skipped.values()) >= 1.0:
        return
    if bad:
        raise FloatingPointError(
            f"training diverged at step {step}: {', '.join(bad)} became non-finite; lower the learning rates,"
            " try --amp bf16 instead of fp16, or resume from an earlier checkpoint")


def _postfix(vals: Dict[str, float]) -> str:
    parts = []
    for k, v in vals.items():
        if k == "images_per_s":
            parts.append(f"{v:,.0f} img/s")
        elif k in ("d_loss", "g_loss", "gp", "w_distance", "info", "d_class", "fid", "kid", "modes_covered"):
            parts.append(f"{k}={v:.3f}")
    return " ".join(parts)


def data_slug(s: str) -> str:
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
