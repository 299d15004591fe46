"""``upfirdn2d``: upsample, FIR filter, downsample (StyleGAN2's resampling op), and its helpers.

Layers, as every op in ganfast:

* reference: :mod:`ganfast.ref.upfirdn2d` (the definition, the torch backend);
* Triton: :mod:`ganfast.kernels.upfirdn2d`: each kept output computed once
  from x, the zero-stuffed and padded plane never stored;
* ``aten``: the reference under plain autograd, without the registered op
  (the CPU's choice: ATen's convolution backward);
* one registered custom op, ``ganfast::upfirdn2d``, with a fake
  implementation and autograd, so the op works under
  ``torch.compile(fullgraph=True)`` and ``torch.library.opcheck``;
* the public functions :func:`upfirdn2d`, :func:`upsample2d`,
  :func:`downsample2d`, :func:`filter2d` and :func:`setup_filter`;
  :func:`check_args` is the one argument check, called by the public
  function and by the fake.

Derivatives: the op is linear in ``x`` and its adjoint is the op itself
with up and down swapped, the filter flipped and the padding mirrored
(:func:`ganfast.ref.upfirdn2d.grad_padding`; NVlabs/stylegan2-ada-pytorch
``torch_utils/ops/upfirdn2d.py`` does the same).  The backward calls the
registered op, whose backward is the op again: derivatives of every order,
on the selected backend, with nothing recomputed through the reference
(R1 and path-length regularisation differentiate through it twice).  The
filter gets no gradient: it is a constant (a ``f`` that requires grad is
refused).
"""

from __future__ import annotations

import math
import types
from typing import Any, Optional, Sequence, Tuple, Union

import torch

from .. import _backend, _layout
from .._checks import check_bool, check_device, check_float, check_int, check_ndim, check_tensor, require
from .._dtypes import FLOAT_DTYPES
from ..ref import upfirdn2d as ref

Tensor = torch.Tensor

OP = "upfirdn2d"
SUPPORTED_DTYPES = FLOAT_DTYPES

#: StyleGAN2's resampling filter (Karras et al. 2020, appendix B: "a separable
#: 4-tap [1, 3, 3, 1] filter", the binomial filter of Zhang 2019), normalised
#: to sum 1 by :func:`setup_filter`.
STYLEGAN2_FILTER = (1.0, 3.0, 3.0, 1.0)

# -- backends ---------------------------------------------------------------------------


def _torch_forward(x, f, up, down, padding, flip_filter, gain, out_size):
    y = ref.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
    return y.contiguous(memory_format=_layout.memory_format_of(x))


def _load_triton():
    from ganfast.kernels import upfirdn2d as kernels

    return types.SimpleNamespace(
        forward=lambda x, f, up, down, padding, flip_filter, gain, out_size: kernels.forward(
            x, f, up, down, padding, flip_filter, gain, out_size, _layout.memory_format_of(x)))


_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward))
# aten: the reference's expression under plain autograd, no registered op around it (the CPU's choice):
# its backward is ATen's convolution backward, where the registered op's adjoint zero-stuffs dy
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=_torch_forward))
_backend.register(OP, "triton", _load_triton)


# -- arguments --------------------------------------------------------------------------

Factor = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


def _factor(value: Any, name: str) -> Tuple[int, int]:
    """An int or an ``(x, y)`` pair of ints >= 1, as ``(x, y)``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise TypeError(f"{name} must be an int or an (x, y) pair of ints; got {value!r}")
        return (check_int(value[0], f"{name}[0]", minimum=1, what="an int >= 1"),
                check_int(value[1], f"{name}[1]", minimum=1, what="an int >= 1"))
    v = check_int(value, name, minimum=1, what="an int >= 1 or an (x, y) pair of them")
    return v, v


def _padding(value: Any) -> Tuple[int, int, int, int]:
    """An int, an ``(x, y)`` pair or ``(x0, x1, y0, y1)``, as ``(x0, x1, y0, y1)``; negative values crop."""
    if isinstance(value, (list, tuple)):
        if len(value) not in (2, 4):
            raise TypeError(f"padding must be an int, an (x, y) pair or (x0, x1, y0, y1); got {value!r}")
        # the backward's mirrored padding is symbolic when traced (it depends on the input's size)
        vals = [v if isinstance(v, torch.SymInt) else check_int(v, f"padding[{i}]") for i, v in enumerate(value)]
        return (vals[0], vals[0], vals[1], vals[1]) if len(vals) == 2 else tuple(vals)  # type: ignore[return-value]
    p = check_int(value, "padding", what="an int, an (x, y) pair or (x0, x1, y0, y1)")
    return p, p, p, p


def check_args(x: Any, f: Any, up: Any, down: Any, padding: Any, flip_filter: Any,
               gain: Any) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int, int, int], bool, float,
                                   Tuple[int, int]]:
    """Check :func:`upfirdn2d`'s arguments; ``(up, down, padding, flip_filter, gain, (out_h, out_w))`` normalised.

    The one check of this op: the public function calls it on what the user
    passed, the fake implementation on what reaches the registered op.
    Raises as :func:`upfirdn2d` documents.
    """
    check_tensor(x, "x", nonempty=True)
    check_ndim(x, "x", 4, "have shape (N, C, H, W)")
    check_tensor(f, "f")
    check_ndim(f, "f", (1, 2), "be a 2-D (f_h, f_w) filter or a 1-D (k,) separable one")
    require(f.numel() != 0, ValueError, lambda: f"f must not be empty; got shape {tuple(f.shape)}")
    check_device(f, "f", x.device)
    if f.requires_grad:
        raise ValueError("f must not require grad: upfirdn2d's filter is a constant (no gradient w.r.t. it is "
                         "computed); pass f.detach() or register it as a buffer")
    up_xy, down_xy, pad = _factor(up, "up"), _factor(down, "down"), _padding(padding)
    flip_filter = check_bool(flip_filter, "flip_filter")
    gain = check_float(gain, "gain")
    f_h, f_w = (f.shape[0], f.shape[0]) if f.dim() == 1 else (f.shape[0], f.shape[1])
    out_h, out_w = ref.output_size(x.shape[2], x.shape[3], f_h, f_w, up_xy, down_xy, pad)
    for size in (out_h, out_w):
        require(size > 0, ValueError,
                lambda: f"upfirdn2d: the output would be empty ({out_h} x {out_w}): the input is {x.shape[2]} x "
                        f"{x.shape[3]}, up {up_xy}, padding {pad} (x0, x1, y0, y1) and a {f_h} x {f_w} filter leave "
                        f"no valid position")
    return up_xy, down_xy, pad, flip_filter, gain, (out_h, out_w)


# -- registered op ----------------------------------------------------------------------


@torch.library.custom_op("ganfast::upfirdn2d", mutates_args=())
def _upfirdn2d_op(x: Tensor, f: Tensor, up_x: int, up_y: int, down_x: int, down_y: int, pad_x0: int, pad_x1: int,
                  pad_y0: int, pad_y1: int, flip_filter: bool, gain: float, backend: str) -> Tensor:
    up, down, pad, flip_filter, gain, out_size = check_args(x, f, (up_x, up_y), (down_x, down_y),
                                                            (pad_x0, pad_x1, pad_y0, pad_y1), flip_filter, gain)
    _, impl = _backend.select(OP, backend, x.device)
    return impl.forward(x, f, up, down, pad, flip_filter, gain, out_size)


@_upfirdn2d_op.register_fake
def _(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain, backend):
    *_, (out_h, out_w) = check_args(x, f, (up_x, up_y), (down_x, down_y), (pad_x0, pad_x1, pad_y0, pad_y1),
                                    flip_filter, gain)
    return torch.empty((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype, device=x.device,
                       memory_format=_layout.memory_format_of(x))


def _setup(ctx, inputs, output):
    x, f, *args = inputs
    ctx.save_for_backward(f)
    ctx.in_hw = (x.shape[2], x.shape[3])
    ctx.args = args


def _backward(ctx, dy):
    (f,) = ctx.saved_tensors
    up_x, up_y, down_x, down_y, px0, px1, py0, py1, flip_filter, gain, backend = ctx.args
    dx = None
    if ctx.needs_input_grad[0]:
        in_h, in_w = ctx.in_hw
        f_h, f_w = (f.shape[0], f.shape[0]) if f.dim() == 1 else (f.shape[0], f.shape[1])
        p = ref.grad_padding(in_h, in_w, f_h, f_w, (up_x, up_y), (down_x, down_y), (px0, px1, py0, py1))
        # the adjoint: up and down swapped, the filter flipped, the padding mirrored; the same registered op,
        # so its own backward is this function again (derivatives of every order)
        dx = _upfirdn2d_op(dy, f, down_x, down_y, up_x, up_y, *p, not flip_filter, gain, backend)
    return (dx,) + (None,) * 12


_upfirdn2d_op.register_autograd(_backward, setup_context=_setup)


# -- public functions -------------------------------------------------------------------


def upfirdn2d(x: Tensor, f: Tensor, up: Factor = 1, down: Factor = 1, padding: Padding = 0,
              flip_filter: bool = False, gain: float = 1.0, *, backend: Optional[str] = None) -> Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images: the 2-D ``scipy.signal.upfirdn``.

    StyleGAN2's resampling op (Karras et al. 2020, appendix B; the interface
    of NVlabs/stylegan2-ada-pytorch ``torch_utils/ops/upfirdn2d.py``).  Per
    image plane: insert ``up - 1`` zeros after every sample, pad with zeros
    (negative padding crops), convolve with ``f`` keeping the valid part and
    multiply by ``gain``, keep every ``down``-th sample::

        out_h = (H * up_y + pad_y0 + pad_y1 - f_h + down_y) // down_y   (out_w likewise)

    Args:
        x: (N, C, H, W), float16, bfloat16, float32 or float64, any strides
            (channels_last in, channels_last out); not empty.
        f: the FIR filter on x's device, any float dtype (used in float32, or
            float64 for float64 ``x``): 2-D (f_h, f_w), or 1-D (k,) for the
            separable filter f outer f (:func:`setup_filter` makes one from a
            list).  Must not require grad (it gets no gradient).
        up: upsampling factor, an int >= 1 or ``(up_x, up_y)``; default 1.
        down: downsampling factor, likewise; default 1.
        padding: zeros added before filtering, in upsampled pixels: an int,
            ``(x, y)`` or ``(x0, x1, y0, y1)`` (left, right, top, bottom);
            negative values crop.  Default 0.
        flip_filter: False (default) convolves (f flipped, as scipy does);
            True correlates.
        gain: multiplies the output (a finite float; default 1).  For a
            separable ``f`` each of the two passes carries sqrt(gain).
        backend: ``"torch"``, ``"aten"`` (the reference under plain
            autograd, the CPU's choice), ``"triton"``, ``"auto"``, or None for
            the current choice (:func:`ganfast.use_backend`).

    Returns:
        (N, C, out_h, out_w) in ``x``'s dtype, channels_last when ``x`` is.
        Arithmetic in float32 (float64 for float64 inputs).

    Raises:
        TypeError: ``x`` or ``f`` is not a tensor or has an unsupported dtype;
            ``up``, ``down`` or ``padding`` is not an int or a pair (or, for
            padding, a 4-tuple) of ints; ``flip_filter`` is not a bool;
            ``gain`` is not a number.
        ValueError: ``x`` is not 4-D or is empty; ``f`` is not 1-D or 2-D,
            empty, on another device or requires grad; a factor is below 1;
            ``gain`` is not finite; the output would be empty; ``backend`` is
            not a backend's name.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order w.r.t. ``x`` (the adjoint is the op itself;
    see the module docstring).
    """
    up, down, pad, flip_filter, gain, out_size = check_args(x, f, up, down, padding, flip_filter, gain)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return _torch_forward(x, f, up, down, pad, flip_filter, gain, out_size)
    return _upfirdn2d_op(x, f, up[0], up[1], down[0], down[1], *pad, flip_filter, gain, backend)


def setup_filter(f: Union[Sequence[float], Tensor] = STYLEGAN2_FILTER, *, device: Any = None,
                 normalize: bool = True, separable: Optional[bool] = None, dtype: torch.dtype = torch.float32
                 ) -> Tensor:
    """A filter for :func:`upfirdn2d` from a list or tensor; default StyleGAN2's [1, 3, 3, 1].

    Args:
        f: the taps: 1-D (k,) or 2-D (f_h, f_w).
        device, dtype: of the returned filter (default CPU, float32).
        normalize: divide by the sum of the (2-D) filter's taps, so that a
            constant image stays constant (default True).
        separable: keep a 1-D filter 1-D (the separable form); None
            (default) keeps 1-D as 1-D; False expands it to f outer f.

    Returns:
        the filter tensor, 1-D or 2-D, not requiring grad.

    Raises:
        TypeError: ``f`` is not a sequence of numbers or a float tensor.
        ValueError: ``f`` is empty, not 1-D or 2-D, 2-D with ``separable``
            True, or sums to 0 with ``normalize``.
    """
    if isinstance(f, Tensor):
        if not (f.is_floating_point() or f.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"f must be a sequence of numbers or a real tensor; got a {f.dtype} tensor")
        t = f.detach().to(device=device, dtype=dtype)
    else:
        try:
            t = torch.as_tensor(f, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"f must be a sequence of numbers or a tensor; got {f!r}") from err
    if t.dim() not in (1, 2) or t.numel() == 0:
        raise ValueError(f"f must be a non-empty 1-D or 2-D filter; got shape {tuple(t.shape)}")
    if t.dim() == 2 and separable:
        raise ValueError("separable=True needs a 1-D filter; got a 2-D one")
    if t.dim() == 1 and separable is False:
        t = torch.outer(t, t)
    if normalize and t.device.type == "meta":  # no values to check (shape propagation)
        return t / t.sum()
    if normalize:  # a separable f divided by its sum makes f outer f sum to 1 too
        total = float(t.sum())
        if total == 0 or not math.isfinite(total):
            raise ValueError(f"f sums to {total}: it cannot be normalised (pass normalize=False)")
        t = t / total
    return t


def _filter_size(f: Tensor) -> Tuple[int, int]:
    return (f.shape[0], f.shape[0]) if f.dim() == 1 else (f.shape[1], f.shape[0])  # (f_w, f_h)


def _default_filter(f: Optional[Tensor], x: Tensor) -> Tensor:
    return setup_filter(device=x.device) if f is None else f


def upsample2d(x: Tensor, f: Optional[Tensor] = None, up: Factor = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1.0, *, backend: Optional[str] = None) -> Tensor:
    """Upsample by ``up`` and low-pass filter: the output is ``up`` times the input's size (with padding 0).

    StyleGAN2's upsampling (Karras et al. 2020, appendix B: zero insertion,
    then the [1, 3, 3, 1] filter, the gain ``up_x * up_y`` keeping the
    image's level).  The padding centres the filter: ``(f_w + up_x - 1) //
    2`` before and ``(f_w - up_x) // 2`` after (likewise y), added to
    ``padding``.  ``f`` None is :func:`setup_filter`'s default (StyleGAN2's
    [1, 3, 3, 1], normalised); other arguments and Raises as
    :func:`upfirdn2d`.
    """
    f = _default_filter(f, x)
    (up_x, up_y), (px0, px1, py0, py1) = _factor(up, "up"), _padding(padding)
    f_w, f_h = _filter_size(f)
    pad = (px0 + (f_w + up_x - 1) // 2, px1 + (f_w - up_x) // 2, py0 + (f_h + up_y - 1) // 2, py1 + (f_h - up_y) // 2)
    gain = check_float(gain, "gain")
    return upfirdn2d(x, f, up=(up_x, up_y), padding=pad, flip_filter=flip_filter, gain=gain * up_x * up_y,
                     backend=backend)


def downsample2d(x: Tensor, f: Optional[Tensor] = None, down: Factor = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1.0, *, backend: Optional[str] = None) -> Tensor:
    """Low-pass filter and keep every ``down``-th sample: the output is 1 / ``down`` of the input (padding 0).

    StyleGAN2's downsampling (Karras et al. 2020, appendix B).  The padding
    centres the filter: ``(f_w - down_x + 1) // 2`` before and ``(f_w -
    down_x) // 2`` after (likewise y), added to ``padding``.  ``f`` None is
    StyleGAN2's [1, 3, 3, 1]; other arguments and Raises as :func:`upfirdn2d`.
    """
    f = _default_filter(f, x)
    (down_x, down_y), (px0, px1, py0, py1) = _factor(down, "down"), _padding(padding)
    f_w, f_h = _filter_size(f)
    pad = (px0 + (f_w - down_x + 1) // 2, px1 + (f_w - down_x) // 2, py0 + (f_h - down_y + 1) // 2,
           py1 + (f_h - down_y) // 2)
    return upfirdn2d(x, f, down=(down_x, down_y), padding=pad, flip_filter=flip_filter, gain=gain, backend=backend)


def filter2d(x: Tensor, f: Optional[Tensor] = None, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1.0, *, backend: Optional[str] = None) -> Tensor:
    """Filter with ``f`` keeping the size (padding 0): ``f_w // 2`` before and ``(f_w - 1) // 2`` after.

    ``f`` None is StyleGAN2's [1, 3, 3, 1] (the blur before a strided
    convolution in its discriminator); other arguments and Raises as
    :func:`upfirdn2d`.
    """
    f = _default_filter(f, x)
    px0, px1, py0, py1 = _padding(padding)
    f_w, f_h = _filter_size(f)
    pad = (px0 + f_w // 2, px1 + (f_w - 1) // 2, py0 + f_h // 2, py1 + (f_h - 1) // 2)
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, backend=backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_upfirdn2d_op,)
