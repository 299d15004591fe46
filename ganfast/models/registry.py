"""The method registry: ``build(name, **options)``, ``names()``, ``describe()``, ``families()``."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type

from .method import Method

REGISTRY: Dict[str, Type[Method]] = {}

#: the order ``ganfast list`` shows families in (a method's ``family`` outside it comes last)
FAMILY_ORDER = ("foundational", "conditional", "objective and regularisation", "architecture", "mode collapse")


def register(cls: Optional[Type[Method]] = None, *, before: Optional[str] = None):
    """Class decorator: make ``cls`` buildable by its ``name``.

    ``@register`` appends the method to :func:`names`' order;
    ``@register(before="stylegan2")`` places it just before a registered
    method (a subclass defined after its base but published earlier).

    Raises:
        ValueError: ``cls`` has no name, another class has it, or ``before``
            names no registered method.
    """
    if cls is None:
        return lambda c: register(c, before=before)
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} is taken by {REGISTRY[cls.name].__name__}")
    if before is None:
        REGISTRY[cls.name] = cls
        return cls
    if before not in REGISTRY:
        raise ValueError(f"register(before={before!r}): no such method; registered: {', '.join(REGISTRY)}")
    items = [(k, v) for k, v in REGISTRY.items() if k != cls.name]
    REGISTRY.clear()
    for k, v in items:
        if k == before:
            REGISTRY[cls.name] = cls
        REGISTRY[k] = v
    return cls


def names() -> List[str]:
    """Every registered method, in the order of the literature."""
    return list(REGISTRY)


def describe() -> List[Tuple[str, str]]:
    """``(name, one-line summary)`` of every method."""
    return [(n, REGISTRY[n].summary) for n in REGISTRY]


def families() -> List[Tuple[str, List[Type[Method]]]]:
    """``(family, [method classes])`` in :data:`FAMILY_ORDER`, for ``ganfast list``."""
    groups: Dict[str, List[Type[Method]]] = {}
    for cls in REGISTRY.values():
        groups.setdefault(cls.family or "other", []).append(cls)
    order = [f for f in FAMILY_ORDER if f in groups] + sorted(f for f in groups if f not in FAMILY_ORDER)
    return [(f, groups[f]) for f in order]


def get(name: str) -> Type[Method]:
    """The class registered as ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {names()}")
    return REGISTRY[name]


def build(name: str, *, dataset: Any = None, **options: Any) -> Method:
    """Build method ``name`` with its paper's defaults, overridden by ``options``.

    ``dataset`` (a :class:`ganfast.data.BatchDataset`) fills the options the
    method takes from the data (``sample_shape``, ``num_classes``) unless they
    are given, and is checked for the batch fields the method reads.

    Raises:
        ValueError: unknown name; a dataset without the fields (labels) the
            method needs; a bad option value.
        TypeError: an unknown option.
    """
    cls = get(name)
    if dataset is not None:
        for key, value in cls.options_from_dataset(dataset).items():
            options.setdefault(key, value)
        if "label" in cls.requires:
            dataset.require_labels(name)
        missing = [f for f in cls.requires if f != "label" and f not in getattr(dataset, "fields", ("image",))]
        if missing:
            dataset.require_fields(cls.requires, f"model {name!r}")
    return cls(**options)
