"""What one benchmark case declares, independent of the op.

A per-op module (``ganfast/bench/<op>.py``) subclasses :class:`BenchCase`
and returns a list of them from ``cases()``.  The runner does the rest:
providers, correctness check, timing, bandwidth and rate against the
measured peaks.

A case names two pieces of code: ``ganfast`` (the registered op, with a
``backend=``) and ``eager`` (the unfused PyTorch a user would write without
ganfast; it is also what ``torch.compile`` is given).  The eager code is the
baseline a user compares against; it is deliberately not ``ganfast.ref``,
whose job is to define correct results, not to be a realistic competitor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

FWD = "fwd"
FWD_BWD = "fwd+bwd"
PASSES: Tuple[str, ...] = (FWD, FWD_BWD)

DTYPES: Dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}
DTYPE_ALIASES: Dict[str, str] = {
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float": "float32",
}
SHORT: Dict[str, str] = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def dtype_name(name: str) -> str:
    """Canonical dtype name (``bfloat16``, ``float16``, ``float32``) for a user spelling."""
    key = name.strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPES:
        valid = sorted(set(DTYPES) | set(DTYPE_ALIASES))
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(valid)}")
    return key


@dataclasses.dataclass
class Inputs:
    """Tensors for one call.

    ``args`` are passed positionally to both the ganfast and the eager code;
    ``grads`` are the leaves whose gradients a fwd+bwd pass computes.
    """

    args: Tuple[Any, ...]
    grads: List[torch.Tensor]


@dataclasses.dataclass(frozen=True)
class BenchCase:
    """One problem: an op, its shape and its non-tensor arguments.

    Subclasses implement :meth:`make_inputs`, :meth:`ganfast`, :meth:`eager`,
    :meth:`bytes_moved` and :meth:`flops`.  ``dtypes`` are the dtypes timed
    when the command line names none; ``passes`` and ``devices`` limit the
    passes and device types the case is run on.  ``quick`` cases are small and make up
    the ``--quick`` set (for CI on a CPU); the others make up the full set.
    """

    op: str
    name: str
    shape: Tuple[int, ...]
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dtypes: Tuple[str, ...] = ("bfloat16", "float32")
    quick: bool = False
    # The passes that exist for this case (a statistics op has no backward), and
    # the device types it is timed on (a baseline taking minutes per call on a
    # CPU is left to the GPU).
    passes: Tuple[str, ...] = PASSES
    devices: Tuple[str, ...] = ("cpu", "cuda")

    # --- to implement per op ------------------------------------------------

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        raise NotImplementedError

    def ganfast(self, *args: Any, backend: Optional[str] = None) -> torch.Tensor:
        """The registered ganfast op on ``args`` with ``backend``."""
        raise NotImplementedError

    def eager(self) -> Callable[..., torch.Tensor]:
        """A plain function of ``args``: what a user writes in unfused PyTorch."""
        raise NotImplementedError

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        """Fewest bytes the pass must move through device memory."""
        raise NotImplementedError

    def flops(self, pass_: str) -> int:
        """Floating-point operations the pass performs (nominal count)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def shape_str(self) -> str:
        return "x".join(str(s) for s in self.shape)

    def describe(self) -> Dict[str, Any]:
        return {"op": self.op, "case": self.name, "shape": list(self.shape), "params": dict(self.params)}


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64; inf if NaN/inf positions differ."""
    out = out.detach().to(torch.float64)
    ref = ref.detach().to(torch.float64)
    if out.shape != ref.shape:
        return math.inf
    if not torch.equal(torch.isfinite(out), torch.isfinite(ref)):
        return math.inf
    finite = torch.isfinite(ref)
    num = torch.linalg.vector_norm((out - ref)[finite]).item()
    den = torch.linalg.vector_norm(ref[finite]).item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def max_rel_err(outs: Sequence[torch.Tensor], refs: Sequence[torch.Tensor]) -> float:
    return max((rel_err(o, r) for o, r in zip(outs, refs)), default=0.0)
