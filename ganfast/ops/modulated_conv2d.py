"""``modulated_conv2d``: StyleGAN2's modulated (and demodulated) convolution, with resampling and noise.

Karras et al. 2020, section 2.2, equations 1-3 (the reference,
:mod:`ganfast.ref.modulated_conv2d`, spells them out).  Two ways to compute
the same numbers:

* per-sample weights: ``w'_n = w * s_n``, demodulated, and one grouped
  convolution over the batch (groups = N): the reference, and the ``torch``
  backend (a registered op around it);
* input and output scales on the shared weight (stylegan2-ada-pytorch's
  ``fused_modconv=False``): ``y = conv(x * s, w) * d + noise`` with ``d_{n,o}
  = rsqrt(sum_i s_{n,i}^2 sum_k w_{o,i,k}^2 + eps)``: no (N, O, I, kh, kw)
  tensor and a dense convolution of the whole batch.  The ``aten`` backend
  (plain autograd, no registered op) computes it; it is the CPU's choice
  (measured: the row of ``ganfast._backend.OPS``).

* the ``triton`` backend fuses the second form into ganfast's implicit-GEMM
  convolution (:mod:`ganfast.kernels.conv2d`): the style scale multiplies
  the input tile as it is gathered, the demodulation coefficient and the
  noise are applied to the accumulator in the epilogue, one launch for the
  whole batch.  ``up`` > 1 runs the transposed convolution at the input's
  resolution (1/up^2 of the multiply-adds of convolving the upsampled
  image) into a float32 intermediate, then upfirdn2d's filter
  (:func:`transposed_padding`); ``down`` > 1 filters first (upfirdn2d),
  then the strided fused convolution.  In float16/bfloat16, ``x * s`` (and
  the filtered x) is rounded to the storage dtype for the tensor cores' dot,
  as stylegan2-ada-pytorch's ``x * styles.to(x.dtype)`` does; the tests
  admit that rounding explicitly.  Kernels larger than 7 or ``up`` > 4
  fall back to the second form on cuDNN.

On a GPU ``auto`` prefers ``triton``, then ``torch``: reasoned (no
per-sample weight tensor, one dense launch instead of a grouped one), not
yet measured on a GPU (``ganfast._backend.OPS``).

Derivatives: every form is differentiable to any order (path-length
regularisation differentiates G's output w.r.t. the styles; lazy R1
differentiates D twice).  The registered op's backward recomputes with
autograd (one forward and backward), recorded when the gradient must itself
be differentiable: through the reference for ``torch``, through the second
form (dense convolutions: cuDNN on a GPU) for ``triton``.
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .. import _backend, _layout
from .._checks import check_bool, check_device, check_int, check_ndim, check_shape, check_tensor, require
from .._dtypes import compute_dtype
from ..ref import modulated_conv2d as ref
from ..ref.upfirdn2d import output_size as upfirdn_output_size
from ._autograd import differentiable_backward
from .upfirdn2d import setup_filter, upfirdn2d

Tensor = torch.Tensor

OP = "modulated_conv2d"

# -- backends ---------------------------------------------------------------------------


def _torch_forward(x, weight, styles, noise, f, demodulate, up, down, padding):
    y = ref.modulated_conv2d(x, weight, styles, noise, f, demodulate, up, down, padding)
    return y.contiguous(memory_format=_layout.memory_format_of(x))


def conv2d_resample(x: Tensor, w: Tensor, f: Optional[Tensor] = None, up: int = 1, down: int = 1,
                    padding: int = 0) -> Tensor:
    """``conv2d(x, w)`` with StyleGAN2's resampling, on ganfast's upfirdn2d (Triton on a GPU).

    stylegan2-ada-pytorch ``conv2d_resample`` semantics
    (:func:`ganfast.ref.modulated_conv2d.conv2d_resample` defines them): with
    ``up`` > 1, upsample by upfirdn2d (zero insertion, ``f``, gain up^2, the
    padding and f's centring folded in) then an unpadded conv; with ``down`` >
    1, filter the same way then a stride-``down`` conv; else a padded conv.
    x (N, I, H, W), w (O, I, kh, kw), f 1-D or 2-D (None: StyleGAN2's [1, 3,
    3, 1]).  Arguments are checked by the ops it calls.
    """
    if f is None and (up > 1 or down > 1):
        f = setup_filter(device=x.device)
    if up > 1 or down > 1:
        f_h, f_w = (f.shape[0], f.shape[0]) if f.dim() == 1 else (f.shape[0], f.shape[1])
        pad = ref.resample_padding(padding, f_h, f_w, up, down)
        if up > 1:
            return F.conv2d(upfirdn2d(x, f, up=up, padding=pad, gain=float(up * up)), w)
        return F.conv2d(upfirdn2d(x, f, padding=pad), w, stride=down)
    return F.conv2d(x, w, padding=padding)


def scaled_form(x: Tensor, weight: Tensor, styles: Tensor, noise: Optional[Tensor], f: Optional[Tensor],
                demodulate: bool, up: int, down: int, padding: int) -> Tensor:
    """``conv(x * s, w) * d + noise``: the input/output-scale form on the shared weight (the ``aten`` backend).

    Computed in float32 (float64 for float64 inputs), as the reference: a
    float16 convolution on the CPU accumulates in float16, and its second
    derivatives came out 2.4% off the float64 reference.  The result has
    ``x``'s dtype.
    """
    acc = compute_dtype(x.dtype)
    s = styles.to(acc)
    f = f.to(acc) if f is not None else None
    y = conv2d_resample(x.to(acc) * s[:, :, None, None], weight.to(acc), f, up, down, padding)
    if demodulate:
        y = y * ref.demodulation(weight.to(acc), s)[:, :, None, None]
    if noise is not None:
        y = y + noise.to(acc)
    return y.to(x.dtype)


def transposed_padding(padding: Tuple[int, int, int, int], kh: int, kw: int, up: int
                       ) -> Tuple[int, int, int, int]:
    """upfirdn2d's padding after a full transposed convolution, for the same output as zero insertion + conv.

    ``conv2d(upfirdn2d(x, f, up, pad), w)`` (the definition) equals
    ``upfirdn2d(conv_transpose2d(x, flip(w)^T, stride=up), f, pad')``: the
    filter and the convolution are both shift-invariant and commute, and
    correlating the zero-inserted x with w is the transposed convolution
    with the flipped kernel, shifted by k - 1.  So pad' = (pad_0 - (k - 1),
    pad_1 - (k - up)) per axis (stylegan2-ada-pytorch ``conv2d_resample``
    derives the same).  ``padding`` is (x0, x1, y0, y1); the result may be
    negative (a crop).
    """
    px0, px1, py0, py1 = padding
    return px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)


def _triton_impl():
    from ganfast.kernels import conv2d as kernels

    def forward(x, weight, styles, noise, f, demodulate, up, down, padding):
        kh, kw = weight.shape[2], weight.shape[3]
        if max(kh, kw) > 7 or up > 4:  # outside the implicit GEMM's kernel sizes 1..7 and transposed strides 1..4
            return scaled_form(x, weight, styles, noise, f, demodulate, up, down, padding).to(x.dtype)
        acc = compute_dtype(x.dtype)
        s = styles.to(acc)
        d = ref.demodulation(weight.to(acc), s) if demodulate else None
        w = weight.to(x.dtype)
        if up == 1 and down == 1:
            return kernels.conv2d(x, w, padding=padding, in_scale=s, out_scale=d, addend=noise)
        f_h, f_w = (f.shape[0], f.shape[0]) if f.dim() == 1 else (f.shape[0], f.shape[1])
        pad = ref.resample_padding(padding, f_h, f_w, up, down)
        if down > 1:  # filter, then the strided convolution with the scales fused
            xf = upfirdn2d(x, f, padding=pad, backend="triton")
            return kernels.conv2d(xf, w, stride=down, in_scale=s, out_scale=d, addend=noise)
        # up > 1: the transposed convolution at the input's resolution (1/up^2 of the MACs of convolving the
        # upsampled image), scales fused, then the filter (transposed_padding) and the noise.  The intermediate
        # stays in the accumulation dtype: rounded to bfloat16 before the noise is added, outputs where the two
        # nearly cancel lost 7% (measured against the float64 reference).
        z = kernels.conv_transpose2d(x, w.transpose(0, 1).flip([2, 3]), stride=up, in_scale=s, out_scale=d,
                                     out_dtype=acc)
        y = upfirdn2d(z, f, padding=transposed_padding(pad, kh, kw, up), gain=float(up * up), backend="triton")
        if noise is not None:
            y = y + noise
        return y.to(x.dtype)

    return types.SimpleNamespace(forward=forward)


_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward))
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=scaled_form))
_backend.register(OP, "triton", _triton_impl)


# -- arguments --------------------------------------------------------------------------


def check_args(x: Any, weight: Any, styles: Any, noise: Any, resample_filter: Any, demodulate: Any, up: Any,
               down: Any, padding: Any) -> Tuple[bool, int, int, int, Tuple[int, int]]:
    """Check :func:`modulated_conv2d`'s arguments; ``(demodulate, up, down, padding, (out_h, out_w))``.

    The one check of this op: the public function calls it on what the user
    passed, the fake implementation on what reaches the registered op.
    Raises as :func:`modulated_conv2d` documents.
    """
    check_tensor(x, "x", nonempty=True)
    check_ndim(x, "x", 4, "have shape (N, C, H, W)")
    check_tensor(weight, "weight", nonempty=True)
    check_ndim(weight, "weight", 4, "have shape (out_channels, in_channels, kh, kw)")
    check_device(weight, "weight", x.device)
    require(weight.shape[1] == x.shape[1], ValueError,
            lambda: f"weight must have x's {x.shape[1]} input channels in dim 1; got shape {tuple(weight.shape)}")
    check_tensor(styles, "styles")
    check_shape(styles, "styles", (x.shape[0], x.shape[1]), " (one style per sample and input channel: (N, C))")
    check_device(styles, "styles", x.device)
    demodulate = check_bool(demodulate, "demodulate")
    up = check_int(up, "up", minimum=1, what="an int >= 1")
    down = check_int(down, "down", minimum=1, what="an int >= 1")
    if up > 1 and down > 1:
        raise ValueError(f"up and down cannot both be > 1; got up={up}, down={down}")
    padding = check_int(padding, "padding", minimum=0, what="an int >= 0")
    kh, kw = weight.shape[2], weight.shape[3]
    h, w = x.shape[2], x.shape[3]
    if up > 1 or down > 1:
        if resample_filter is None:
            raise ValueError(f"resample_filter is needed with up={up}, down={down}")
        check_tensor(resample_filter, "resample_filter")
        check_ndim(resample_filter, "resample_filter", (1, 2), "be a 1-D (separable) or 2-D filter")
        check_device(resample_filter, "resample_filter", x.device)
        f_h, f_w = ((resample_filter.shape[0],) * 2 if resample_filter.dim() == 1 else
                    (resample_filter.shape[0], resample_filter.shape[1]))
        pad = ref.resample_padding(padding, f_h, f_w, up, down)
        fh_out, fw_out = upfirdn_output_size(h, w, f_h, f_w, (up, up), (1, 1), pad)
        out_h, out_w = (fh_out - kh) // down + 1, (fw_out - kw) // down + 1
    else:
        out_h, out_w = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    for size in (out_h, out_w):
        require(size > 0, ValueError,
                lambda: f"modulated_conv2d: the output would be empty ({out_h} x {out_w}): x is {h} x {w}, the "
                        f"kernel {kh} x {kw}, padding {padding}")
    if noise is not None:
        check_tensor(noise, "noise")
        check_device(noise, "noise", x.device)
        out = (x.shape[0], weight.shape[0], out_h, out_w)
        require(noise.dim() <= 4 and all(a == 1 or a == b for a, b in zip(reversed(noise.shape), reversed(out))),
                ValueError, lambda: f"noise must broadcast to the output's shape {out}; got {tuple(noise.shape)}")
    return demodulate, up, down, padding, (out_h, out_w)


# -- registered op ----------------------------------------------------------------------


@torch.library.custom_op("ganfast::modulated_conv2d", mutates_args=())
def _modulated_conv2d_op(x: Tensor, weight: Tensor, styles: Tensor, noise: Optional[Tensor],
                         resample_filter: Optional[Tensor], demodulate: bool, up: int, down: int, padding: int,
                         backend: str) -> Tensor:
    check_args(x, weight, styles, noise, resample_filter, demodulate, up, down, padding)
    _, impl = _backend.select(OP, backend, x.device)
    return impl.forward(x, weight, styles, noise, resample_filter, demodulate, up, down, padding)


@_modulated_conv2d_op.register_fake
def _(x, weight, styles, noise, resample_filter, demodulate, up, down, padding, backend):
    *_, (out_h, out_w) = check_args(x, weight, styles, noise, resample_filter, demodulate, up, down, padding)
    return torch.empty((x.shape[0], weight.shape[0], out_h, out_w), dtype=x.dtype, device=x.device,
                       memory_format=_layout.memory_format_of(x))


def _setup(ctx, inputs, output):
    x, weight, styles, noise, f, *params = inputs
    ctx.save_for_backward(x, weight, styles, noise, f)
    ctx.params = params  # demodulate, up, down, padding, backend
    ctx.resolved = _backend.resolve(OP, params[-1], x.device)


def _backward(ctx, grad):
    x, weight, styles, noise, f = ctx.saved_tensors
    demodulate, up, down, padding, _ = ctx.params
    needs = list(ctx.needs_input_grad[:4])
    if noise is None:
        needs[3] = False
    inputs = [x, weight, styles, noise]
    wrt = [t for t, n in zip(inputs, needs) if n]
    if not wrt:
        return (None,) * 10
    # Recomputed (module docstring); recorded only when the gradient must be differentiable.
    create = differentiable_backward()
    recompute = ref.modulated_conv2d if ctx.resolved == "torch" else scaled_form
    with torch.enable_grad():
        leaves = [t if create or t is None else t.detach().requires_grad_(n) for t, n in zip(inputs, needs)]
        out = recompute(leaves[0], leaves[1], leaves[2], leaves[3], f, demodulate, up, down, padding)
        got = iter(torch.autograd.grad(out, [t for t, n in zip(leaves, needs) if n], grad, create_graph=create,
                                       allow_unused=True))
    grads = [next(got) if n else None for n in needs]
    grads = [torch.zeros_like(t) if g is None and n else g for g, t, n in zip(grads, inputs, needs)]
    return (*grads, None, None, None, None, None, None)


_modulated_conv2d_op.register_autograd(_backward, setup_context=_setup)


# -- public function --------------------------------------------------------------------


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, up: int = 1,
                     down: int = 1, padding: int = 0, resample_filter: Optional[Tensor] = None,
                     noise: Optional[Tensor] = None, *, backend: Optional[str] = None) -> Tensor:
    """StyleGAN2's modulated convolution (Karras et al. 2020, sec. 2.2, eqs. 1-3), resampling and noise included.

    Per sample n, the weight is scaled by the sample's style along the input
    channels and, with ``demodulate``, each output channel is renormalised::

        w'_{n,o,i,k} = s_{n,i} w_{o,i,k};   w''_{n,o} = w'_{n,o} / sqrt(sum_{i,k} w'_{n,o,i,k}^2 + 1e-8)
        y_n = conv2d_resample(x_n, w''_n) + noise_n

    ``conv2d_resample`` is stylegan2-ada-pytorch's: with ``up`` > 1, x is
    upsampled by :func:`ganfast.ops.upfirdn2d` (zero insertion, the
    resampling filter, gain up^2, the layer's padding and the filter's
    centring folded in) and convolved unpadded; with ``down`` > 1 it is
    filtered the same way and convolved with stride ``down``.

    Args:
        x: (N, I, H, W), float16, bfloat16, float32 or float64; not empty.
        weight: (O, I, kh, kw) on x's device, any float dtype (equalized-lr
            scaling, if any, already applied).
        styles: (N, I) on x's device: the affine transform of w for this
            layer (StyleGAN2: bias initialised to 1).
        demodulate: divide by sigma (eq. 3); False for toRGB layers.  Default True.
        up, down: 1 (default), 2 or any int >= 1; not both > 1.
        padding: the convolution's zero padding, an int >= 0 (StyleGAN2: kh // 2).
        resample_filter: the FIR filter for ``up``/``down`` > 1 (1-D
            separable or 2-D; :func:`ganfast.ops.setup_filter`); None:
            StyleGAN2's [1, 3, 3, 1].  Unused at up = down = 1.
        noise: added to the output, broadcastable to (N, O, H', W') (StyleGAN2:
            (N, 1, H', W') scaled by a learned strength); default None.
        backend: ``"torch"`` (per-sample weights, a grouped convolution:
            the reference), ``"aten"`` (input and output scales on the shared
            weight, plain autograd), ``"triton"`` (the scales fused into
            ganfast's convolution kernel; module docstring), ``"auto"``, or
            None for the current choice (:func:`ganfast.use_backend`).

    Returns:
        (N, O, H', W') in ``x``'s dtype and memory format, accumulated in
        float32 (float64 for float64 inputs) by every backend.

    Raises:
        TypeError: a tensor argument is not a tensor or has an unsupported
            dtype; ``demodulate`` is not a bool; ``up``, ``down`` or
            ``padding`` is not an int.
        ValueError: a shape is wrong (x not 4-D or empty, weight's input
            channels not x's, styles not (N, I), noise not broadcastable to
            the output); a tensor is on another device; ``up``/``down`` below
            1 or both above 1; ``padding`` negative; the output would be
            empty; ``backend`` is not a backend's name.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order w.r.t. x, weight, styles and noise.
    """
    if (isinstance(up, int) and up > 1) or (isinstance(down, int) and down > 1):
        if resample_filter is None and isinstance(x, Tensor):
            resample_filter = setup_filter(device=x.device)
    check_args(x, weight, styles, noise, resample_filter, demodulate, up, down, padding)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return scaled_form(x, weight, styles, noise, resample_filter, demodulate, up, down, padding)
    return _modulated_conv2d_op(x, weight, styles, noise, resample_filter, demodulate, up, down, padding, backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_modulated_conv2d_op,)
