"""Functional ops, one module per op: public function, argument check, custom-op registration, autograd.

Which ops exist, and which backends each has, is the table
``ganfast._backend.OPS``; importing this package imports every op module,
and each registers its implementations there.  How to add an op:
docs/adding-an-op.md.
"""

from .bias_act import bias_act
from .bias_act_pixel_norm import bias_act_pixel_norm
from .conv_bn_act import conv_bn_act
from .conv_transpose2d import conv_transpose2d
from .conv_transpose_bn_act import conv_transpose_bn_act
from .feature_stats import feature_stats, feature_stats_update
from .instance_norm_act import instance_norm_act
from .minibatch_discrimination import minibatch_discrimination
from .minibatch_stddev import minibatch_stddev
from .modulated_conv2d import conv2d_resample, modulated_conv2d
from .self_attention2d import self_attention2d
from .sqrtm import sqrtm, sqrtm_trace
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "bias_act",
    "bias_act_pixel_norm",
    "conv_bn_act",
    "conv_transpose2d",
    "conv_transpose_bn_act",
    "feature_stats",
    "feature_stats_update",
    "instance_norm_act",
    "minibatch_discrimination",
    "minibatch_stddev",
    "modulated_conv2d",
    "conv2d_resample",
    "self_attention2d",
    "sqrtm",
    "sqrtm_trace",
    "upfirdn2d",
    "upsample2d",
    "downsample2d",
    "filter2d",
    "setup_filter",
]
