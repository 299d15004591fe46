"""Streaming feature statistics: mean and covariance, batch by batch, across processes.

:class:`FeatureStats` keeps shifted float64 sufficient statistics (``N``,
shift ``c``, ``sum (x - c)``, ``sum (x - c)(x - c)^T``; why, and why it is
exact: :mod:`ganfast.ref.feature_stats`), updated by the registered op
:func:`ganfast.ops.feature_stats`.  Two sets of statistics merge
exactly (Chan et al.'s pairwise update, written for shifted sums), which is
also how :meth:`FeatureStats.all_reduce` combines processes: every rank
re-expresses its sums about the global mean, then one all-reduce adds them.

Files are ``.npz`` with keys ``mu`` and ``sigma`` (``numpy.cov``'s unbiased
covariance), the format pytorch-fid writes and reads, plus ``num_samples``,
which pytorch-fid ignores and which makes a loaded file mergeable again.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from ..ops.feature_stats import feature_stats
from .frechet import as_features

Tensor = torch.Tensor
PathLike = Union[str, "os.PathLike[str]"]


class FeatureStats:
    """Mean and covariance of features, accumulated batch by batch.

    Example::

        stats = FeatureStats()
        for images in loader:
            stats.update(inception(images))
        stats.all_reduce()                # under torch.distributed: every rank gets the total
        mu, sigma = stats.mean(), stats.covariance()
        stats.save("real.npz")            # pytorch-fid's format

    Args:
        num_features: ``d``; taken from the first batch when None.
        device: where the float64 accumulators live; default: the device of
            the first batch.  A ``(d, d)`` float64 Gram matrix is 32 MiB at
            ``d = 2048``.
        backend: backend of the update op (``"torch"``, ``"triton"``,
            ``"auto"``; None: the current choice).

    Statistics loaded from a file without a sample count (pytorch-fid's own
    files) can be used for FID but not updated or merged: the count is what
    weighs them against new samples.
    """

    def __init__(self, num_features: Optional[int] = None, *, device: Any = None,
                 backend: Optional[str] = None) -> None:
        if num_features is not None and (isinstance(num_features, bool) or not isinstance(num_features, int)
                                         or num_features < 1):
            raise ValueError(f"num_features must be a positive int or None; got {num_features!r}")
        self.num_features: Optional[int] = num_features
        self.device: Optional[torch.device] = torch.device(device) if device is not None else None
        self.backend = backend
        self.count: int = 0
        self._shift: Optional[Tensor] = None
        self._total: Optional[Tensor] = None
        self._gram: Optional[Tensor] = None
        # (mu, sigma) of statistics loaded without a sample count; None otherwise.
        self._fixed: Optional[Tuple[Tensor, Tensor]] = None
        self.source: Optional[str] = None  # the file these were loaded from, for messages

    # -- accumulation -----------------------------------------------------------------

    def _allocate(self, d: int, device: torch.device, shift: Tensor) -> None:
        self.num_features = d
        self.device = device
        self._shift = shift.to(device=device, dtype=torch.float64).clone()
        self._total = torch.zeros(d, dtype=torch.float64, device=device)
        self._gram = torch.zeros(d, d, dtype=torch.float64, device=device)

    def _check_mutable(self, what: str) -> None:
        if self._fixed is not None:
            raise ValueError(
                f"cannot {what}: these statistics were loaded from {self.source or 'a file'} without a sample "
                f"count (pytorch-fid's format stores only mu and sigma), so new samples cannot be weighed "
                f"against them; save statistics with ganfast to keep the count"
            )

    def update(self, features: Any) -> "FeatureStats":
        """Add a batch of features: ``(N, d)``, or ``(N, d, 1, 1)`` as pooling layers return.

        Any float dtype, numpy or torch, any device (moved to the
        accumulators' device).  Raises ValueError on NaN or inf: one
        non-finite feature would silently make every statistic NaN.
        """
        self._check_mutable("update")
        x = as_features(features, "features")
        n, d = x.shape
        if self.num_features is not None and d != self.num_features:
            raise ValueError(f"features must have {self.num_features} columns like the earlier batches; got {d}")
        if n == 0:
            return self
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"features hold {int((~torch.isfinite(x)).sum())} NaN or infinite values")
        if self._gram is None:
            device = self.device if self.device is not None else x.device
            # The first batch's mean as the shift: close to the final mean, so the
            # sums cancel nothing (see ganfast.ref.feature_stats).
            self._allocate(d, device, x.to(device=device, dtype=torch.float64).mean(0))
        x = x.to(self.device)
        feature_stats(x, self._shift, self._total, self._gram, backend=self.backend)
        self.count += n
        return self

    def reset(self) -> "FeatureStats":
        """Forget every sample (the feature count and device are kept)."""
        self.count = 0
        self._shift = self._total = self._gram = None
        self._fixed = None
        self.source = None
        return self

    # -- results ----------------------------------------------------------------------

    def _need(self, k: int, what: str) -> None:
        if self._fixed is None and self.count < k:
            plural = "s" if k > 1 else ""
            raise ValueError(f"{what} needs at least {k} sample{plural}; these statistics have {self.count}")

    def mean(self) -> Tensor:
        """Mean of the features, float64 ``(d,)``."""
        if self._fixed is not None:
            return self._fixed[0].clone()
        self._need(1, "the mean")
        return self._shift + self._total / self.count

    def covariance(self, ddof: int = 1) -> Tensor:
        """Covariance of the features, float64 ``(d, d)``: unbiased (``ddof=1``, as ``numpy.cov``) by default."""
        if self._fixed is not None:
            if ddof != 1:
                raise ValueError("statistics loaded without a sample count have only the unbiased (ddof=1) covariance")
            return self._fixed[1].clone()
        if ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1; got {ddof!r}")
        self._need(ddof + 1, "the covariance")
        m = self._total / self.count
        m2 = self._gram - torch.outer(self._total, m)
        return (m2 + m2.mT) * (0.5 / (self.count - ddof))

    def mu_sigma(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` as float64 numpy arrays, as pytorch-fid uses them."""
        return self.mean().cpu().numpy(), self.covariance().cpu().numpy()

    @property
    def mergeable(self) -> bool:
        return self._fixed is None

    # -- combining ----------------------------------------------------------------------

    def _moments_about(self, c: Tensor) -> Tuple[Tensor, Tensor]:
        """``(sum (x - c), sum (x - c)(x - c)^T)`` of these samples for another shift ``c``."""
        delta = (self._shift - c).to(self._total.device)
        total = self._total + self.count * delta
        gram = (self._gram + torch.outer(self._total, delta) + torch.outer(delta, self._total)
                + self.count * torch.outer(delta, delta))
        return total, gram

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Add ``other``'s samples to these, exactly as if they had been updated here. Returns self."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"other must be a FeatureStats; got {type(other).__name__}")
        self._check_mutable("merge")
        other._check_mutable("merge them")
        if other.count == 0:
            return self
        if self.num_features is not None and other.num_features != self.num_features:
            raise ValueError(f"other has {other.num_features} features; these statistics have {self.num_features}")
        if self.count == 0:
            device = self.device if self.device is not None else other.device
            self._allocate(other.num_features, device, other._shift)
        total, gram = other._moments_about(self._shift.to(other.device))
        self._total += total.to(self.device)
        self._gram += gram.to(self.device)
        self.count += other.count
        return self

    def copy(self) -> "FeatureStats":
        out = FeatureStats(self.num_features, device=self.device, backend=self.backend)
        out.count = self.count
        out.source = self.source
        if self._gram is not None:
            out._shift, out._total, out._gram = self._shift.clone(), self._total.clone(), self._gram.clone()
        if self._fixed is not None:
            out._fixed = (self._fixed[0].clone(), self._fixed[1].clone())
        return out

    def all_reduce(self, group: Any = None) -> "FeatureStats":
        """Combine the statistics of every process in ``group`` (torch.distributed); every rank gets the total.

        A collective: every rank of the group must call it.  Ranks that saw
        no samples take part too.  The sums are re-expressed about the
        global mean (one all-reduce of ``N`` and ``N * mean``), then added
        (one all-reduce of the float64 sums), so the result equals the
        statistics of all samples on one process.  Without an initialized
        process group this does nothing.
        """
        import torch.distributed as dist

        self._check_mutable("all-reduce")
        if not (dist.is_available() and dist.is_initialized()):
            return self
        # Metadata first (tiny): every rank learns d and whether anyone has samples.
        metas = [None] * dist.get_world_size(group)
        dist.all_gather_object(metas, (self.count, self.num_features), group=group)
        dims = {d for c, d in metas if c > 0}
        if len(dims) > 1:
            raise ValueError(f"ranks hold features of different sizes {sorted(dims)}; all_reduce needs one size")
        if not dims:
            return self
        (d,) = dims
        comm = self._comm_device(group)
        if self.count > 0:
            home = self.device
            n_mean = (self.count * self.mean()).to(comm)
        else:
            home = self.device if self.device is not None else comm
            n_mean = torch.zeros(d, dtype=torch.float64, device=comm)
        head = torch.cat([torch.tensor([float(self.count)], dtype=torch.float64, device=comm), n_mean])
        dist.all_reduce(head, group=group)
        total_count = int(round(float(head[0])))
        c = head[1:] / head[0]
        if self.count > 0:
            total, gram = self._moments_about(c.to(self._total.device))
            total, gram = total.to(comm), gram.to(comm)
        else:
            total = torch.zeros(d, dtype=torch.float64, device=comm)
            gram = torch.zeros(d, d, dtype=torch.float64, device=comm)
        dist.all_reduce(total, group=group)
        dist.all_reduce(gram, group=group)
        self.num_features = d
        self.device = home
        self._shift, self._total, self._gram = c.to(home), total.to(home), gram.to(home)
        self.count = total_count
        return self

    @staticmethod
    def _comm_device(group: Any) -> torch.device:
        import torch.distributed as dist

        if dist.get_backend(group) == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    # -- persistence --------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write ``mu``, ``sigma`` (float64, pytorch-fid's keys) and ``num_samples`` to an ``.npz`` file at ``path``.

        The file is written at exactly ``path`` (numpy would append
        ``.npz``); pytorch-fid recognises statistics files by that suffix.
        """
        mu, sigma = self.mu_sigma()
        arrays: Dict[str, np.ndarray] = {"mu": mu, "sigma": sigma}
        if self._fixed is None:
            arrays["num_samples"] = np.asarray(self.count, dtype=np.int64)
        with open(os.fspath(path), "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: PathLike, *, device: Any = None, backend: Optional[str] = None) -> "FeatureStats":
        """Statistics from an ``.npz`` file with keys ``mu`` and ``sigma`` (pytorch-fid's, or :meth:`save`'s).

        With a ``num_samples`` entry the result can be updated and merged;
        without one it is read-only (usable for FID).
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no statistics file at {path!r}")
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = set(f.files)
                if not {"mu", "sigma"} <= keys:
                    raise ValueError(
                        f"{path} is not a statistics file: it needs the keys 'mu' and 'sigma' (pytorch-fid's "
                        f"format); found {sorted(keys)}"
                    )
                mu, sigma = np.asarray(f["mu"]), np.asarray(f["sigma"])
                n = int(f["num_samples"]) if "num_samples" in keys else None
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            if isinstance(err, ValueError) and "statistics file" in str(err):
                raise
            raise ValueError(f"cannot read {path} as an .npz statistics file: {type(err).__name__}: {err}") from err
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"{path}: mu must have shape (d,) and sigma (d, d); got {mu.shape} and {sigma.shape}")
        mu_t = torch.from_numpy(mu.astype(np.float64))
        sigma_t = torch.from_numpy(sigma.astype(np.float64))
        dev = torch.device(device) if device is not None else torch.device("cpu")
        out = cls(mu.shape[0], device=dev, backend=backend)
        out.source = path
        if n is None or n < 2:
            out._fixed = (mu_t.to(dev), sigma_t.to(dev))
            return out
        # Exact sufficient statistics about the mean: sum (x - mu) = 0, the
        # Gram matrix is (n - 1) sigma.
        out._allocate(mu.shape[0], dev, mu_t)
        out._gram.copy_(sigma_t.to(dev) * (n - 1))
        out.count = n
        return out

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume accumulation (for training checkpoints)."""
        if self._fixed is not None:
            return {"count": None, "mu": self._fixed[0].cpu(), "sigma": self._fixed[1].cpu(), "source": self.source}
        st: Dict[str, Any] = {"count": self.count, "num_features": self.num_features}
        if self._gram is not None:
            st.update(shift=self._shift.cpu(), total=self._total.cpu(), gram=self._gram.cpu())
        return st

    def load_state_dict(self, state: Dict[str, Any]) -> "FeatureStats":
        self.reset()
        dev = self.device if self.device is not None else torch.device("cpu")
        if state.get("count") is None:
            self._fixed = (state["mu"].to(dev, torch.float64), state["sigma"].to(dev, torch.float64))
            self.num_features = self._fixed[0].shape[0]
            self.source = state.get("source")
            return self
        self.count = int(state["count"])
        self.num_features = state.get("num_features")
        if "gram" in state:
            self._allocate(state["shift"].shape[0], dev, state["shift"])
            self._total.copy_(state["total"])
            self._gram.copy_(state["gram"])
        return self

    def __repr__(self) -> str:
        if self._fixed is not None:
            return f"FeatureStats(d={self.num_features}, loaded from {self.source!r}, no sample count)"
        return f"FeatureStats(d={self.num_features}, count={self.count}, device={self.device})"
