"""``ganfast translate --ckpt F --input DIR|IMAGE --out DIR``: a trained translation model on image files.

Each input image is read as the model's input domain expects it (channels
converted, the shorter side scaled to the model's resolution and centre
cropped: :func:`ganfast.data.folder.decode_image`), translated by the
method's :meth:`~ganfast.models.Method.translate`, and written as a PNG of
the output at the model's resolution under ``--out`` with the input's name
(and its sub-folders, for a folder input).  Files are written atomically
(a temporary name, then a rename); ``--out`` may not be the input folder,
images already under ``--out`` (inside the input folder) are not read, and
two inputs that would write one output name (``x.jpg``, ``x.png``) are refused.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import List, Tuple

__all__ = ["add_translate_arguments", "run_translate", "image_inputs", "write_png"]


def add_translate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="a checkpoint file or a run directory (its latest checkpoint)")
    p.add_argument("--input", required=True, help="an image file, or a folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="the folder the translated PNGs go to (created if missing)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB",
                   help="AtoB (default): the direction the model was trained in; BtoA for two-way models")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model's own noise (pix2pix's dropout)")
    p.add_argument("--no-ema", action="store_true", help="the trained networks, not their EMA copies")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")


def _fail(message: str) -> int:
    print(f"ganfast translate: {message}", file=sys.stderr)
    return 2


def image_inputs(path: str, out: str) -> List[Tuple[str, str]]:
    """``(file, output name)`` of every input image (files under ``out`` skipped: an earlier run's outputs).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not an image file, no images, or two inputs that would write the same output
            (``x.jpg`` and ``x.png`` side by side).
    """
    from ..data.folder import is_image_name, list_images

    if os.path.isfile(path):
        if not is_image_name(os.path.basename(path)):
            raise ValueError(f"--input {path} is not an image file (png, jpg, ...)")
        return [(path, os.path.splitext(os.path.basename(path))[0] + ".png")]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input {path} does not exist")
    skip = os.path.realpath(out) + os.sep
    files = [f for f in list_images(path) if not os.path.realpath(f).startswith(skip)]
    if not files:
        raise ValueError(f"--input {path} holds no image files")
    named: dict = {}
    for f in files:
        name = os.path.splitext(os.path.relpath(f, path))[0] + ".png"
        if name in named:
            raise ValueError(f"--input: {named[name]} and {f} would both be written as {name}; rename one")
        named[name] = f
    return [(f, name) for name, f in named.items()]


def write_png(image, path: str) -> None:
    """``(C, H, W)`` in [-1, 1] -> an 8-bit PNG (gray or RGB), written atomically."""
    import numpy as np
    from PIL import Image

    x = image.detach().float().cpu().clamp(-1, 1)
    pixels = np.rint((x.numpy() + 1.0) * 127.5).astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels[:3].transpose(1, 2, 0)
    folder = os.path.dirname(path) or "."  # a bare file name: the current folder
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        Image.fromarray(pixels).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def run_translate(args: argparse.Namespace) -> int:
    import torch

    from ..data.folder import decode_image
    from ..models.method import Method
    from .checkpoint import load_resolved
    from .trainer import model_from_checkpoint

    if args.batch_size < 1:
        return _fail(f"--batch-size must be a positive int; got {args.batch_size}")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        return _fail(f"--device: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        return _fail(f"--device {args.device!r} was asked for but torch sees no CUDA device")
    if os.path.isdir(args.input) and os.path.realpath(args.out) == os.path.realpath(args.input):
        return _fail("--out must not be the --input folder (the outputs would replace the inputs)")
    try:
        inputs = image_inputs(args.input, args.out)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    if os.path.isfile(args.input) and \
            os.path.realpath(os.path.join(args.out, inputs[0][1])) == os.path.realpath(args.input):
        return _fail(f"--out {args.out} would replace the input {args.input} by its translation")
    try:
        state = load_resolved(args.ckpt)
    except (FileNotFoundError, ValueError) as err:
        return _fail(f"--ckpt: {err}")
    model = model_from_checkpoint(state, ema=not args.no_ema)
    if type(model).translate is Method.translate:
        return _fail(f"model {model.name!r} does not translate images (translation models: pix2pix, cyclegan, "
                     f"recyclegan)")
    model.to(device).eval()
    kwargs = {} if args.direction == "AtoB" else {"direction": args.direction}
    # two-way models read the input domain of the direction asked for (B's channels for BtoA)
    shape = model.input_shape(args.direction) if hasattr(model, "input_shape") else model.sample_shape
    channels, size = int(shape[0]), int(shape[-1])
    torch.manual_seed(args.seed)
    written = 0
    for start in range(0, len(inputs), args.batch_size):
        chunk = inputs[start:start + args.batch_size]
        try:
            x = torch.stack([decode_image(f, channels, size) for f, _ in chunk]).to(device)
        except ValueError as err:
            return _fail(str(err))
        try:
            with torch.no_grad():
                y = model.translate(x, **kwargs)
        except ValueError as err:
            return _fail(f"--direction {args.direction}: {err}")
        for (_, rel), image in zip(chunk, y):
            write_png(image, os.path.join(args.out, rel))
            written += 1
    print(f"ganfast translate: wrote {written} image{'s' if written != 1 else ''} ({model.name}, "
          f"{args.direction}) to {args.out}")
    return 0
