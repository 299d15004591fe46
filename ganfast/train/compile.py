"""``ganfast train --compile``: ``torch.compile`` of a method's networks.

What is compiled.  Each network the method names (``G``, ``D``, ``Q`` ...)
is compiled in place with ``nn.Module.compile``: the module keeps its
parameters, buffers and ``state_dict`` keys (no ``_orig_mod.`` prefix), so a
checkpoint is the same with and without ``--compile`` and a run resumes
across the flag.  ``ganfast.nn``'s fused layers are ``torch.library`` custom
ops with fake implementations, so they trace into the graph whole.  Each
network gets one graph per way the iteration calls it (G without gradients
in D's phase and with them in G's; D trained, and frozen in G's phase).
Shapes are static (``dynamic=False``): a batch always has the same size (the
loader drops an epoch's ragged tail), and automatic dynamic shapes would
only cost recompiles.

What is not compiled, and why:

* The iteration around the networks (phases, losses, optimiser steps, EMA
  updates).  The optimisers are torch's fused Adam (one kernel already), the
  EMA one ``_foreach_lerp_``, and the phase loop toggles ``requires_grad``
  and runs Python conditions (``when``, ``repeat``, schedules) that would
  break or re-specialise a whole-iteration graph every step.
* A network that a phase differentiates twice.  AOTAutograd compiles a
  forward and *one* backward; asking for the gradient of that backward (a
  gradient penalty: ``autograd.grad(D(x), x, create_graph=True)`` then
  ``.backward()``) raises "torch.compile with aot_autograd does not
  currently support double backward" (torch 2.13).  Such a network stays
  eager; the rest of the method is compiled.  :func:`twice_differentiated`
  says which, from the method's options; a method it does not know that
  does this fails on its first step with a message saying so
  (:func:`explain`).
* The EMA copies.  They only draw the sample grids and run evaluation (eval
  mode, no gradients, a handful of times per run): compiling them would cost
  a compile for no measurable gain.  Sampling and evaluation run under
  ``torch.compiler.set_stance("force_eager")`` (:func:`eager`), so a
  compiled network used there (G when the EMA is off) does not recompile
  for eval mode.

Per method (``python bench/compile_methods.py``: every ``ganfast list``
method with its defaults, 3 steps of batch 32 compiled against 3 eager from
the same seed, torch 2.13 on the CPU, 2026-12-01): no graph breaks, and the
logged losses agree to 2.7e-4 at most (AC-GAN; 3e-5 for DCGAN, 1e-8 or less for the
MLP methods).  gan, dcgan, cgan, acgan, infogan, wgan, lsgan, sngan, sagan and
pacgan compile every network (AC-GAN's ``C`` and InfoGAN's ``Q`` are
torch.nn modules, see :func:`compile_networks`); wgan-gp, and any classic
method with ``-o gradient_penalty``, ``-o r1`` or ``-o r2``, compiles G and
runs D eagerly; unrolled compiles G and runs D eagerly (G's loss goes through
D's gradients in the unrolled steps), or compiles both with
``-o unroll_grad=false``.  The whole iteration
(``torch.compile(method.train_step)``) is not what ``--compile`` compiles:
Dynamo ends a graph at each ``backward()`` call and optimiser step and at the
``requires_grad_`` toggles between phases, so it would yield the networks'
graphs in smaller pieces, plus guards on the Python control flow of the
phases.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

__all__ = ["MODES", "CompileError", "CompilePlan", "compile_networks", "eager", "explain", "explained",
           "normalize_mode", "plan", "step_begin", "twice_differentiated"]

#: ``--compile MODE``: torch.compile's modes.  The two with CUDA graphs
#: (``reduce-overhead``, ``max-autotune``) capture graphs only for CUDA tensors.
MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
_OFF = (None, False, "off", "none")
_CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class CompileError(RuntimeError):
    """A method that ``--compile`` cannot run; the message names it, says why, and what to do."""


def normalize_mode(value: Any) -> Optional[str]:
    """The compile mode ``value`` asks for: None (off) or one of :data:`MODES`.

    ``None``, ``False`` and ``"off"`` mean off; ``True`` means ``"default"``.

    Raises:
        ValueError: anything else.
    """
    if value is True:
        return "default"
    if value in _OFF:
        return None
    if isinstance(value, str) and value in MODES:
        return value
    raise ValueError(f"compile must be off, True or one of {list(MODES)}; got {value!r}")


# Options of the classic methods (ganfast.models.adversarial) whose loss
# differentiates D twice, with how a message names them.
_PENALTIES = (("gradient_penalty", "the WGAN-GP gradient penalty"), ("r1", "the R1 penalty"),
              ("r2", "the R2 penalty"))


def twice_differentiated(model: Any) -> Dict[str, str]:
    """``{network: why}`` for the networks a phase of ``model`` differentiates twice.

    The reasons name the method and the option responsible, e.g. ``D`` of
    ``wgan-gp``: "the WGAN-GP gradient penalty (-o gradient_penalty=10)".
    Known cases: the input-gradient penalties of the classic methods
    (``gradient_penalty``, ``r1``, ``r2``: they differentiate D) and
    Unrolled GAN's unrolled discriminator (``unroll_steps`` > 0 with
    ``unroll_grad``).  Options are read by these names on any method, so a
    new method that calls its R1 weight ``r1`` is covered too.
    """
    options = getattr(model, "options", None)
    names = tuple(getattr(model, "network_names", ()))
    out: Dict[str, str] = {}
    if options is None or "D" not in names:
        return out
    why = []
    for key, what in _PENALTIES:
        value = getattr(options, key, 0) or 0
        if value > 0:
            why.append(f"{what} (-o {key}={value:g}) differentiates D twice")
    steps = getattr(options, "unroll_steps", 0) or 0
    if steps > 0 and getattr(options, "unroll_grad", False):
        # G's loss is differentiated through the gradients of the unrolled D steps (eq. 7); without
        # unroll_grad the unrolled steps are first order and D compiles (one more graph, for
        # functional_call's plain-tensor parameters)
        why.append(f"G's loss is differentiated through D's gradients in the unrolled steps (-o unroll_grad=true, "
                   f"unroll_steps={steps})")
    if why:
        out["D"] = "; ".join(why)
    return out


@dataclass(frozen=True)
class CompilePlan:
    """What ``--compile`` does to one method: the networks compiled and those left eager, with why.

    Attributes:
        model: the method's registry name.
        mode: one of :data:`MODES`.
        compiled: the networks compiled, in the method's order.
        eager: ``{network: why}`` for the networks that run eagerly.
    """

    model: str
    mode: str
    compiled: Tuple[str, ...]
    eager: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the log: what is compiled, what is not and why."""
        parts = [f"mode {self.mode}", f"compiled: {', '.join(self.compiled) if self.compiled else 'nothing'}"]
        for name, why in self.eager.items():
            parts.append(f"{name} runs eagerly: {why}, which torch.compile does not support")
        parts.append("EMA copies, sample grids and evaluation run eagerly")
        return "; ".join(parts)

    @property
    def uses_cuda_graphs(self) -> bool:
        return self.mode in _CUDA_GRAPH_MODES


def plan(model: Any, mode: Any = "default") -> CompilePlan:
    """Which of ``model``'s networks ``--compile`` compiles (see the module docstring).

    Raises:
        ValueError: ``mode`` is not one of :data:`MODES`.
        CompileError: no network of the method can be compiled (the message
            names the method and why).
    """
    mode = normalize_mode(mode)
    if mode is None:
        raise ValueError("plan() needs a compile mode; got off")
    eager_nets = twice_differentiated(model)
    names = tuple(model.network_names)
    compiled = tuple(n for n in names if n not in eager_nets)
    if not compiled:
        why = "; ".join(f"{n}: {w}" for n, w in eager_nets.items())
        raise CompileError(f"--compile: no network of model {model.name!r} can be compiled ({why}, which "
                           f"torch.compile does not support); train it without --compile")
    return CompilePlan(model.name, mode, compiled, dict(eager_nets))


def _preload_ops(device: torch.device) -> None:
    """Load every op implementation that can run on ``device`` now, outside the traced code.

    ``ganfast._backend`` loads an implementation on its first call, under a
    lock; traced for the first time, that lock is a graph break (Dynamo
    cannot enter a ``threading.Lock``), which splits every network at each
    fused layer and recompiles the pieces per layer shape.
    """
    from .. import _backend

    for op in _backend.ops():
        module = _backend.spec(op).module
        try:
            if module:
                importlib.import_module(module)
        except ImportError:
            continue
        for backend in _backend.implemented(op):
            if not _backend.status(op, backend, device.type):
                continue
            try:
                _backend.select(op, backend, device)
            except Exception:  # a backend that cannot load here is never chosen: nothing to preload
                pass


def compile_networks(model: Any, compile_plan: CompilePlan, device: Any) -> None:
    """Compile ``compile_plan.compiled`` networks of ``model`` in place (``nn.Module.compile``).

    Nothing is traced yet: each network compiles on its first call.  Call it
    inside the run's ``ganfast.use_backend`` so the backend it resolves is the run's.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    _preload_ops(device)
    mode = None if compile_plan.mode == "default" else compile_plan.mode
    for name in compile_plan.compiled:
        net: nn.Module = model.net(name)
        if type(net).__module__.split(".")[0] == "torch":
            # nn.Module.compile() compiles the module's __call__, and Dynamo skips frames in torch's
            # own files: a network that *is* a torch.nn module (InfoGAN's Q, an nn.Sequential) would
            # silently stay eager.  wrap_top_frame wraps the call in a frame Dynamo traces (what
            # torch.compile(module) does for torch.nn modules).  Not for ganfast's networks: every
            # wrapped call shares the wrapper's code object, and with it one recompile limit (8 graphs)
            with torch._dynamo.config.patch(wrap_top_frame=True):
                net.compile(mode=mode, dynamic=False)
        else:
            net.compile(mode=mode, dynamic=False)


@contextlib.contextmanager
def eager():
    """A context in which compiled networks run eagerly (sampling, evaluation)."""
    # set_stance() applies on construction, not on entry: build it here, inside the context
    with torch.compiler.set_stance("force_eager"):
        yield


def step_begin(compile_plan: Optional[CompilePlan], device: torch.device) -> None:
    """Mark a new iteration for CUDA graphs (their outputs from the last one may be overwritten)."""
    if compile_plan is not None and compile_plan.uses_cuda_graphs and device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()


def explain(err: BaseException, compile_plan: CompilePlan) -> Optional[str]:
    """A message for a failure of the compiled iteration, or None when ``err`` is not torch.compile's."""
    text = str(err)
    head = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    # AOTAutograd's two messages: a second backward through a compiled graph, and a compiled
    # backward (it donates its buffers) asked for create_graph=True or retain_graph=True
    if "double backward" in text or "donated buffers" in text:
        return (f"--compile: model {compile_plan.model!r} differentiates a compiled network twice (a gradient "
                f"penalty or an unrolled update through one of {', '.join(compile_plan.compiled)}), or "
                f"backpropagates through it twice, and torch.compile (AOTAutograd) supports neither; train it "
                f"without --compile (torch: {head})")
    dynamo_exc = getattr(getattr(torch, "_dynamo", None), "exc", None)
    base = getattr(dynamo_exc, "TorchDynamoException", None)
    if (base is not None and isinstance(err, base)) or type(err).__module__.startswith(("torch._dynamo",
                                                                                         "torch._inductor")):
        return (f"--compile: torch.compile failed on model {compile_plan.model!r} (networks "
                f"{', '.join(compile_plan.compiled)}, mode {compile_plan.mode}); train it without --compile "
                f"(torch: {type(err).__name__}: {head})")
    return None


@contextlib.contextmanager
def explained(compile_plan: Optional[CompilePlan]):
    """Re-raise a torch.compile failure inside the block as a :class:`CompileError` (:func:`explain`'s message)."""
    if compile_plan is None:
        yield
        return
    try:
        yield
    except Exception as err:
        message = explain(err, compile_plan)
        if message is None:
            raise
        raise CompileError(message) from err
