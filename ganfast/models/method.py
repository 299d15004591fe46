"""The training contract: what a GAN method declares, and what the trainer does with it.

A :class:`Method` is an ``nn.Module`` whose children are its networks, by
name (``G``, ``D``, ``E``, ``D_A`` ...).  It declares:

* ``Options``: a dataclass of its options, each default beside its source
  (:mod:`ganfast.models.options`);
* :meth:`build_networks`: ``{name: nn.Module}``, in construction order;
* :meth:`optimizers`: ``{name: OptimizerSpec}``, each over a set of networks,
  with the paper's settings;
* :meth:`phases`: the iteration as a list of :class:`~ganfast.models.phases.Phase`;
* :meth:`schedules`: ``{name: (step, total) -> float}`` (:mod:`~ganfast.models.schedules`);
* :meth:`ema_networks`: which networks get an exponential-moving-average copy;
* :meth:`sample` (and :meth:`translate` / :meth:`encode` where they apply):
  how to use the trained networks, given any of them replaced (the trainer
  passes the EMA copies);
* ``requires``: the batch fields it reads, checked against the dataset's.

The trainer (:class:`ganfast.train.Trainer`) builds the optimisers with
:meth:`make_optimizers` (applying lazy regularisation's Adam correction),
evaluates the schedules, runs :meth:`train_step` (the phases) inside its
step context (mixed precision, gradient scaling, gradient all-reduce),
keeps the EMA copies, draws sample grids with :meth:`sample`, and
checkpoints ``state_dict()`` + :meth:`extra_state_dict`.  See
``ganfast/models/README.md`` for a worked example.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor, nn

from ..data.batch import Batch
from .options import OptionsBase, parse_options
from .phases import Phase, StepContext, lazy_ratios, run_iteration
from .schedules import Schedule

__all__ = ["Method", "OptimizerSpec", "EMASpec"]


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser over named networks.

    Attributes:
        networks: names of the networks whose parameters it updates.
        kind: ``"adam"`` or ``"rmsprop"``.
        lr: learning rate (before any lazy-regularisation correction or schedule).
        betas: Adam's (beta1, beta2).
        eps: Adam's / RMSProp's epsilon.
    """

    networks: Tuple[str, ...]
    lr: float
    kind: str = "adam"
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.kind not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer kind must be 'adam' or 'rmsprop'; got {self.kind!r}")
        if not self.networks:
            raise ValueError("an optimizer must train at least one network")


@dataclass(frozen=True)
class EMASpec:
    """How a network's EMA copy is kept (see :class:`ganfast.train.ema.EMA`).

    Attributes:
        decay: None: the trainer's ``ema_decay`` (``--ema-decay``).
        warmup: decay ``min(decay, (1 + n) / (10 + n))`` on the n-th update.
        rampup: StyleGAN2's ramp-up: the EMA half-life, in steps, is at most
            ``rampup * n`` on the n-th update (None: off).
    """

    decay: Optional[float] = None
    warmup: bool = True
    rampup: Optional[float] = None


class Method(nn.Module):
    """Base class of every GAN method (see the module docstring for what a subclass declares)."""

    #: the registry name (``ganfast.models.build(name)``, ``--model``)
    name: ClassVar[str] = ""
    #: one line for ``ganfast list``
    summary: ClassVar[str] = ""
    #: the paper (authors, year, venue or arXiv id)
    paper: ClassVar[str] = ""
    #: the family ``ganfast list`` groups it under
    family: ClassVar[str] = ""
    #: the typed options
    Options: ClassVar[Type[OptionsBase]] = OptionsBase
    #: batch fields every batch must fill
    requires: ClassVar[Tuple[str, ...]] = ("image",)
    #: data layout used when the user does not choose one (None: the dataset's own)
    layout: ClassVar[Optional[str]] = None
    #: the batch field the samples imitate (what FID compares them with): ``image``, or ``target`` for translation
    sample_field: ClassVar[str] = "image"
    #: keyword conditions :meth:`sample` accepts beyond the latent (``label``, ``condition``, ``text``)
    sample_conditions: ClassVar[Tuple[str, ...]] = ()
    #: what ``ganfast train`` uses when the user does not say, per kind of data ("points",
    #: "image"): steps, batch_size, lr_schedule, ema_decay and options (see ganfast.train.recommended)
    recommended: ClassVar[Dict[str, Dict[str, Any]]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = parse_options(self.Options, options, type(self))
        self.config: Dict[str, Any] = self.options.as_dict()
        self.configure()
        built = self.build_networks()
        if not isinstance(built, dict) or not built:
            raise TypeError(f"{type(self).__name__}.build_networks must return a non-empty dict of networks")
        for net_name, net in built.items():
            if not isinstance(net, nn.Module):
                raise TypeError(f"network {net_name!r} must be an nn.Module; got {type(net).__name__}")
            self.add_module(net_name, net)
        self.network_names: Tuple[str, ...] = tuple(built)
        self.init_networks()

    # -- declarations (override) ----------------------------------------------------------------------

    @classmethod
    def options_from_dataset(cls, dataset: Any) -> Dict[str, Any]:
        """Options :func:`ganfast.models.build` takes from a dataset (default: ``sample_shape``, ``num_classes``)."""
        declared = {f.name for f in dataclasses.fields(cls.Options)}
        out: Dict[str, Any] = {}
        if "sample_shape" in declared:
            out["sample_shape"] = tuple(dataset.sample_shape)
        if "num_classes" in declared:
            out["num_classes"] = int(dataset.num_classes)
        return out

    def configure(self) -> None:
        """Set attributes derived from ``self.options`` before the networks are built."""

    def build_networks(self) -> Dict[str, nn.Module]:
        raise NotImplementedError(f"{type(self).__name__} must define build_networks()")

    def init_networks(self) -> None:
        """Initialise weights after construction (default: each layer's own initialisation)."""

    def optimizers(self) -> Dict[str, OptimizerSpec]:
        raise NotImplementedError(f"{type(self).__name__} must define optimizers()")

    def phases(self) -> List[Phase]:
        raise NotImplementedError(f"{type(self).__name__} must define phases()")

    def schedules(self) -> Dict[str, Schedule]:
        return {}

    def ema_networks(self) -> Dict[str, EMASpec]:
        """Networks that get an EMA copy (default: ``G`` when there is one)."""
        return {"G": EMASpec()} if "G" in self.network_names else {}

    def sample(self, n: Optional[int] = None, *, networks: Optional[Mapping[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None, device: Any = None, **conditions: Any) -> Tensor:
        raise NotImplementedError(f"method {self.name!r} does not sample")

    def sample_inputs(self, n: int, *, generator: Optional[torch.Generator] = None,
                      batch: Optional[Batch] = None) -> Dict[str, Any]:
        """Fixed inputs for the trainer's sample grids (``sample(**inputs)`` draws the grid).

        ``batch`` is a batch of real data the method may take conditions from.
        """
        return {"n": n}

    def grid_size(self) -> int:
        """How many samples the trainer's grids hold."""
        return 64

    def grid_indices(self, n: int, length: int) -> Tensor:
        """Which samples of a dataset of ``length`` the trainer's grids take their conditions from (int64);
        default the first ``n``."""
        return torch.arange(min(n, length))

    def grid_nrow(self, inputs: Mapping[str, Any]) -> Optional[int]:
        """Images per row of a grid drawn from ``inputs`` (None: square)."""
        return None

    def grid_images(self, samples: Tensor, inputs: Mapping[str, Any], batch: Any = None
                    ) -> Tuple[Tensor, Optional[int]]:
        """``(images, nrow)`` of a sample grid from :meth:`sample`'s output for ``inputs`` (the grid's fixed
        inputs) and ``batch`` (the real batch they came from); default: the samples, :meth:`grid_nrow`.
        Translation methods lay out input | output | target."""
        return samples, self.grid_nrow(inputs)

    def translate(self, x: Tensor, *, networks: Optional[Mapping[str, nn.Module]] = None, **kw: Any) -> Tensor:
        raise NotImplementedError(f"method {self.name!r} does not translate images")

    def encode(self, x: Tensor, *, networks: Optional[Mapping[str, nn.Module]] = None) -> Tensor:
        raise NotImplementedError(f"method {self.name!r} has no encoder")

    def extra_state_dict(self) -> Dict[str, Any]:
        """State beyond parameters and buffers that a checkpoint must keep (tensors and plain values)."""
        return {}

    def load_extra_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    # -- provided ------------------------------------------------------------------------------------------

    def networks(self) -> Dict[str, nn.Module]:
        """Every network by name, in construction order."""
        return {n: getattr(self, n) for n in self.network_names}

    def net(self, name: str, networks: Optional[Mapping[str, nn.Module]] = None) -> nn.Module:
        """Network ``name``: the one in ``networks`` when given there (an EMA copy), else this method's."""
        if networks is not None and name in networks:
            return networks[name]
        if name not in self.network_names:
            raise KeyError(f"method {self.name!r} has no network {name!r}; its networks are {list(self.network_names)}")
        return getattr(self, name)

    def parameters_of(self, names: Sequence[str]) -> List[nn.Parameter]:
        """The trainable parameters of the named networks, each once, in order."""
        seen, out = set(), []
        for n in names:
            for p in self.net(n).parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def make_optimizers(self, *, fused: Optional[bool] = None) -> Dict[str, torch.optim.Optimizer]:
        """The declared optimisers, built; a lazily regularised one gets ``lr * c`` and ``beta ** c``.

        ``fused=None`` uses torch's fused Adam where this torch has it for the
        parameters' device, else the multi-tensor (foreach) one.
        """
        ratios = lazy_ratios(self.phases())
        out = {}
        for opt_name, spec in self.optimizers().items():
            params = self.parameters_of(spec.networks)
            c = ratios.get(opt_name, 1.0)
            lr = spec.lr * c
            if spec.kind == "rmsprop":
                out[opt_name] = torch.optim.RMSprop(params, lr=lr, eps=spec.eps)
            else:
                betas = (spec.betas[0] ** c, spec.betas[1] ** c) if c != 1.0 else tuple(spec.betas)
                out[opt_name] = _adam(params, lr, betas, spec.eps, fused)
        return out

    def trains(self) -> Dict[str, Tuple[str, ...]]:
        """Optimiser name -> the networks it trains."""
        return {k: tuple(s.networks) for k, s in self.optimizers().items()}

    def train_step(self, next_batch: Callable[[], Any], optimizers: Mapping[str, torch.optim.Optimizer],
                   ctx: Optional[StepContext] = None) -> Dict[str, Tensor]:
        """One iteration: the phases due at ``ctx.step``, run by :func:`ganfast.models.phases.run_iteration`.

        Returns the logged quantities as 0-d tensors (the trainer reduces them
        across processes and converts them once, so no step waits on the device).
        """
        ctx = StepContext() if ctx is None else ctx
        return run_iteration(self.phases(), self.networks(), self.trains(), next_batch, optimizers, ctx)

    def describe_networks(self) -> str:
        """One line per network: name, class, parameter count."""
        rows = []
        for n, m in self.networks().items():
            count = sum(p.numel() for p in m.parameters())
            rows.append(f"{n}: {type(m).__name__} ({count:,} parameters)")
        return "\n".join(rows)


def _adam(params: List[nn.Parameter], lr: float, betas: Tuple[float, float], eps: float, fused: Optional[bool]):
    if fused is None:
        fused = _fused_adam_available(params)
    if fused:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, foreach=True if params and params[0].is_cuda else None)


def _fused_adam_available(params: List[nn.Parameter]) -> bool:
    if not params:
        return False
    device = params[0].device
    if device.type == "cuda":
        return True
    # torch added the fused CPU Adam in 2.4; try it rather than parse versions
    try:
        probe = nn.Parameter(torch.zeros(1, device=device))
        torch.optim.Adam([probe], fused=True)
        return all(p.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16) for p in params)
    except (RuntimeError, TypeError, ValueError):
        return False
