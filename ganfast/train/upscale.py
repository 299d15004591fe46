"""``ganfast upscale --ckpt F --input DIR|IMAGE --out DIR [--evaluate]``: a trained super-resolution model
(``srresnet``, ``srgan``) on image files.

Without ``--evaluate`` each input is read at its own size (converted to the
model's channels), super-resolved by the method's
:meth:`~ganfast.models.Method.translate` and written as a PNG ``scale`` times
larger under ``--out`` with the input's relative name (atomically, as
``ganfast translate`` writes).

With ``--evaluate`` the inputs are high-resolution references: each is
cropped at its top-left corner to sides that are multiples of ``scale``,
downsampled by the training's bicubic kernel
(:func:`ganfast.models.srgan.bicubic_downsample`), and upscaled both by the
model and by bicubic interpolation; PSNR and SSIM of each against the
reference come from scikit-image (``skimage.metrics.peak_signal_noise_ratio``
and ``structural_similarity``, on [0, 1] images, ``data_range=1``, 7x7
windows, channels averaged).  The command prints the means, writes every
row to ``metrics.json`` and a bicubic | model | reference grid of the first
16 images to ``grid.png`` under ``--out``, and the super-resolved images.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

__all__ = ["add_upscale_arguments", "run_upscale", "psnr_ssim"]


def add_upscale_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="a checkpoint file or a run directory (its latest checkpoint)")
    p.add_argument("--input", required=True, help="an image file, or a folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="the folder the outputs go to (created if missing)")
    p.add_argument("--evaluate", action="store_true",
                   help="treat the inputs as high-resolution references: downsample, upscale, report PSNR/SSIM "
                        "against bicubic")
    p.add_argument("--no-ema", action="store_true", help="the trained networks, not their EMA copies")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")


def _fail(message: str) -> int:
    print(f"ganfast upscale: {message}", file=sys.stderr)
    return 2


def psnr_ssim(pred, target) -> Dict[str, float]:
    """PSNR (dB) and SSIM of one image against its reference, both ``(C, H, W)`` tensors in [-1, 1].

    scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` on the images mapped to [0, 1]
    (``data_range=1``; SSIM with its default 7x7 window, over channels with ``channel_axis`` for colour).

    Raises:
        ValueError: different shapes, or sides below 7 (SSIM's window).
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if tuple(pred.shape) != tuple(target.shape) or pred.dim() != 3:
        raise ValueError(f"psnr_ssim needs two (C, H, W) images of one shape; got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if min(pred.shape[1:]) < 7:
        raise ValueError(f"SSIM needs sides >= 7 (its window); got {tuple(pred.shape)}")
    p = ((pred.detach().double().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    t = ((target.detach().double().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    if p.shape[2] == 1:
        p, t = p[..., 0], t[..., 0]
        ssim = structural_similarity(t, p, data_range=1.0)
    else:
        ssim = structural_similarity(t, p, data_range=1.0, channel_axis=2)
    return {"psnr": float(peak_signal_noise_ratio(t, p, data_range=1.0)), "ssim": float(ssim)}


def run_upscale(args: argparse.Namespace) -> int:
    import torch

    from ..data.folder import decode_image
    from .checkpoint import load_resolved
    from .grid import save_image_grid
    from .trainer import model_from_checkpoint
    from .translate import image_inputs, write_png

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
        return _fail(f"--out {args.out} would replace the input {args.input} by its super-resolution")
    try:
        state = load_resolved(args.ckpt)
    except (FileNotFoundError, ValueError) as err:
        return _fail(f"--ckpt: {err}")
    model = model_from_checkpoint(state, ema=not args.no_ema)
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int):
        return _fail(f"model {model.name!r} is not a super-resolution model (srresnet, srgan)")
    from ..models.srgan import bicubic_downsample, bicubic_upsample

    model.to(device).eval()
    channels = int(model.sample_shape[0])
    rows: List[Dict[str, object]] = []
    tiles = []
    for f, rel in inputs:
        try:
            x = decode_image(f, channels)
        except ValueError as err:
            return _fail(str(err))
        if args.evaluate:
            h, w = (x.shape[1] // scale) * scale, (x.shape[2] // scale) * scale
            if min(h, w) < max(7, scale):
                return _fail(f"--evaluate: {f} is {x.shape[2]}x{x.shape[1]} pixels; the reference must be at least "
                             f"{max(7, scale)} pixels a side after cropping to multiples of {scale}")
            hr = x[:, :h, :w]
            lr = bicubic_downsample(hr[None], scale)
        else:
            lr = x[None]
        with torch.no_grad():
            sr = model.translate(lr.to(device))[0].float().cpu().clamp(-1, 1)
        write_png(sr, os.path.join(args.out, rel))
        if args.evaluate:
            bic = bicubic_upsample(lr, scale)[0]
            row = {"file": rel, **{f"bicubic_{k}": v for k, v in psnr_ssim(bic, hr).items()},
                   **{f"{model.name}_{k}": v for k, v in psnr_ssim(sr, hr).items()}}
            rows.append(row)
            if len(tiles) < 16 and (not tiles or tiles[0][2].shape == hr.shape):  # the grid: one size
                tiles.append((bic, sr, hr))
    if not args.evaluate:
        print(f"ganfast upscale: wrote {len(inputs)} image{'s' if len(inputs) != 1 else ''} (x{scale}, "
              f"{model.name}) to {args.out}")
        return 0
    keys = [k for k in rows[0] if k != "file"]
    means = {k: sum(float(r[k]) for r in rows) / len(rows) for k in keys}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump({"scale": scale, "model": model.name, "images": len(rows), "mean": means, "rows": rows}, fh,
                  indent=1)
    save_image_grid(torch.stack([t for triplet in tiles for t in triplet]), os.path.join(args.out, "grid.png"),
                    nrow=6 if len(tiles) > 1 else 3)
    print(f"ganfast upscale: {len(rows)} reference image{'s' if len(rows) != 1 else ''}, x{scale}, "
          f"PSNR / SSIM (scikit-image, mean):")
    print(f"  bicubic        {means['bicubic_psnr']:7.2f} dB  {means['bicubic_ssim']:.4f}")
    print(f"  {model.name:<14} {means[f'{model.name}_psnr']:7.2f} dB  {means[f'{model.name}_ssim']:.4f}")
    print(f"ganfast upscale: wrote the super-resolved images, metrics.json and grid.png to {args.out}")
    return 0
