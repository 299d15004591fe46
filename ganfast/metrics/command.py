"""The ``ganfast fid`` command: FID between two image folders or ``.npz`` statistics files."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional

import torch
from tqdm import tqdm

from .fid import feature_extractor, reliability_warnings
from .frechet import frechet_distance
from .images import IMAGE_EXTENSIONS, batches, list_images
from .inception import INCEPTION_WEIGHTS_ENV
from .stats import FeatureStats


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="PATH",
                   help="two inputs to compare (A B), each a folder of images or an .npz statistics file "
                        "(pytorch-fid's format); or one input with --save-stats")
    p.add_argument("--save-stats", action="append", metavar="FILE",
                   help="write the statistics (mu, sigma, num_samples) of A to FILE (.npz); given twice, the "
                        "second FILE gets B's")
    p.add_argument("--weights", metavar="FILE",
                   help=f"Inception weights (pt_inception-2015-12-05-6726825d.pth); default: ${INCEPTION_WEIGHTS_ENV}")
    p.add_argument("--batch-size", type=int, default=50, metavar="N", help="images per forward pass (default 50)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--num-workers", type=int, default=0, metavar="N",
                   help="processes decoding images (default 0: in the main process)")
    p.add_argument("--recursive", action="store_true", help="also read images in subfolders")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


class UsageError(ValueError):
    pass


def _err(msg: str) -> None:
    print(f"ganfast fid: error: {msg}", file=sys.stderr, flush=True)


def progress_bar(label: str, total: int, enabled: bool = True) -> tqdm:
    """tqdm's bar on stderr: ``label: 40%|####  | 20/50 images [00:02<00:03, 9.8 images/s]``.

    Redrawn in place on a terminal; elsewhere (a log file, a pipe) at most
    every 5 seconds and once at the end, so a log stays short.  ``enabled``
    False (``--no-progress``) writes nothing.
    """
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=label, unit=" images", disable=not enabled, file=sys.stderr,
                mininterval=0.1 if tty else 5.0, dynamic_ncols=tty,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} images "
                           "[{elapsed}<{remaining}, {rate_fmt}]")


def _device(arg: Optional[str]) -> torch.device:
    if arg is None:
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(arg)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA device")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda[:N]; got {arg!r}")
    return dev


def _is_stats(path: str) -> bool:
    return path.lower().endswith(".npz")


def statistics_of(path: str, extract: Callable[[], Callable], args: argparse.Namespace, label: str,
                  device: torch.device) -> FeatureStats:
    """Statistics of one input: loaded from an .npz, or computed from a folder of images."""
    if _is_stats(path):
        return FeatureStats.load(path, device=device)
    if not os.path.isdir(path):
        raise UsageError(f"{label} ({path}) must be a folder of images or an .npz statistics file")
    files = list_images(path, recursive=args.recursive)
    if len(files) < 2:
        raise UsageError(
            f"{label} ({path}) holds {len(files)} image file(s) ({', '.join(IMAGE_EXTENSIONS)}); FID needs at "
            f"least 2{'' if args.recursive else ' (use --recursive to include subfolders)'}"
        )
    fn = extract()
    stats = FeatureStats(device=device)
    stats.min_side = None
    with progress_bar(f"{label} {path}", len(files), enabled=not args.no_progress) as bar:
        for images in batches(files, args.batch_size, args.num_workers):
            stats.update(fn(images))
            side = min(images.shape[-2:])
            stats.min_side = side if stats.min_side is None else min(stats.min_side, side)
            bar.update(images.shape[0])
    return stats


def run(args: argparse.Namespace) -> int:
    try:
        if len(args.inputs) > 2:
            raise UsageError(f"give one or two inputs; got {len(args.inputs)}")
        if len(args.inputs) == 1 and not args.save_stats:
            raise UsageError("give two inputs to compare (A B), or one input and --save-stats FILE")
        if args.save_stats and len(args.save_stats) > len(args.inputs):
            raise UsageError(f"--save-stats is given once per input at most ({len(args.inputs)}); got "
                             f"{len(args.save_stats)}")
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1; got {args.batch_size}")
        if args.num_workers < 0:
            raise UsageError(f"--num-workers must be >= 0; got {args.num_workers}")
        device = _device(args.device)
        for path in args.inputs:
            if not os.path.exists(path):
                raise UsageError(f"{path} does not exist")
    except UsageError as err:
        _err(str(err))
        return 2

    model = []

    def extract():
        if not model:  # loaded once, only when some input is a folder
            model.append(feature_extractor(weights=args.weights, device=device))
        return model[0]

    try:
        stats = [statistics_of(p, extract, args, "AB"[i], device) for i, p in enumerate(args.inputs)]
        for path, stat, out in zip(args.inputs, stats, args.save_stats or []):
            stat.save(out)
            count = stat.count if stat.mergeable else "an unknown number of"
            print(f"wrote the statistics of {path} ({count} samples) to {out}", file=sys.stderr)
        if len(stats) == 2:
            a, b = stats
            if a.num_features != b.num_features:
                raise UsageError(f"A has {a.num_features}-d statistics and B {b.num_features}-d; they must match")
            value = frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance())
            sides = [s for s in (getattr(a, "min_side", None), getattr(b, "min_side", None)) if s is not None]
            for message in reliability_warnings({"A": a.count if a.mergeable else None,
                                                 "B": b.count if b.mergeable else None},
                                                a.num_features, min(sides) if sides else None):
                print(f"ganfast fid: warning: {message}", file=sys.stderr)
            print(f"FID: {value:.6f}")
    except UsageError as err:
        _err(str(err))
        return 2
    except (FileNotFoundError, ValueError, NotADirectoryError) as err:  # a missing or unreadable input: the user's
        _err(str(err))
        return 2
    except RuntimeError as err:  # the computation failed
        _err(str(err))
        return 1
    return 0
