"""The layers that look across the minibatch, by their former module name.

``MinibatchStdDev`` lives in :mod:`ganfast.nn.minibatch_stddev` and
``MinibatchDiscrimination`` in :mod:`ganfast.nn.minibatch_discrimination`,
one module per op; this module keeps ``from ganfast.nn.minibatch import ...``
working.
"""

from .minibatch_discrimination import MinibatchDiscrimination
from .minibatch_stddev import MinibatchStdDev

__all__ = ["MinibatchDiscrimination", "MinibatchStdDev"]
