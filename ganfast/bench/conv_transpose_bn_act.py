"""Benchmark cases for ``ganfast.ops.conv_transpose_bn_act`` (ConvTranspose2d -> BatchNorm2d -> ReLU).

Shapes: the BatchNorm layers of a DCGAN generator (nz 100, ngf 64, 64x64
output, batch 128) and of a 256x256 generator (batch 32), training and eval
mode.  Bytes and FLOPs are counted as for the discriminator block
(``ganfast/bench/conv_bn_act.py``), on the transposed convolution's output.
"""

from __future__ import annotations

from typing import List

from .conv_bn_act import ConvBNActCase, _case

OP = "conv_transpose_bn_act"


def _gen(name, shape, cout, k=4, stride=2, padding=1, quick=False) -> List[ConvBNActCase]:
    return _case(name, shape, cout, k, stride, padding, quick=quick, op=OP, transposed=True, slope=0.0)


def cases() -> List[ConvBNActCase]:
    out: List[ConvBNActCase] = []
    out += _gen("tiny", (4, 8, 8, 8), cout=16, quick=True)
    # DCGAN generator: 100 -> 512 (1 -> 4), 512 -> 256 (8), 256 -> 128 (16), 128 -> 64 (32).
    out += _gen("dcgan64 L1", (128, 100, 1, 1), cout=512, stride=1, padding=0)
    out += _gen("dcgan64 L2", (128, 512, 4, 4), cout=256)
    out += _gen("dcgan64 L3", (128, 256, 8, 8), cout=128)
    out += _gen("dcgan64 L4", (128, 128, 16, 16), cout=64)
    # 256x256 generator, batch 32: 4x4 -> 128x128 with BatchNorm.
    out += _gen("g256 L2", (32, 512, 4, 4), cout=512)
    out += _gen("g256 L3", (32, 512, 8, 8), cout=512)
    out += _gen("g256 L4", (32, 512, 16, 16), cout=256)
    out += _gen("g256 L5", (32, 256, 32, 32), cout=128)
    out += _gen("g256 L6", (32, 128, 64, 64), cout=64)
    return out
