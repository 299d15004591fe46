"""Plain-PyTorch references: the definition of correct for every op.

One module per op (``ganfast.ref.<op>``), imported by the torch backend, the
tests and the benchmarks.
"""
