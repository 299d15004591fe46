"""Argument checks: one module, one convention, the argument's name in every message.

The convention: a ``TypeError`` for a value of the wrong type (a list where a
tensor goes, an int tensor where a float one goes, a string where a number
goes), a ``ValueError`` for a value of the right type that is out of range
(a negative size, a wrong shape, a tensor on another device).  Every message
starts with the argument's name and says what was expected and what was got,
so ``f"{name} must be ...; got ..."`` reads as an instruction.

Two deliberate exceptions keep old callers working:

* :class:`TypeOrValueError` subclasses both ``TypeError`` and
  ``ValueError``: checks that used to raise ``ValueError`` for a wrong type
  raise it (``type_error=TypeOrValueError``), so ``except ValueError`` in old
  code still catches them while new code can catch ``TypeError``.
* :class:`DimensionError` (an ``IndexError`` and a ``ValueError``) for a
  dimension index out of range, as torch itself raises ``IndexError`` there.

Tensor checks go through ``torch._check_with`` rather than ``if ...: raise``
wherever a size is compared: under ``torch.compile`` sizes may be symbolic,
and ``_check_with`` turns a symbolic condition into a runtime assertion
instead of specialising the graph on it.  That is what lets a registered op's
fake implementation call the very checks its public function calls.

A leaf module: it imports nothing of ganfast except the dtype table (itself a
leaf), so every layer (ops, nn, models, data) can use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Type, Union

import torch

from ._dtypes import FLOAT_DTYPES, FLOAT_DTYPES_TEXT

Tensor = torch.Tensor

__all__ = [
    "DimensionError", "TypeOrValueError", "check_bool", "check_choice", "check_device", "check_dim",
    "check_dtype", "check_float", "check_int", "check_ndim", "check_pair", "check_positive_int", "check_shape",
    "check_tensor",
    "require", "type_name",
]


class TypeOrValueError(TypeError, ValueError):
    """A wrong type, where earlier releases raised ``ValueError``: catchable as either."""


class DimensionError(IndexError, ValueError):
    """A dimension index out of range: an ``IndexError`` as in torch, and a ``ValueError`` by our convention."""


def type_name(value: Any) -> str:
    """How messages name the type of ``value``."""
    return "None" if value is None else type(value).__name__


def require(cond: Union[bool, "torch.SymBool"], error: Type[Exception], message: Callable[[], str]) -> None:
    """Raise ``error(message())`` unless ``cond``; a symbolic ``cond`` becomes a runtime assertion.

    ``message`` is a callable so that the text is built only on failure.
    """
    if cond is True:
        return
    torch._check_with(error, cond, message)


# -- tensors ----------------------------------------------------------------------------


def check_tensor(
    t: Any,
    name: str,
    *,
    dtypes: Optional[Sequence[torch.dtype]] = FLOAT_DTYPES,
    dtype_requirement: Optional[str] = None,
    nonempty: bool = False,
    optional: bool = False,
) -> Optional[Tensor]:
    """``t`` is a tensor (or None when ``optional``) of one of ``dtypes``, and not empty when ``nonempty``.

    ``dtype_requirement`` as in :func:`check_dtype`.

    Raises:
        TypeError: ``t`` is not a tensor, or its dtype is not in ``dtypes``
            (``dtypes=None`` accepts any).
        ValueError: ``nonempty`` and ``t`` has no elements.
    """
    if t is None and optional:
        return None
    if not isinstance(t, Tensor):
        what = "a torch.Tensor or None" if optional else "a torch.Tensor"
        raise TypeError(f"{name} must be {what}; got {type_name(t)}")
    if dtypes is not None:
        check_dtype(t, name, dtypes, dtype_requirement)
    if nonempty:
        require(t.numel() != 0, ValueError, lambda: f"{name} must not be empty; got shape {tuple(t.shape)}")
    return t


def check_dtype(t: Tensor, name: str, dtypes: Sequence[torch.dtype], requirement: Optional[str] = None) -> Tensor:
    """``t.dtype`` is one of ``dtypes``.

    ``requirement`` completes "``name`` must ..." (default: "be float16,
    bfloat16, float32 or float64", the dtypes named).

    Raises:
        TypeError: it is not.
    """
    if t.dtype not in dtypes:
        if requirement is None:
            names = FLOAT_DTYPES_TEXT if tuple(dtypes) == FLOAT_DTYPES else _or(
                str(d).replace("torch.", "") for d in dtypes)
            requirement = f"be {names}"
        raise TypeError(f"{name} must {requirement}; got {t.dtype}")
    return t


def check_ndim(t: Tensor, name: str, ndims: Union[int, Iterable[int]], requirement: str) -> Tensor:
    """``t`` has one of ``ndims`` dimensions; ``requirement`` completes "``name`` must ...".

    For example ``check_ndim(x, "x", 4, "be 4-D (N, C, H, W)")``.

    Raises:
        ValueError: it has not.
    """
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if t.dim() not in allowed:
        raise ValueError(f"{name} must {requirement}; got {t.dim()} dimensions, shape {tuple(t.shape)}")
    return t


def check_shape(t: Tensor, name: str, shape: Sequence[Union[int, str]], why: str = "") -> Tensor:
    """``t.shape == shape``, where a string entry (``"d_v"``) matches any size.

    ``why`` is appended to the requirement (" to match x's channels").

    Raises:
        ValueError: the number of dimensions or a size differs.
    """

    def message() -> str:
        return f"{name} must have shape {tuple(shape)}{why}; got {tuple(t.shape)}"

    if t.dim() != len(shape):
        raise ValueError(message())
    for size, want in zip(t.shape, shape):
        if not isinstance(want, str):
            require(size == want, ValueError, message)
    return t


def check_device(t: Tensor, name: str, device: torch.device, of: str = "x") -> Tensor:
    """``t`` is on ``device`` (``of``'s).

    Raises:
        ValueError: it is on another device.
    """
    if t.device != device:
        raise ValueError(f"{name} must be on the same device as {of} ({device}); got {t.device}")
    return t


def check_dim(dim: Any, name: str, ndim: int, shape: Optional[Sequence[int]] = None) -> int:
    """``dim`` indexes a dimension of an ``ndim``-D tensor; returns it in ``[0, ndim)``.

    Raises:
        TypeError: ``dim`` is not an int.
        DimensionError: it is out of range (an ``IndexError``, as torch raises).
    """
    text = f"{name} must be an int in [{-ndim}, {ndim - 1}]" + (f" for x of shape {tuple(shape)}" if shape else "")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{text}; got {dim!r}")
    if not -ndim <= dim < ndim:
        raise DimensionError(f"{text}; got {dim!r}")
    return int(dim) % ndim


# -- Python values ----------------------------------------------------------------------


def check_int(
    value: Any,
    name: str,
    *,
    minimum: Optional[int] = None,
    maximum: Optional[int] = None,
    what: Optional[str] = None,
    type_error: Type[Exception] = TypeError,
) -> int:
    """``value`` is an int (not a bool) in ``[minimum, maximum]``; returns it as an int.

    Messages: "``name`` must be an int; got float" and "``name`` must be >=
    ``minimum``; got 0", or, with ``what`` ("a positive int"), "``name`` must
    be ``what``; got 0" for both.

    Raises:
        TypeError (``type_error``): not an int.
        ValueError: out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise type_error(f"{name} must be {what or 'an int'}; got {_shown(value, what)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what or f'>= {minimum}'}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be {what or f'<= {maximum}'}; got {value}")
    return value


def check_positive_int(value: Any, name: str, type_error: Type[Exception] = TypeError) -> int:
    """A size or a count: an int >= 1, "``name`` must be a positive int; got ..." either way.

    Raises:
        TypeError (``type_error``): not an int.
        ValueError: below 1.
    """
    return check_int(value, name, minimum=1, what="a positive int", type_error=type_error)


def check_float(
    value: Any,
    name: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    positive: bool = False,
    finite: bool = True,
    what: Optional[str] = None,
    type_error: Type[Exception] = TypeError,
) -> float:
    """``value`` is a real number (int or float, not a bool) in range; returns it as a float.

    ``positive`` excludes 0; ``minimum`` / ``maximum`` are inclusive;
    ``finite`` excludes inf and NaN.  The message names the requirement
    ("a finite non-negative number"), or ``what`` when given.

    Raises:
        TypeError (``type_error``): not a real number.
        ValueError: out of range, or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise type_error(f"{name} must be {what or 'a float'}; got {_shown(value, what)}")
    value = float(value)
    ok = not (finite and not math.isfinite(value))
    ok = ok and not (positive and not value > 0)
    ok = ok and not (minimum is not None and not value >= minimum)
    ok = ok and not (maximum is not None and not value <= maximum)
    if not ok:
        raise ValueError(f"{name} must be {what or _number_text(minimum, maximum, positive, finite)}; got {value}")
    return value


def check_bool(value: Any, name: str, type_error: Type[Exception] = TypeError) -> bool:
    """``value`` is a bool.

    Raises:
        TypeError (``type_error``): it is not (0 and 1 are not accepted: a flag passed an int is usually a mix-up).
    """
    if not isinstance(value, bool):
        raise type_error(f"{name} must be True or False; got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[Any], type_error: Type[Exception] = TypeError) -> Any:
    """``value`` is one of ``choices`` (compared with ``==``; strings match exactly).

    Raises:
        TypeError (``type_error``): ``value`` is not of the choices' type.
        ValueError: it is not one of them.
    """
    if type(value) is str and value in choices:  # the common case, without building the message
        return value
    text = ", ".join(repr(c) for c in choices)
    kinds = {type(c) for c in choices}
    if choices and not isinstance(value, tuple(kinds)):
        raise type_error(f"{name} must be one of {text}; got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {text}; got {value!r}")
    return value


def check_pair(value: Any, name: str, minimum: Optional[int] = None) -> Tuple[int, int]:
    """An int or a pair of ints (each ``>= minimum``), as a pair: convolution strides and paddings.

    Raises:
        TypeError: neither an int nor a sequence of two ints.
        ValueError: an entry is below ``minimum``.
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        pair: Tuple[Any, ...] = value  # the common case (a module's stride), without the ABC checks
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}")
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return int(pair[0]), int(pair[1])


# -- message pieces -----------------------------------------------------------------------


def _or(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _shown(value: Any, what: Optional[str]) -> str:
    # A requirement phrased as a value ("a positive int") reads best with the value itself.
    return repr(value) if what else type_name(value)


def _number_text(minimum, maximum, positive, finite) -> str:
    if minimum is not None and maximum is not None:
        return f"a number in [{minimum:g}, {maximum:g}]"
    words = ["a"]
    if finite:
        words.append("finite")
    if positive:
        words.append("positive")
    elif minimum == 0:
        words.append("non-negative")
    elif minimum is not None:
        return f"a{' finite' if finite else ''} number >= {minimum:g}"
    return " ".join(words + ["number"])


def check_input_dtype_matches(x: Any, weight: Any, layer: str) -> None:
    """A layer's input has its weights' floating dtype, unless autocast is on for the input's device.

    ``weight`` is the weight tensor, or the module holding it (then a parametrised weight is not computed).

    Raises:
        TypeError: naming the layer, both dtypes and the fixes (torch's own
            message, "expected scalar type Half but found Float", names none).
    """
    # A parametrised weight (torch.nn.utils.parametrizations.spectral_norm) is read through its original:
    # reading ``module.weight`` would run the parametrisation, a power iteration in training mode, once more.
    if not isinstance(weight, Tensor):
        module = weight
        par = getattr(module, "parametrizations", None)
        weight = par["weight"].original if par is not None and "weight" in par else module.weight
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dtype == weight.dtype:
        return
    if torch.is_autocast_enabled(x.device.type):
        return
    raise TypeError(f"{layer}: x is {str(x.dtype).replace('torch.', '')} but the layer's weights are "
                    f"{str(weight.dtype).replace('torch.', '')}: convert one to the other (layer.to(x.dtype) or "
                    f"x.to(weight dtype)), or run the layer under torch.autocast")
