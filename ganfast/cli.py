"""The ``ganfast`` command (also ``python -m ganfast``).

Subcommands live here as thin argument parsers; the work is done in the
package that owns it (``ganfast.bench`` for ``bench``).  ``doctor`` is
implemented here: it only reads and reports, and always exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Any, Callable, Optional, Sequence

from ._version import __version__


# --- doctor ---------------------------------------------------------------


def _line(label: str, value: Any, width: int = 18) -> None:
    print(f"  {label:<{width}} {value}")


def _guard(fn: Callable[[], Any], what: str) -> Any:
    """Run one probe; report its failure instead of ending the report."""
    try:
        return fn()
    except Exception as err:
        _line(what, f"could not be determined: {type(err).__name__}: {err}")
        return None


def _nvcc() -> str:
    path = shutil.which("nvcc")
    if path is None:
        return "not found on PATH (the CUDA extension is built only where nvcc is found)"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError) as err:
        return f"{path} (`nvcc --version` failed: {err})"
    m = re.search(r"release ([\d.]+), (V[\w.]+)", out)
    return f"{path} (release {m.group(1)}, {m.group(2)})" if m else f"{path} ({out.strip().splitlines()[-1:]})"


def _versions() -> None:
    import torch

    print("versions")
    _line("ganfast", f"{__version__} ({os.path.dirname(os.path.abspath(__file__))})")
    _line("python", f"{platform.python_version()} ({sys.executable})")
    _line("torch", torch.__version__)
    cuda = torch.version.cuda
    _line("CUDA runtime", f"{cuda} (torch's)" if cuda else "none: this torch is a CPU-only build")
    if importlib.util.find_spec("triton") is None:
        _line("triton", "not installed")
    else:
        def triton_version() -> str:
            import triton
            return triton.__version__
        _line("triton", _guard(triton_version, "triton"))
    _line("nvcc", _nvcc())


def _extension() -> None:
    print("CUDA extension (ganfast._C)")
    try:
        from . import _cuda
    except Exception as err:
        _line("ganfast._cuda", f"not importable: {type(err).__name__}: {err}")
        return
    info = _guard(_cuda.build_info, "build info")
    if isinstance(info, dict):
        for key in ("cuda", "reason", "nvcc", "archs"):
            _line(f"build {key}", info.get(key, "-"))
        for key in sorted(set(info) - {"cuda", "reason", "nvcc", "archs"}):
            _line(f"build {key}", info[key])
    elif info is not None:
        _line("build info", info)
    st = _guard(_cuda.status, "ganfast._C")
    if st is not None:
        _line("ganfast._C", "built and loadable" if st else f"not loadable: {getattr(st, 'reason', st)}")


def _gpus() -> None:
    import torch

    print("GPU")
    if not torch.cuda.is_available():
        _line("CUDA device", "none visible to torch (torch.cuda.is_available() is False)")
        return
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        _line(f"cuda:{i}", f"{p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, "
                           f"{p.multi_processor_count} SMs")


def _backend_choice() -> None:
    import ganfast

    print("backend selection")
    _line("current backend", f"{ganfast.current_backend()} (ganfast.current_backend())")
    _line("GANFAST_BACKEND", os.environ.get("GANFAST_BACKEND", "<unset>"))
    interp = os.environ.get("TRITON_INTERPRET")
    meaning = ("Triton kernels run on CPU tensors through the interpreter (slow: for tests)" if interp == "1"
               else "Triton kernels run on CUDA tensors only")
    _line("TRITON_INTERPRET", f"{interp if interp is not None else '<unset>'} ({meaning})")


def _op_backends() -> None:
    import torch

    from . import _backend

    print("backends per op")
    try:
        ops = _backend.ops()
    except Exception as err:
        _line("ops", f"could not be loaded: {type(err).__name__}: {err}")
        return
    if not ops:
        _line("ops", "none registered")
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for op in ops:
        for dev in devices:
            for backend in _backend.BACKENDS:
                try:
                    a = _backend.status(op, backend, dev)
                    state = "available" if a else f"unavailable: {a.reason}"
                except Exception as err:
                    state = f"unknown: the check failed: {type(err).__name__}: {err}"
                print(f"  {op:<14} {dev:<5} {backend:<7} {state}")


def _kernels(args: argparse.Namespace) -> None:
    """--kernels: every Triton kernel compiled for the GPU targets, one line per case and target."""
    from .kernels import aot

    targets = [int(t) for t in args.kernels_targets.split(",") if t]
    print(f"Triton kernels compiled ahead of time (level {args.kernels_level}, targets "
          f"{', '.join('sm_' + str(t) for t in targets)}, filter {args.kernels_filter!r}; registers per thread, "
          f"spills in bytes per thread, shared memory per block)")

    def progress(done: int, total: int, result: Any) -> None:
        if done % 50 == 0 or done == total:
            print(f"  compiled {done}/{total}", file=sys.stderr, flush=True)

    results = aot.check(args.kernels_level, targets, args.kernels_filter, workers=args.kernels_workers,
                        progress=progress)
    print(aot.format_table(results))


def doctor(args: argparse.Namespace) -> int:
    """Print what ganfast can run here and why the rest cannot; always exits 0."""
    print(f"ganfast doctor ({__version__})")
    sections = [_versions, _extension, _gpus, _backend_choice, _op_backends]
    if getattr(args, "kernels", False):
        def kernels() -> None:
            _kernels(args)
        sections.append(kernels)
    for section in sections:
        try:
            section()
        except Exception as err:  # a report, not a check: keep going
            print(f"  ({section.__name__.strip('_')} failed: {type(err).__name__}: {err})")
    return 0


# --- bench ----------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    from .bench import command

    return command.run(args, argv=args._argv)


# --- fid ------------------------------------------------------------------


def _fid(args: argparse.Namespace) -> int:
    from .metrics import command as fid_command

    return fid_command.run(args)


# --- entry point ------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganfast",
        description="ganfast: fused Triton and CUDA kernels for GANs in PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"ganfast {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands")
    sub.required = True

    from .kernels.aot import LEVELS as kernel_levels  # imports neither Triton nor the kernels

    p = sub.add_parser("doctor", help="versions, GPU, extension build, and which backends can run here (and why not)")
    p.add_argument("--kernels", action="store_true",
                   help="also compile every Triton kernel for sm_90 and sm_80 (no GPU needed) and print registers, "
                        "spills and shared memory per kernel and configuration (minutes)")
    p.add_argument("--kernels-level", choices=kernel_levels, default="quick",
                   help="which block configurations (see ganfast.kernels.aot); default quick")
    p.add_argument("--kernels-filter", default="", metavar="TEXT",
                   help="only kernels whose '<module>.<kernel>' name contains TEXT")
    p.add_argument("--kernels-targets", default="90,80", metavar="CC,...", help="compute capabilities (default 90,80)")
    p.add_argument("--kernels-workers", type=int, default=2, metavar="N", help="compiling processes (default 2)")
    p.set_defaults(func=doctor)

    p = sub.add_parser(
        "bench",
        help="time ganfast's backends against PyTorch eager and torch.compile",
        description="Time every available ganfast backend of each op against the unfused PyTorch a user would "
                    "write (eager) and torch.compile of it, forward and forward+backward, and print one table "
                    "with GB/s and TFLOP/s against the device's peaks measured at start. Exits 1 if a "
                    "provider fails or disagrees with the float64 reference.",
    )
    from .bench import command

    command.add_arguments(p)
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "fid",
        help="FID between two folders of images or .npz statistics files",
        description="Frechet Inception Distance between A and B, each a folder of images or an .npz statistics "
                    "file (pytorch-fid's format: mu, sigma). Images are read as RGB and fed to the FID "
                    "Inception-v3, whose weights file (pt_inception-2015-12-05-6726825d.pth) must be given with "
                    "--weights or GANFAST_INCEPTION_WEIGHTS: nothing is downloaded. Prints 'FID: <value>'.",
    )
    from .metrics import command as fid_command

    fid_command.add_arguments(p)
    p.set_defaults(func=_fid)

    from .train import command as train_command

    p = sub.add_parser(
        "train",
        help="train a GAN (default: DCGAN on the built-in digits, a few minutes on a CPU)",
        description="Train a GAN method on a dataset with the method's paper defaults. Writes checkpoints, "
                    "metrics, a loss-curve PNG and sample grids under --out. Ctrl-C saves a checkpoint; "
                    "--resume continues exactly where the run stopped. Multi-process: "
                    "torchrun --nproc-per-node N -m ganfast train ...",
    )
    train_command.add_train_arguments(p)
    p.set_defaults(func=train_command.run_train)

    p = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid or a .npy array")
    train_command.add_sample_arguments(p)
    p.set_defaults(func=train_command.run_sample)

    from .train import translate as translate_command

    p = sub.add_parser("translate", help="run a trained translation model (pix2pix, cyclegan, recyclegan) on an "
                                         "image or a folder",
                       description="Translate every image of --input (a file, or a folder searched recursively) "
                                   "with the checkpoint's model and write one PNG per image under --out, with "
                                   "the input's relative name. Inputs are converted to the model's channels and "
                                   "resolution (shorter side scaled, centre crop).")
    translate_command.add_translate_arguments(p)
    p.set_defaults(func=translate_command.run_translate)

    from .train import upscale as upscale_command

    p = sub.add_parser("upscale", help="run a trained super-resolution model (srresnet, srgan) on an image or a "
                                       "folder; --evaluate reports PSNR/SSIM against bicubic",
                       description="Super-resolve every image of --input with the checkpoint's model and write one "
                                   "PNG per image under --out. With --evaluate the inputs are high-resolution "
                                   "references: each is downsampled, upscaled by the model and by bicubic "
                                   "interpolation, and PSNR and SSIM (scikit-image) are printed and written to "
                                   "metrics.json, with a bicubic | model | reference grid.png.")
    upscale_command.add_upscale_arguments(p)
    p.set_defaults(func=upscale_command.run_upscale)

    from .train import inpaint as inpaint_command

    p = sub.add_parser("inpaint", help="fill an image's hole with a trained unconditional generator (Yeh et al. "
                                       "2017: latent search, then Poisson blending)")
    inpaint_command.add_inpaint_arguments(p)
    p.set_defaults(func=inpaint_command.run_inpaint)

    p = sub.add_parser("list", help="the methods (by family, with their papers), networks, datasets, batch "
                                    "layouts and losses ganfast knows")
    p.add_argument("what", nargs="?", choices=["models", "networks", "datasets", "losses"], default=None)
    p.add_argument("--options", action="store_true", help="with models: every method's options, defaults "
                                                          "and their sources")
    p.set_defaults(func=train_command.run_list)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = argv
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
