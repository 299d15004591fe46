"""Benchmark cases for ``ganfast.ops.conv_transpose_bn_act`` (ConvTranspose2d -> BatchNorm2d -> ReLU).

Shapes: the BatchNorm layers of a DCGAN generator (nz 100, ngf 64, 64x64
output, batch 128) and of a 256x256 generator (batch 32), training and eval
mode.  Bytes and FLOPs are counted as for the discriminator block
(``ganfast/bench/conv_bn_act.py``), on the transposed convolution's output.
"""

from __future__ import annotations

from typing import List

from .conv_bn_act import ConvBNActCase, block_cases

OP = "conv_transpose_bn_act"

#: (name, input shape (N, Cin, H, W), Cout, stride, padding): a DCGAN
#: generator (100 -> 512 (1 -> 4), 512 -> 256 (8), 256 -> 128 (16), 128 -> 64
#: (32)) and a 256x256 generator at batch 32 (4x4 -> 128x128 with BatchNorm).
LAYERS = [
    ("dcgan64 L1", (128, 100, 1, 1), 512, 1, 0),
    ("dcgan64 L2", (128, 512, 4, 4), 256, 2, 1),
    ("dcgan64 L3", (128, 256, 8, 8), 128, 2, 1),
    ("dcgan64 L4", (128, 128, 16, 16), 64, 2, 1),
    ("g256 L2", (32, 512, 4, 4), 512, 2, 1),
    ("g256 L3", (32, 512, 8, 8), 512, 2, 1),
    ("g256 L4", (32, 512, 16, 16), 256, 2, 1),
    ("g256 L5", (32, 256, 32, 32), 128, 2, 1),
    ("g256 L6", (32, 128, 64, 64), 64, 2, 1),
]


def _gen(name, shape, cout, stride=2, padding=1, quick=False) -> List[ConvBNActCase]:
    return block_cases(name, shape, cout, 4, stride, padding, quick=quick, op=OP, transposed=True, slope=0.0)


def cases() -> List[ConvBNActCase]:
    """The conv_transpose_bn_act benchmark table: ``--quick`` cases first, then the full set."""
    out = _gen("tiny", (4, 8, 8, 8), cout=16, quick=True)
    for name, shape, cout, stride, padding in LAYERS:
        out += _gen(name, shape, cout, stride, padding)
    return out
