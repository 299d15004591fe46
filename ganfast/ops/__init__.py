"""Functional ops, one module per op: public function, custom-op registration, autograd.

Importing this package registers every op with ``ganfast._backend``.
"""

from .bias_act import bias_act
from .conv_bn_act import conv_bn_act

__all__ = ["bias_act", "conv_bn_act"]
