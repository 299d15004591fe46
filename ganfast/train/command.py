"""``ganfast train``, ``ganfast sample`` and ``ganfast list``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Dict, List, Optional

from .compile import MODES as COMPILE_MODES
from .compile import CompileError

# Options that may change when a run is resumed (how long, how often, where it runs);
# everything else defines the experiment and must match the checkpoint.
_RESUMABLE = {"steps", "sample_every", "checkpoint_every", "log_every", "keep", "progress", "tensorboard",
              "num_workers", "threads", "device", "backend", "out", "eval_every", "eval_metrics", "eval_samples",
              "eval_features", "best_metric", "compile"}


def _option(text: str) -> tuple:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. -o n_critic=5); got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip().replace("-", "_")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return key, parsed


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--model", default=None, help="GAN method (see `ganfast list`); default dcgan")
    a("--data", default=None, help="a built-in dataset (`ganfast list datasets`), a folder, or a .npy/.npz file; "
                                   "default digits")
    a("--split", default=None, help="dataset split: train or test (fashion-mnist), or a folder's train/val/test")
    a("--data-layout", default=None, choices=["images", "paired", "unpaired", "frames", "captions"],
      help="how a folder is read (default: the method's, else detected)")
    a("--steps", type=int, default=None, help="generator steps (default: the model's recommendation for the data)")
    a("--batch-size", type=int, default=None, help="per process (default: the method's recommendation for the data, "
      "e.g. 128 for DCGAN on digits; else 64 for images, 256 for points)")
    a("--out", default=None, help="run directory (default runs/<model>-<data>)")
    a("--resume", nargs="?", const=True, default=None, metavar="CKPT",
      help="continue from the newest checkpoint in --out (or from CKPT); starts fresh when there is none")
    a("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision (fp16 uses a gradient scaler)")
    a("--backend", default=None, help="kernel backend: auto, torch, triton, cuda (default auto)")
    a("--device", default=None, help="cpu or cuda (default: cuda when available)")
    a("--seed", type=int, default=None)
    a("--image-size", type=int, default=None, help="resize images to this side (digits: 8, 16, 32 or 64; default 16)")
    a("--num-samples", type=int, default=None, help="points drawn for ring8/grid25 (default 100000)")
    a("--channels", type=int, choices=[1, 3, 4], default=None,
      help="convert every image to gray (1), RGB (3) or RGBA (4), e.g. for a folder mixing them (default: as stored)")
    a("--frames-per-sample", type=int, default=None, metavar="T",
      help="frames per sample of clip data (--data-layout frames, fashion-shoes-clips; default 3)")
    a("--ema-decay", type=float, default=None,
      help="EMA of the generator used for samples (0 disables; default: the model's recommendation, 0.999)")
    a("--lr-schedule", choices=["constant", "linear"], default=None,
      help="learning rates constant or decayed linearly to 0 (default: the model's recommendation)")
    a("--sample-every", type=int, default=None, help="steps between sample grids")
    a("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    a("--log-every", type=int, default=None, help="steps between metric rows (default 10)")
    a("--keep", type=int, default=None, help="checkpoints kept (0 keeps all; default 3)")
    a("--grid-size", type=int, default=None, help="samples per grid")
    a("--metrics-format", choices=["csv", "jsonl"], default=None)
    a("--tensorboard", action="store_true", default=None, help="also log to TensorBoard (when installed)")
    a("--num-workers", type=int, default=None, help="DataLoader workers for image folders")
    a("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    a("--threads", type=int, default=None, help="torch CPU threads")
    a("--compile", nargs="?", const="default", default=None, choices=[*COMPILE_MODES, "off"], metavar="MODE",
      help="torch.compile the networks; MODE is torch.compile's (" + ", ".join(COMPILE_MODES) + "; default when "
           "omitted), or off (to resume a compiled run without it). Networks a gradient penalty differentiates "
           "twice stay eager")
    a("--loss", default=None, help="override the model's adversarial loss (see `ganfast list`)")
    a("--n-critic", type=int, default=None, help="discriminator steps per generator step")
    a("--lr-g", type=float, default=None)
    a("--lr-d", type=float, default=None)
    a("--eval-every", type=int, default=None,
      help="evaluate every N steps on the EMA networks: FID and KID (images), mode coverage (ring8/grid25)")
    a("--eval-metrics", type=_metric_list, default=None, metavar="M[,M]",
      help="comma-separated: fid, kid, coverage (default: coverage on 2-D mixtures, fid,kid on images)")
    a("--eval-samples", type=int, default=None, help="samples per evaluation (default 2500 points, 5000 images)")
    a("--eval-features", default=None, metavar="FILE",
      help="FID/KID features: a TorchScript module (images in [0, 1] -> (N, d)) or the Inception weights file "
           "pt_inception-2015-12-05-6726825d.pth (default: $GANFAST_INCEPTION_WEIGHTS)")
    a("--best-metric", default=None, help="keep checkpoints/best.pt by this column (fid, kid, modes_covered, "
                                          "high_quality; default: the first evaluated)")
    a("-o", "--option", dest="options", action="append", type=_option, default=[], metavar="KEY=VALUE",
      help="any model option (JSON values), e.g. -o gradient_penalty=10 -o hidden=[256,256]; repeatable")


def _metric_list(text: str) -> list:
    return [m.strip() for m in text.split(",") if m.strip()]


_SHORTHANDS = {"loss": "loss", "n_critic": "n_critic", "lr_g": "lr_g", "lr_d": "lr_d"}
_TRAIN_FIELDS = ("model", "data", "steps", "batch_size", "out", "amp", "backend", "device", "seed", "image_size",
                 "num_samples", "ema_decay", "sample_every", "checkpoint_every", "log_every", "keep", "grid_size",
                 "metrics_format", "tensorboard", "num_workers", "progress", "threads", "lr_schedule", "split",
                 "data_layout", "channels", "frames_per_sample", "eval_every", "eval_metrics", "eval_samples",
                 "eval_features", "best_metric",
                 "compile")


def _explicit(args: argparse.Namespace) -> Dict[str, Any]:
    out = {k: getattr(args, k) for k in _TRAIN_FIELDS if getattr(args, k) is not None}
    opts = {key: getattr(args, attr) for attr, key in _SHORTHANDS.items() if getattr(args, attr) is not None}
    opts.update(dict(args.options))
    if opts:
        out["model_options"] = opts
    return out


def run_train(args: argparse.Namespace) -> int:
    try:
        return _run_train(args)
    except CompileError as err:  # --compile on a method it cannot run: the message says why and what to do
        print(f"ganfast train: {err}", file=sys.stderr)
        return 2


def _run_train(args: argparse.Namespace) -> int:
    from ..models import names
    from .checkpoint import CheckpointManager, load_checkpoint, load_newest_intact
    from .trainer import TrainConfig, Trainer

    given = _explicit(args)
    if "model" in given and given["model"] not in names():
        print(f"ganfast train: unknown model {given['model']!r}; choose one of {names()}", file=sys.stderr)
        return 2
    fresh = TrainConfig.from_dict({k: v for k, v in given.items()})
    # where a resumed run's checkpoint lives: --out, else the default directory of --model/--data
    out = fresh.out or os.path.join("runs", f"{fresh.model}-{_slug(fresh.data)}")
    ckpt_path: Optional[str] = None
    if args.resume is not None:
        where = args.resume if isinstance(args.resume, str) else out
        try:
            if os.path.isfile(where) and os.path.basename(where) != CheckpointManager.POINTER:
                ckpt_path, state = where, load_checkpoint(where)  # the file asked for, or an error
            else:  # a run directory: the newest checkpoint that passes its checksums
                directory = os.path.dirname(where) if os.path.isfile(where) else where
                if os.path.isdir(os.path.join(directory, "checkpoints")):
                    directory = os.path.join(directory, "checkpoints")
                if isinstance(args.resume, str) and not os.path.isdir(directory):
                    raise FileNotFoundError(f"no checkpoint at {args.resume}")
                found = load_newest_intact(directory)
                if found is None and isinstance(args.resume, str):
                    raise FileNotFoundError(f"no checkpoint in {directory} (expected ckpt-*.pt files written by "
                                            f"ganfast train)")
                if found is None:
                    print(f"ganfast train: no checkpoint in {directory}: starting from step 0", file=sys.stderr)
                else:
                    ckpt_path, state, refused = found
                    for path, why in refused:
                        print(f"ganfast train: warning: passing over {path}: {why}", file=sys.stderr)
        except (FileNotFoundError, ValueError) as err:
            print(f"ganfast train: error: --resume: {err}", file=sys.stderr)
            return 2
    if ckpt_path is not None:
        saved = dict(state["config"]["train"])
        for key, value in given.items():
            if key in _RESUMABLE or saved.get(key) == value:
                saved[key] = value
            elif key == "model_options" and all(saved.get("model_options", {}).get(k) == v for k, v in value.items()):
                continue
            else:
                print(f"ganfast train: --resume continues the run in {ckpt_path}, which was trained with "
                      f"{key}={saved.get(key)!r}; it cannot change to {value!r} (only "
                      f"{', '.join(sorted(_RESUMABLE))} can)", file=sys.stderr)
                return 2
        saved.setdefault("out", out)
        if saved.get("out") is None:
            saved["out"] = out
        cfg = TrainConfig.from_dict(saved)
        trainer = _configured(Trainer, cfg)
        if trainer is None:
            return 2
        trainer._setup()
        trainer.load_state_dict(state)
        print(f"ganfast train: resuming {trainer.model.name} from step {trainer.step} ({ckpt_path})", file=sys.stderr)
    else:
        trainer = _configured(Trainer, fresh)
        if trainer is None:
            return 2
        trainer.resume_requested = args.resume is not None  # nothing to resume: start afresh in that folder
    if trainer.dist.is_main:
        print(f"ganfast train: {trainer.model.name} on {trainer.dataset!r}, {trainer.steps} steps of batch "
              f"{trainer.batch_size} on {trainer.device}, writing to {trainer.out}", file=sys.stderr)
        print("ganfast train: networks " + "; ".join(trainer.model.describe_networks().splitlines()),
              file=sys.stderr)
        if trainer.compile_plan is not None:
            print(f"ganfast train: --compile: {trainer.compile_plan.describe()}", file=sys.stderr)
    try:
        summary = trainer.fit()
    except FileExistsError as err:  # a fresh run into a run directory: refused before anything is written
        print(f"ganfast train: error: {err}", file=sys.stderr)
        return 2
    if trainer.dist.is_main and trainer.first_step_seconds is not None:
        print(f"ganfast train: --compile: the first iteration (tracing and compiling) took "
              f"{trainer.first_step_seconds:.1f} s", file=sys.stderr)
    if trainer.dist.is_main:
        print(_summary_line(summary, trainer.steps))
        print(f"ganfast train: checkpoint {summary['checkpoint']}; samples in {os.path.join(trainer.out, 'samples')}")
    from . import distributed
    distributed.teardown()
    return 130 if summary["stopped"] else 0


def _summary_line(summary: Dict[str, Any], total_steps: int) -> str:
    """The line ``ganfast train`` ends with: the last logged values, labelled with the step they were logged at."""
    last = summary["last"]
    shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step")
    if not last and summary["step"] >= total_steps:
        return (f"ganfast train: the run was already at its last step ({summary['step']}); nothing to train "
                f"(give a larger --steps to continue it)")
    if not last:
        return f"ganfast train: stopped at step {summary['step']} before its first logged step"
    logged = int(last.get("step", summary["step"]))
    if logged == summary["step"]:
        return f"ganfast train: step {logged}: {shown}"
    # stopped (Ctrl-C) between logged steps: the values are those of the last logged one
    return f"ganfast train: stopped at step {summary['step']}; last logged, step {logged}: {shown}"


def _configured(trainer_cls, cfg):
    """The trainer, or None after printing a configuration error (a bad option, dataset or size) without a traceback."""
    try:
        return trainer_cls(cfg)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"ganfast train: error: {_as_flags(str(e))}", file=sys.stderr)
        return None


def _as_flags(message: str) -> str:
    """A configuration error as the command line says it: ``batch_size must be ...`` -> ``--batch-size must be ...``
    (``num_samples=2000 asks ...`` -> ``--num-samples 2000 asks ...``); other messages unchanged."""
    for field, flag in _SHORTHANDS.items():  # -o options that have their own flag
        if message.startswith(f"option {field!r} "):
            return "--" + flag.replace("_", "-") + message[len(f"option {field!r}"):]
    for field in _TRAIN_FIELDS:
        flag = "--" + field.replace("_", "-")
        if message.startswith(field + " "):
            return flag + message[len(field):]
        if message.startswith(field + "="):
            return flag + " " + message[len(field) + 1:]
    return message


def _slug(s: str) -> str:
    from .trainer import data_slug
    return data_slug(s)


# -- sample -------------------------------------------------------------------------------------------


#: --style-mix given without CUTOFF (an object, not a string: argparse would pass a string const through int)
_HALF = object()


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="a checkpoint written by `ganfast train`, or a run directory / its "
                   "checkpoints directory / their `latest` file (the newest intact checkpoint there)")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="a .png (image grid, or a scatter plot for 2-D points) or .npy file")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (default 0): the samples depend on "
                   "--seed and --n only, not on --batch-size or --device (up to float rounding)")
    p.add_argument("--label", type=int, default=None, help="class of every sample (conditional models)")
    p.add_argument("--no-ema", action="store_true", help="sample the trained generator, not its EMA")
    p.add_argument("--batch-size", type=int, default=500, help="samples per forward pass (default 500)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--truncation", type=float, default=None, metavar="PSI",
                   help="truncation trick in w (style-based models): w_avg + PSI (w - w_avg); 1 = off, 0.7 typical")
    p.add_argument("--truncation-cutoff", type=int, default=None, metavar="N",
                   help="truncate only the first N layers' w (default: all)")
    p.add_argument("--interpolate", type=int, default=None, metavar="STEPS",
                   help="latent interpolation strips (style-based models): min(--n, 8) rows, each STEPS images "
                        "along a straight line in w between two random latents")
    p.add_argument("--style-mix", type=int, nargs="?", const=_HALF, default=None, metavar="CUTOFF",
                   help="a 4 x 6 style-mixing grid (style-based models; --n does not apply): the top row's images "
                        "give the layers from CUTOFF on (fine styles), the left column's the layers before it "
                        "(coarse); default CUTOFF: half the layers")


def _style_mix_grid(model, args, device):
    """(1 + rows) x (1 + cols) images: sources on the top row and left column, mixes inside, top-left blank."""
    import torch

    rows, cols = 4, 6
    g = torch.Generator().manual_seed(args.seed)
    z_rows = model.sample_inputs(rows, generator=g)["latent"].to(device)
    z_cols = model.sample_inputs(cols, generator=g)["latent"].to(device)
    num_ws = model.G.num_ws
    cutoff = num_ws // 2 if args.style_mix is _HALF else args.style_mix
    if not 0 < cutoff < num_ws:
        raise ValueError(f"--style-mix CUTOFF must be between 1 and {num_ws - 1} (the model has {num_ws} w layers); "
                         f"got {cutoff}")
    psi = 1.0 if args.truncation is None else args.truncation
    mixed = model.style_mix(z_rows, z_cols, cutoff, truncation_psi=psi)
    top = model.sample(latent=z_cols, truncation_psi=psi)
    left = model.sample(latent=z_rows, truncation_psi=psi)
    blank = torch.full_like(top[:1], -1.0)
    cells = [blank, top] + [torch.cat([left[i:i + 1], mixed[i * cols:(i + 1) * cols]]) for i in range(rows)]
    return torch.cat(cells).float().cpu(), cols + 1


def _rows(inputs: Dict[str, Any], start: int, stop: int, total: int) -> Dict[str, Any]:
    """Rows ``start:stop`` of a method's sample inputs drawn for ``total`` samples: tensors (and lists of
    tensors) with ``total`` rows are sliced, a count ``n`` becomes the slice's length, anything else is shared."""
    import torch

    def cut(v):
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == total:
            return v[start:stop]
        if isinstance(v, (list, tuple)) and v and all(isinstance(t, torch.Tensor) for t in v):
            return type(v)(cut(t) for t in v)
        return v

    return {k: (stop - start if k == "n" and isinstance(v, int) else cut(v)) for k, v in inputs.items()}


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .checkpoint import load_resolved
    from .trainer import model_from_checkpoint

    if args.n < 1:
        print(f"ganfast sample: --n must be a positive int; got {args.n}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print(f"ganfast sample: --batch-size must be a positive int; got {args.batch_size}", file=sys.stderr)
        return 2
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        print(f"ganfast sample: --device: {err}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"ganfast sample: --device {args.device!r} was asked for but torch sees no CUDA device",
              file=sys.stderr)
        return 2
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".png", ".npy"):
        print(f"ganfast sample: --out must end in .png or .npy; got {args.out!r}", file=sys.stderr)
        return 2
    try:
        state = load_resolved(args.ckpt)
    except (FileNotFoundError, ValueError) as err:
        print(f"ganfast sample: --ckpt: {err}", file=sys.stderr)
        return 2
    model = model_from_checkpoint(state, ema=not args.no_ema)
    from ..models.method import Method
    if type(model).translate is not Method.translate:
        verb, command = ("super-resolves", "upscale") if isinstance(getattr(model, "scale", None), int) else \
            ("translates", "translate")
        print(f"ganfast sample: model {model.name!r} {verb} images rather than sampling them: use ganfast "
              f"{command} --ckpt {args.ckpt} --input IMAGES --out DIR", file=sys.stderr)
        return 2
    model.to(device).eval()
    conditions = {}
    if args.label is not None:
        if "label" not in model.sample_conditions:
            print(f"ganfast sample: model {model.name!r} is not conditional: it takes no --label", file=sys.stderr)
            return 2
        if not 0 <= args.label < model.num_classes:
            print(f"ganfast sample: --label must be in [0, {model.num_classes}); got {args.label}", file=sys.stderr)
            return 2
        conditions["label"] = args.label
    style_based = hasattr(model, "style_mix")
    for flag, value in (("--truncation", args.truncation), ("--truncation-cutoff", args.truncation_cutoff),
                        ("--style-mix", args.style_mix), ("--interpolate", args.interpolate)):
        if value is not None and not style_based:
            print(f"ganfast sample: {flag} needs a style-based model (stylegan, stylegan2); {model.name!r} is not one",
                  file=sys.stderr)
            return 2
    if args.truncation is not None and not math.isfinite(args.truncation):
        print(f"ganfast sample: --truncation must be a finite number; got {args.truncation}", file=sys.stderr)
        return 2
    if args.truncation_cutoff is not None:
        if args.truncation is None:
            print("ganfast sample: --truncation-cutoff needs --truncation PSI (it says which layers PSI applies to)",
                  file=sys.stderr)
            return 2
        if args.style_mix is not None or args.interpolate is not None:
            print("ganfast sample: --truncation-cutoff applies to plain samples, not to --style-mix or --interpolate",
                  file=sys.stderr)
            return 2
        num_ws = model.G.num_ws
        if not 1 <= args.truncation_cutoff <= num_ws:
            print(f"ganfast sample: --truncation-cutoff must be between 1 and {num_ws} (the model's w layers); got "
                  f"{args.truncation_cutoff}", file=sys.stderr)
            return 2
    if args.style_mix is not None and args.interpolate is not None:
        print("ganfast sample: --style-mix and --interpolate write different pictures: give one", file=sys.stderr)
        return 2
    if args.style_mix is not None:
        if ext != ".png":
            print("ganfast sample: --style-mix writes a picture: --out must end in .png", file=sys.stderr)
            return 2
        from .grid import save_image_grid
        try:
            with torch.no_grad():
                grid, nrow = _style_mix_grid(model, args, device)
        except ValueError as err:
            print(f"ganfast sample: {err}", file=sys.stderr)
            return 2
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_image_grid(grid[:, :3], args.out, nrow=nrow)
        print(f"ganfast sample: wrote a style-mixing grid to {args.out}")
        return 0
    if args.interpolate is not None:
        if ext != ".png":
            print("ganfast sample: --interpolate writes a picture: --out must end in .png", file=sys.stderr)
            return 2
        from .grid import save_image_grid
        g = torch.Generator().manual_seed(args.seed)
        rows = min(args.n, 8)
        start = model.sample_inputs(rows, generator=g)["latent"]
        end = model.sample_inputs(rows, generator=g)["latent"]
        try:
            with torch.no_grad():
                strip = model.interpolate(start.to(device), end.to(device), args.interpolate,
                                          truncation_psi=1.0 if args.truncation is None else args.truncation)
        except ValueError as err:
            print(f"ganfast sample: --interpolate: {err}", file=sys.stderr)
            return 2
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_image_grid(strip.float().cpu()[:, :3], args.out, nrow=args.interpolate)
        print(f"ganfast sample: wrote {rows} interpolation strips of {args.interpolate} images to {args.out}")
        return 0
    if args.truncation is not None:
        conditions["truncation_psi"] = args.truncation
    if args.truncation_cutoff is not None:
        conditions["truncation_cutoff"] = args.truncation_cutoff
    # The whole request's inputs are drawn at once from the seed on the CPU, then cut into batches: the
    # samples are a function of --seed and --n only, not of --batch-size or --device.
    everything = model.sample_inputs(args.n, generator=torch.Generator().manual_seed(args.seed))
    if "label" in everything and "label" not in conditions:  # classes 0..K-1 in turn
        everything["label"] = torch.arange(args.n) % model.num_classes
    chunks = []
    with torch.no_grad():
        for start in range(0, args.n, args.batch_size):
            n = min(args.batch_size, args.n - start)
            inputs = _rows(everything, start, start + n, args.n)
            inputs.update(conditions)
            inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else
                          [t.to(device) for t in v] if isinstance(v, list) and v and isinstance(v[0], torch.Tensor)
                          else v) for k, v in inputs.items()}
            try:
                chunks.append(model.sample(**inputs).float().cpu())
            except ValueError as err:
                print(f"ganfast sample: {err}", file=sys.stderr)
                return 2
    x = torch.cat(chunks)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if ext == ".npy":
        tmp = args.out + ".tmp.npy"
        np.save(tmp, x.numpy())
        os.replace(tmp, args.out)
    else:
        from .grid import save_image_grid, save_points_png
        if x.dim() == 4:
            nrow = model.grid_nrow(inputs) if args.label is None else None
            save_image_grid(x[:, :3], args.out, nrow=nrow)
        elif x.dim() == 2 and x.shape[1] == 2:
            save_points_png(x, args.out, reference=_modes(state))
        else:
            print(f"ganfast sample: samples of shape {tuple(x.shape[1:])} have no picture; write a .npy instead",
                  file=sys.stderr)
            return 2
    print(f"ganfast sample: wrote {args.n} samples to {args.out}")
    data = state["config"]["train"].get("data")
    if x.dim() == 2 and data in ("ring8", "grid25") and x.shape[1] == 2:
        from ..metrics import mode_coverage
        print(f"ganfast sample: {data}: {mode_coverage(x, data)}")
    return 0


def _modes(state: Dict[str, Any]):
    data = state["config"]["train"].get("data")
    if data in ("ring8", "grid25"):
        from ..data import mixture_modes
        return mixture_modes(data)[0]
    return None


# -- list ---------------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    from .. import data as gd
    from .. import losses as L
    from ..models import families
    from ..models.nets import FAMILIES

    def table(title: str, rows: List[tuple]) -> None:
        print(title)
        width = max(len(r[0]) for r in rows)
        for name, *rest in rows:
            print(f"  {name:<{width}}  {rest[0]}")
            for extra in rest[1:]:
                print(f"  {'':<{width}}  {extra}")
    what = args.what
    if what in (None, "models"):
        print("methods (--model), by family")
        for family, classes in families():
            table(f" {family}", [(c.name, c.summary, c.paper) for c in classes])
        if getattr(args, "options", False):
            _print_options()
    if what in (None, "networks"):
        table("network families (ganfast.models.nets)", [(k, desc) for k, (_, desc) in FAMILIES.items()])
    if what in (None, "datasets"):
        builtins = set(gd.names())
        table("datasets (--data), with the batch fields they fill",
              [(n, f"[{', '.join(gd.registry.batch_fields(n))}] {d}" if n in builtins else d)
               for n, d in gd.describe()])
        from ..data.dataset import LAYOUTS
        table("batch layouts (--data-layout)", list(LAYOUTS.items()))
    if what in (None, "losses"):
        table("losses and regularisers (--loss, -o gradient_penalty=10, -o r1=10, ...)", L.describe())
    return 0


def _print_options() -> None:
    from ..models import REGISTRY
    from ..models.options import option_rows

    for name, cls in REGISTRY.items():
        print(f"options of {name} (-o key=value)")
        for key, default, source in option_rows(cls.Options):
            print(f"  {key:<26} {default!r:<18} {source}")
