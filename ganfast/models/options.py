"""Typed method options: one dataclass per method, each default beside its source.

A method's options are a dataclass whose fields are declared with
:func:`option`::

    @dataclass
    class Options(AdversarialOptions):
        lr_g: float = option(2e-4, "Radford et al. 2016, sec. 3: Adam, learning rate 0.0002", min=0,
                             min_exclusive=True)

``option`` records the default, where it comes from, and the rules a value
must follow (``choices``, ``min``/``max``, list length).  A subclass may
re-declare a field to change its default and source; the rules declared
higher up still apply (they are merged down the class hierarchy).

:func:`parse_options` turns user input (keyword arguments, ``-o key=value``
JSON values, a checkpoint's config) into an instance: unknown names raise
``TypeError`` listing the valid ones; a value of the wrong type or outside
its rules raises ``ValueError`` naming the option, what was expected and
what was given.  Cross-field rules and defaults that depend on the data
(``latent_dim`` None -> 100 for images) live in the dataclass's
``resolve(method)`` hook, which every subclass extends.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

__all__ = ["option", "parse_options", "option_rows", "OptionsBase", "square_power_of_two"]


def option(default: Any, source: str = "", *, help: str = "", choices: Optional[Sequence[Any]] = None,
           min: Optional[float] = None, max: Optional[float] = None, min_exclusive: bool = False,
           max_exclusive: bool = False, length: Optional[int] = None) -> Any:
    """A dataclass field with a default, its source, and validation rules.

    Args:
        default: the default value (lists are copied per instance).
        source: the paper, section or code the default comes from ("" when
            it is ganfast's own choice; say why in ``help`` then).
        help: what the option does (shown by ``ganfast list --options``).
        choices: allowed values.
        min, max: bounds for numbers (and for every item of a list of numbers).
        min_exclusive, max_exclusive: strict bounds.
        length: required length of a list value.
    """
    rules = {k: v for k, v in dict(choices=choices, min=min, max=max, length=length).items() if v is not None}
    if min_exclusive:
        rules["min_exclusive"] = True
    if max_exclusive:
        rules["max_exclusive"] = True
    metadata = {"source": source, "help": help, "rules": rules}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class OptionsBase:
    """Base of every method's options; ``resolve`` fills data-dependent defaults and checks cross-field rules."""

    def resolve(self, method: Any) -> None:
        """Called once after the per-field checks, with the method class (its ``name`` for messages)."""

    def as_dict(self) -> Dict[str, Any]:
        """The options as plain JSON values (what a checkpoint stores and ``build(**config)`` reads)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def square_power_of_two(method: Any, shape: Sequence[int], hint: str = "") -> int:
    """The side R of a ``(C, R, R)`` ``sample_shape`` whose side is a power of two >= 4 (growing/style networks).

    Raises:
        ValueError: naming ``method`` and the shape, when it is not one.
    """
    shape = list(shape)
    if len(shape) != 3:
        raise ValueError(f"{method.name} trains on images: sample_shape must be (C, R, R); got {shape}")
    _, h, w = shape
    if h != w or h < 4 or h & (h - 1):
        raise ValueError(f"{method.name} needs square images whose side is a power of two >= 4{hint}; got "
                         f"sample_shape {shape} (pass --image-size 16 or 32, say)")
    return h


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


# -- checking -------------------------------------------------------------------------------------------


def _rules(cls: type, name: str) -> Dict[str, Any]:
    """The rules of field ``name``, merged from the base class down (a subclass's re-declaration adds to them)."""
    merged: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        fields = getattr(klass, "__dataclass_fields__", {})
        if name in fields and klass.__dict__.get("__dataclass_fields__") is fields:
            merged.update(fields[name].metadata.get("rules", {}))
    return merged


def _describe_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_describe_type(inner[0])} or None"
    if origin in (list, List, tuple, Tuple):
        return f"a list of {_describe_type(args[0])}s" if args else "a list"
    if origin in (dict, Dict):
        return 'a mapping, as a JSON object with quoted keys (e.g. {"4": 32})'
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (int -> float, tuple -> list), or ValueError naming the option."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    bad = ValueError(f"option {name!r} must be {_describe_type(tp)}; got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"option {name!r} must be a finite number; got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin in (list, List, tuple, Tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise bad
        item = args[0] if args else Any
        return [_coerce(name, v, item) if item is not Any else v for v in value]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise bad
        item = args[1] if args else Any
        return {str(k): (_coerce(f"{name}[{k!r}]", v, item) if item is not Any else v) for k, v in value.items()}
    return value


def _check_rules(name: str, value: Any, rules: Dict[str, Any]) -> None:
    if value is None:
        return
    choices = rules.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"option {name!r} must be one of {list(choices)}; got {value!r}")
    length = rules.get("length")
    if length is not None and isinstance(value, list) and len(value) != length:
        raise ValueError(f"option {name!r} must be a list of {length} values; got {value!r}")
    numbers = value if isinstance(value, list) else [value]
    for v in numbers:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        lo, hi = rules.get("min"), rules.get("max")
        if lo is not None and (v <= lo if rules.get("min_exclusive") else v < lo):
            op = ">" if rules.get("min_exclusive") else ">="
            raise ValueError(f"option {name!r} must be {op} {lo}; got {value!r}")
        if hi is not None and (v >= hi if rules.get("max_exclusive") else v > hi):
            op = "<" if rules.get("max_exclusive") else "<="
            raise ValueError(f"option {name!r} must be {op} {hi}; got {value!r}")


def parse_options(cls: Type[OptionsBase], values: Dict[str, Any], method: Any) -> OptionsBase:
    """An instance of ``cls`` from user ``values``, checked and resolved.

    Raises:
        TypeError: an option ``cls`` does not declare (the message lists the valid ones).
        ValueError: a value of the wrong type or outside its rules, or a
            cross-field rule of ``resolve`` broken.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TypeError(f"model {method.name!r} got unknown option(s) {unknown}; its options are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    checked: Dict[str, Any] = {}
    for name, value in values.items():
        value = _coerce(name, value, hints[name])
        _check_rules(name, value, _rules(cls, name))
        checked[name] = value
    opts = cls(**checked)
    for name in fields:  # the defaults follow the same rules (a subclass may set a bad one)
        if name not in checked:
            _check_rules(name, getattr(opts, name), _rules(cls, name))
    opts.resolve(method)
    return opts


def option_rows(cls: Type[OptionsBase]) -> List[Tuple[str, Any, str]]:
    """``(name, default, source)`` of every option of ``cls``, for ``ganfast list --options``."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        source = f.metadata.get("source", "")
        help_ = f.metadata.get("help", "")
        rows.append((f.name, default, "; ".join(s for s in (help_, source) if s)))
    return rows
