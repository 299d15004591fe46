"""Drop-in modules built on :mod:`ganfast.ops`, and :func:`convert`."""

from .bias_act import BiasAct
from .conv_bn_act import ConvBNLeakyReLU2d
from .conv_instance_norm_act import ConvInstanceNormAct2d, ConvTransposeInstanceNormAct2d
from .conv_transpose_bn_act import ConvTransposeBNReLU2d
from .minibatch_discrimination import MinibatchDiscrimination
from .minibatch_stddev import MinibatchStdDev
from .self_attention2d import SelfAttention2d
from .convert import convert
from .equalized_lr import EqualizedScale, equalized_lr
from .pixel_norm import BiasLeakyReLUPixelNorm, PixelNorm

__all__ = ["BiasAct", "ConvBNLeakyReLU2d", "ConvTransposeBNReLU2d", "convert"]
__all__ += ["MinibatchDiscrimination", "MinibatchStdDev"]
__all__ += ["SelfAttention2d"]
__all__ += ["ConvInstanceNormAct2d", "ConvTransposeInstanceNormAct2d"]
__all__ += ["BiasLeakyReLUPixelNorm", "EqualizedScale", "PixelNorm", "equalized_lr"]
