"""A whole DCGAN training iteration: ganfast's layers against torch.nn and torch.compile, interleaved.

Two models, both timed as a user trains them:

``examples``
    the DCGAN of the PyTorch examples (``examples/dcgan/main.py``: Radford et
    al. 2016's architecture; ``ConvTranspose2d -> BatchNorm2d -> ReLU(True)``
    blocks in G, ``Conv2d -> BatchNorm2d -> LeakyReLU(0.2, True)`` in D, BCE,
    Adam(2e-4, betas (0.5, 0.999))), with as many blocks as the size needs
    (64x64: the example's own four), built from torch.nn.  Providers:
    ``torch.nn`` (the model as written), ``ganfast`` (the same weights after
    :func:`ganfast.nn.convert`, backend ``auto``) and ``compile``
    (``torch.compile`` of the torch.nn G and D).
``ganfast``
    the networks of ``ganfast train --model dcgan`` (the README's main job)
    through the method's own ``train_step``: ``ganfast`` (its fused layers)
    against ``torch.nn`` (every fused block replaced by
    ``Sequential(conv, bn, act)`` of the same modules) and ``compile``.

One iteration is one D step on a real and a fake batch and one G step, with
the optimisers' updates.  Timing: each round runs one iteration of every
provider, in an order rotated every round, so that a loaded machine slows
them alike (CUDA: events around each iteration, synchronised); median and
20/80 percentiles over the rounds, after warm-up rounds (which include
``torch.compile``'s compilation).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .timing import quantile

PROVIDERS = ("torch.nn", "ganfast", "compile")


def examples_dcgan(nc: int, size: int, nz: int = 100, ngf: int = 64, ndf: int = 64) -> Tuple[nn.Module, nn.Module]:
    """``(G, D)`` of the PyTorch examples' DCGAN for ``size`` x ``size`` images (size 16, 32, 64, 128, ...).

    G maps ``(N, nz, 1, 1)`` noise to ``(N, nc, size, size)`` in [-1, 1]; D
    maps images to ``(N,)`` probabilities.  ``log2(size) - 3`` inner blocks
    (three at 64x64, the example's network exactly).

    Raises:
        ValueError: ``size`` is not a power of two of at least 16.
    """
    n = int(round(math.log2(size))) - 3 if size > 0 else -1
    if n < 1 or 2 ** (n + 3) != size:
        raise ValueError(f"size must be a power of two >= 16; got {size}")
    g: List[nn.Module] = [nn.ConvTranspose2d(nz, ngf * 2 ** n, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2 ** n),
                          nn.ReLU(True)]
    for i in range(n, 0, -1):
        g += [nn.ConvTranspose2d(ngf * 2 ** i, ngf * 2 ** (i - 1), 4, 2, 1, bias=False),
              nn.BatchNorm2d(ngf * 2 ** (i - 1)), nn.ReLU(True)]
    g += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
    d: List[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for i in range(n):
        d += [nn.Conv2d(ndf * 2 ** i, ndf * 2 ** (i + 1), 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2 ** (i + 1)),
              nn.LeakyReLU(0.2, inplace=True)]
    d += [nn.Conv2d(ndf * 2 ** n, 1, 4, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten(0)]
    return nn.Sequential(*g), nn.Sequential(*d)


def unfuse(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose fused conv blocks are plain torch.nn (same weights, same keys)."""
    import ganfast

    out = copy.deepcopy(module)
    fused = (ganfast.nn.ConvBNLeakyReLU2d, ganfast.nn.ConvTransposeBNReLU2d)
    for _, child in list(out.named_modules()):
        for cname, c in list(child.named_children()):
            if isinstance(c, fused):
                act = nn.LeakyReLU(c.negative_slope) if c.negative_slope > 0 else nn.ReLU()
                setattr(child, cname, nn.Sequential(OrderedDict(conv=c.conv, bn=c.bn, act=act)))
    return out


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _examples_step(G: nn.Module, D: nn.Module, real: torch.Tensor, nz: int, amp: str) -> Callable[[], None]:
    """One iteration of the PyTorch examples' training loop on ``real`` (fixed batch)."""
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    device, n = real.device, real.shape[0]
    ones = torch.ones(n, device=device)
    zeros = torch.zeros(n, device=device)

    def step() -> None:
        # Forward passes under autocast, the losses outside it (BCELoss is not autocast-safe).
        ac = _autocast(device, amp)
        D.zero_grad(set_to_none=True)
        with ac:
            out_real = D(real)
        bce(out_real.float(), ones).backward()
        with ac:
            fake = G(torch.randn(n, nz, 1, 1, device=device))
            out_fake = D(fake.detach())
        bce(out_fake.float(), zeros).backward()
        opt_d.step()
        G.zero_grad(set_to_none=True)
        with ac:
            out_g = D(fake)
        bce(out_g.float(), ones).backward()
        opt_g.step()

    return step


def _method_step(model: Any, real: torch.Tensor, amp: str) -> Callable[[], None]:
    from ganfast.models import StepContext

    class _Ctx(StepContext):
        def autocast(self):
            return _autocast(real.device, amp)

    opts, ctx = model.make_optimizers(), _Ctx()

    def step() -> None:
        model.train_step(lambda: (real, None), opts, ctx)

    return step


def build_steps(model: str, size: int, batch: int, channels: int, device: torch.device, amp: str,
                providers: Sequence[str] = PROVIDERS, seed: int = 0) -> Dict[str, Callable[[], None]]:
    """``{provider: one training iteration}`` for ``model`` (``examples`` or ``ganfast``), same initial weights.

    Raises:
        ValueError: an unknown model or provider name.
    """
    import ganfast
    from ganfast.models import build

    for p in providers:
        if p not in PROVIDERS:
            raise ValueError(f"providers must be among {PROVIDERS}; got {p!r}")
    torch.manual_seed(seed)
    real = torch.rand(batch, channels, size, size, device=device) * 2 - 1
    steps: Dict[str, Callable[[], None]] = {}
    if model == "examples":
        G, D = examples_dcgan(channels, size)
        G, D = G.to(device), D.to(device)
        for p in providers:
            g, d = copy.deepcopy(G), copy.deepcopy(D)
            if p == "ganfast":
                g, d = ganfast.nn.convert(g), ganfast.nn.convert(d)
            elif p == "compile":
                g, d = torch.compile(g), torch.compile(d)
            steps[p] = _examples_step(g, d, real, 100, amp)
    elif model == "ganfast":
        fused = build("dcgan", sample_shape=(channels, size, size)).to(device)
        for p in providers:
            m = copy.deepcopy(fused)
            if p != "ganfast":
                m.G, m.D = unfuse(fused.G), unfuse(fused.D)
            if p == "compile":
                m.G, m.D = torch.compile(m.G), torch.compile(m.D)
            steps[p] = _method_step(m, real, amp)
    else:
        raise ValueError(f"model must be 'examples' or 'ganfast'; got {model!r}")
    return steps


def time_interleaved(steps: Dict[str, Callable[[], None]], device: torch.device, rounds: int, warmup: int
                     ) -> Dict[str, Dict[str, float]]:
    """Median and 20/80% quantiles (ms) of each step over ``rounds`` interleaved rounds, rotated order."""
    names = list(steps)
    times: Dict[str, List[float]] = {k: [] for k in names}
    cuda = device.type == "cuda"
    for r in range(warmup + rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            steps[name]()
            if cuda:
                torch.cuda.synchronize(device)
            if r >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for name, ts in times.items():
        out[name] = {"median_ms": quantile(ts, 0.5), "p20_ms": quantile(ts, 0.2), "p80_ms": quantile(ts, 0.8),
                     "rounds": len(ts)}
    return out


def run(model: str = "examples", size: int = 16, batch: int = 128, channels: int = 1,
        device: Optional[torch.device] = None, amp: str = "none", rounds: int = 16, warmup: int = 3,
        providers: Sequence[str] = PROVIDERS) -> Dict[str, Any]:
    """Build and time; returns ``{"rows": {provider: stats}, "speedup": {provider: torch.nn / provider}, ...}``."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps = build_steps(model, size, batch, channels, device, amp, providers)
    rows = time_interleaved(steps, device, rounds, warmup)
    base = rows.get("torch.nn", {}).get("median_ms")
    speedup = {k: base / r["median_ms"] for k, r in rows.items()} if base else {}
    return {"model": model, "size": size, "batch": batch, "channels": channels, "amp": amp, "device": str(device),
            "rounds": rounds, "warmup": warmup, "rows": rows, "speedup": speedup}


def format_result(res: Dict[str, Any]) -> str:
    """The result as a few table lines."""
    lines = [f"DCGAN training iteration ({res['model']} model) {res['size']}x{res['size']}x{res['channels']}, "
             f"batch {res['batch']}, amp {res['amp']}, {res['device']}: {res['rounds']} interleaved rounds "
             f"after {res['warmup']} warm-up"]
    for k, r in res["rows"].items():
        s = res["speedup"].get(k)
        lines.append(f"  {k:<9} median {r['median_ms']:9.2f} ms  (p20 {r['p20_ms']:9.2f}, p80 {r['p80_ms']:9.2f})"
                     + (f"  speed vs torch.nn {s:.2f}x" if s else ""))
    return "\n".join(lines)
