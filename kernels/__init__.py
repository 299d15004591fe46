"""Triton kernels, one module per op family (installed as ``ganfast.kernels``).

Whether the kernels run under the CPU interpreter is fixed when they are
defined, so it is recorded here, once, at import.  Tests set
``TRITON_INTERPRET=1`` before importing anything when no GPU is present.
"""

import os

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
