"""Functional ops, one module per op: public function, custom-op registration, autograd.

Importing this package registers every op with ``ganfast._backend``.
"""

from .bias_act import bias_act
from .conv_bn_act import conv_bn_act
from .conv_transpose2d import conv_transpose2d
from .conv_transpose_bn_act import conv_transpose_bn_act
from .feature_stats import feature_stats_update
from .minibatch_discrimination import minibatch_discrimination
from .minibatch_stddev import minibatch_stddev
from .self_attention2d import self_attention2d
from .sqrtm import sqrtm, sqrtm_trace

__all__ = ["bias_act", "conv_bn_act", "conv_transpose2d", "conv_transpose_bn_act", "sqrtm", "sqrtm_trace"]
__all__ += ["feature_stats_update"]
__all__ += ["minibatch_discrimination", "minibatch_stddev"]
__all__ += ["self_attention2d"]
